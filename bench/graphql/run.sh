#!/usr/bin/env bash
# GraphQL benchmark: Switchyard's /graphql against The Guild's Hive Gateway
# (gRPC source, GraphQL Mesh composition) in front of the same demo gRPC
# services, in one run, with the same load tool and concurrency. Two queries:
#   single      one order (OrderService.GetOrder)                -> 1 gRPC call
#   aggregated  the order + its user (UserService.GetUser) + each
#               item's stock (InventoryService.GetStock)           -> 4 gRPC calls
# For each gateway and query: a warm-up run (not measured), then a measured
# run; prints requests/s, p50/p99 latency, errors, CPU time per request of the
# gateway and of the upstream (utime+stime from /proc/PID/stat), and the
# gateway's peak RSS during the row (VmHWM, reset before the row).
# See bench/README.md, "GraphQL: Switchyard vs Hive Gateway".
# Usage: bench/graphql/run.sh   (knobs: bench/graphql/run.sh --help)
set -Eeuo pipefail

usage() {
    cat <<'EOF'
Usage: bench/graphql/run.sh

Environment knobs (defaults in brackets):
  BENCH_DURATION=15          measured seconds per row
  BENCH_WARMUP=10            warm-up seconds before each row (not measured; a
                             cold Node process is at less than half its speed)
  BENCH_CONNECTIONS=64       concurrent connections (HTTP/1.1 keep-alive), every row
  BENCH_TOOL=auto            auto: oha if installed (PATH or ~/.cargo/bin), else wrk
                             (with bench/graphql/post.lua); or force oha / wrk
  BENCH_PIN=split            split: load tool on CPU 0, gateway + upstream on CPU 1
                             load:  load tool on CPU 0, servers unpinned
                             none:  no pinning
  BENCH_SWITCHYARD=1         0 = Hive rows only
  BENCH_SWEEP="0.25 0.5 0.75 1.0 1.25"  the aggregated query at these fractions of Hive's rate, both
                             gateways, open loop (bench/graphql/sweep.sh); empty = skip
  BENCH_SWEEP_DURATION=8     seconds per sweep point
  BENCH_BUILD=1              0 = do not run cargo build (use existing binaries)
  BENCH_BIN_DIR=target/release
  BENCH_SWITCHYARD_CONFIG=bench/graphql/switchyard.yaml
  BENCH_HIVE_PORT=4000 BENCH_GATEWAY_PORT=8080 BENCH_ADMIN_PORT=9090
  BENCH_USERS_PORT=50051 BENCH_ORDERS_PORT=50052 BENCH_INVENTORY_PORT=50053
                             preferred ports; a busy one is replaced by a free one
  BENCH_OUT=bench/out        results: graphql.txt (the report), graphql-raw/ (tool output, logs)
  BENCH_NOISY_PERCENT=20     flag rows during which other processes used more than this % of a core
EOF
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-10}
CONNS=${BENCH_CONNECTIONS:-64}
TOOL=${BENCH_TOOL:-auto}
PIN=${BENCH_PIN:-split}
WITH_SY=${BENCH_SWITCHYARD:-1}
BUILD=${BENCH_BUILD:-1}
NOISY=${BENCH_NOISY_PERCENT:-20}
abspath() { [[ $1 == /* ]] && echo "$1" || echo "$ROOT/$1"; }
BIN_DIR=$(abspath "${BENCH_BIN_DIR:-target/release}")
SY_CONFIG=$(abspath "${BENCH_SWITCHYARD_CONFIG:-bench/graphql/switchyard.yaml}")
OUT=$(abspath "${BENCH_OUT:-bench/out}")
RAW=$OUT/graphql-raw

die() { printf '\nbench/graphql: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'bench/graphql: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP CONNS; do
    is_uint "${!v}" || die "BENCH_$v must be a whole number, got '${!v}'"
done
((DURATION > 0 && CONNS > 0)) || die "BENCH_DURATION and BENCH_CONNECTIONS must be > 0"
((DURATION + WARMUP <= 120)) || die "durations capped (warm-up + duration <= 120 s per row): this is a shared machine"
((CONNS <= 1024)) || die "BENCH_CONNECTIONS capped at 1024"
case $PIN in split | load | none) ;; *) die "BENCH_PIN must be split, load or none" ;; esac
case $TOOL in auto | oha | wrk) ;; *) die "BENCH_TOOL must be auto, oha or wrk" ;; esac

# ---------------------------------------------------------------- cleanup ---
STARTED=() # PIDs of the processes this script started; only these are killed
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-graphql.XXXXXX")
stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM HUP

# ------------------------------------------------------------------ tools ---
need curl curl
need taskset util-linux
need node nodejs
need npm npm
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "Node >= 20 needed (found $(node --version))"
[[ -x $HOME/.cargo/bin/oha ]] && ! command -v oha >/dev/null 2>&1 && PATH="$PATH:$HOME/.cargo/bin"
if [[ $TOOL == auto ]]; then
    if command -v oha >/dev/null 2>&1; then TOOL=oha; else TOOL=wrk; fi
fi
if [[ $TOOL == wrk ]]; then need wrk wrk; else command -v oha >/dev/null 2>&1 || die "oha not found"; fi
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(getconf _NPROCESSORS_ONLN)
if [[ $PIN != none ]] && ((NCPU < 2)); then
    say "only $NCPU CPU online: pinning disabled"; PIN=none
fi
case $PIN in
    split) LOAD_PIN=(taskset -c 0); SERVER_PIN=(taskset -c 1) ;;
    load) LOAD_PIN=(taskset -c 0); SERVER_PIN=() ;;
    none) LOAD_PIN=(); SERVER_PIN=() ;;
esac

# The Hive Gateway side: npm packages pinned by package-lock.json.
if [[ ! -f $HERE/node_modules/.package-lock.json || $HERE/package-lock.json -nt $HERE/node_modules/.package-lock.json ]]; then
    say "npm ci in bench/graphql (Hive Gateway, Mesh Compose, the gRPC source; about a minute)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
fi
HIVE_VERSION=$(node -p 'require(process.argv[1]).version' "$HERE/node_modules/@graphql-hive/gateway/package.json")

# ------------------------------------------------------------------ build ---
DEMO_BIN=$BIN_DIR/switchyard-demo
SY_BIN=$BIN_DIR/switchyard
if [[ $BUILD != 0 ]]; then
    say "cargo build --release --locked -p switchyard-demo"
    cargo build --release --locked -p switchyard-demo >&2 || die "cargo build of switchyard-demo failed"
    if [[ $WITH_SY != 0 ]]; then
        say "cargo build --release --locked -p switchyard"
        cargo build --release --locked -p switchyard >&2 ||
            { say "cargo build of switchyard failed: Hive rows only"; WITH_SY=0; }
    fi
fi
[[ -x $DEMO_BIN ]] || die "$DEMO_BIN not found (run without BENCH_BUILD=0)"
if [[ $WITH_SY != 0 && ! -x $SY_BIN ]]; then say "$SY_BIN not found: Hive rows only"; WITH_SY=0; fi

# ------------------------------------------------------------------ ports ---
BUSY=" $(listening_ports | tr '\n' ' ') "
pick_port HIVE_PORT "${BENCH_HIVE_PORT:-4000}"
pick_port SY_PORT "${BENCH_GATEWAY_PORT:-8080}"
pick_port ADMIN_PORT "${BENCH_ADMIN_PORT:-9090}"
pick_port USERS_PORT "${BENCH_USERS_PORT:-50051}"
pick_port ORDERS_PORT "${BENCH_ORDERS_PORT:-50052}"
pick_port INVENTORY_PORT "${BENCH_INVENTORY_PORT:-50053}"
export DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT DEMO_ORDERS_ADDR=127.0.0.1:$ORDERS_PORT \
    DEMO_INVENTORY_ADDR=127.0.0.1:$INVENTORY_PORT

mkdir -p "$RAW"
rm -f "$RAW"/*.txt "$RAW"/*.log "$RAW"/*.json

# --------------------------------------------------------------- queries ---
# Hive (GraphQL Mesh's gRPC naming): root field pkg_Service_Method(input: {...}),
# proto field names as written (snake_case). Switchyard (readable naming):
# order(id:), lowerCamelCase field names (the proto JSON names).
Q_HIVE_SINGLE='{ demo_orders_v1_OrderService_GetOrder(input: {id: "1"}) { id total_cents items { sku qty } } }'
Q_HIVE_AGG='{ demo_orders_v1_OrderService_GetOrder(input: {id: "1"}) { id total_cents items { sku qty stock { available } } user { id name } } }'
Q_SY_SINGLE='{ order(id: "1") { id totalCents items { sku qty } } }'
Q_SY_AGG='{ order(id: "1") { id totalCents items { sku qty stock { available } } user { id name } } }'
# What both must answer (demo seed data: order "1" is user "1"'s A-1 x2 + B-2 x1;
# A-1 has 100 available, B-2 has 5). Compared after renaming fields to
# lowerCamelCase and scalars to strings (int64 is a number in Hive, a string in Switchyard).
EXPECT_SINGLE='{"id":"1","totalCents":"7499","items":[{"sku":"A-1","qty":"2"},{"sku":"B-2","qty":"1"}]}'
EXPECT_AGG='{"id":"1","totalCents":"7499","items":[{"sku":"A-1","qty":"2","stock":{"available":"100"}},{"sku":"B-2","qty":"1","stock":{"available":"5"}}],"user":{"id":"1","name":"Ada Lovelace"}}'
body_file() { # body_file NAME QUERY -> path of a JSON request body
    node -e 'process.stdout.write(JSON.stringify({query: process.argv[1]}))' "$2" >"$WORK/$1.json"
    echo "$WORK/$1.json"
}
# check_answer FILE EXPECTED: exit 0 when FILE is {"data": {<one root field>: X}} without
# "errors" and X matches EXPECTED; otherwise prints why.
check_answer() {
    node -e '
const fs = require("fs");
const [file, expected] = process.argv.slice(1);
let doc;
try { doc = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { console.log("not JSON"); process.exit(1); }
if (doc.errors) { console.log("errors: " + JSON.stringify(doc.errors).slice(0, 400)); process.exit(1); }
if (!doc.data) { console.log("no data"); process.exit(1); }
const roots = Object.values(doc.data);
if (roots.length !== 1) { console.log("expected one root field"); process.exit(1); }
const camel = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const norm = (v) => Array.isArray(v) ? v.map(norm)
  : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [camel(k), norm(x)]))
  : String(v);
const got = JSON.stringify(norm(roots[0]));
if (got !== JSON.stringify(JSON.parse(expected))) { console.log("unexpected data: " + got); process.exit(1); }
' "$1" "$2"
}
# post FILE URL OUT -> HTTP status; body in OUT
post() { curl -sS -o "$3" -w '%{http_code}' -H 'content-type: application/json' --data-binary "@$1" "$2"; }

# ---------------------------------------------------------- measurement ---
proc_ticks() { # utime + stime of PID and its descendants (all threads), in clock ticks
    local pid=$1 s total=0 child
    s=$(<"/proc/$pid/stat") || die "process $pid is gone"
    s=${s##*) } # drop "pid (comm) "; field 3 (state) is now $1, so 14/15 are $12/$13
    set -- $s
    total=$((${12} + ${13}))
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        total=$((total + $(proc_ticks "$child")))
    done
    echo "$total"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
reset_hwm() { # reset the peak RSS to the current RSS (Linux >= 4.0; root or owner)
    echo 5 2>/dev/null >"/proc/$1/clear_refs"
}
server_alive() { # server_alive PID NAME LOG WHEN
    kill -0 "$1" 2>/dev/null && return 0
    die "$2 (pid $1) went away during $4: $(tail -5 "$3" 2>/dev/null)"
}

declare -A LABEL RPS P50 P99 ERRS REQS GW_US UP_US TOOL_US RSS_MB OTHER CMD
ORDER=()
HWM_NOTE=""

# load_cmd SECONDS BODY URL -> sets LOAD (the command as an array)
load_cmd() {
    if [[ $TOOL == wrk ]]; then
        LOAD=("${LOAD_PIN[@]}" env "GQL_BODY_FILE=$2" wrk -t1 -c"$CONNS" -d "${1}s" --timeout 10s --latency -s "$HERE/post.lua" "$3")
    else
        LOAD=("${LOAD_PIN[@]}" oha --no-tui --output-format json -c "$CONNS" -z "${1}s" -m POST
            -H 'content-type: application/json' -D "$2" "$3")
    fi
}

# measure ID LABEL GW_PID GW_LOG BODY URL
measure() {
    local id=$1 label=$2 gw=$3 gwlog=$4 body=$5 url=$6 out=$RAW/$1.txt
    LABEL[$id]=$label
    ORDER+=("$id")
    if ((WARMUP > 0)); then
        say "$id: warm-up ${WARMUP}s"
        load_cmd "$WARMUP" "$body" "$url"
        "${LOAD[@]}" >"$RAW/$id.warmup.txt" 2>&1 || die "$id warm-up failed: $(tail -5 "$RAW/$id.warmup.txt")"
    fi
    load_cmd "$DURATION" "$body" "$url"
    CMD[$id]=$(shell_words "${LOAD[@]}")
    sleep 0.5 # let the warm-up connections close before the window opens
    reset_hwm "$gw" || HWM_NOTE=" (could not reset VmHWM: peak since start)"
    say "$id: measuring ${DURATION}s"
    local gw0 up0 m0 t0 gw1 up1 m1 t1 rc=0
    gw0=$(proc_ticks "$gw"); up0=$(proc_ticks "$DEMO_PID"); m0=$(machine_ticks); t0=$(date +%s%N)
    local TIMEFORMAT='%3U %3S'
    { time "${LOAD[@]}" >"$out" 2>&1; } 2>"$WORK/$id.time" || rc=$?
    sleep 0.3 # the servers close the connections: count that too
    server_alive "$gw" "the gateway" "$gwlog" "$id"
    server_alive "$DEMO_PID" "switchyard-demo" "$RAW/demo.log" "$id"
    gw1=$(proc_ticks "$gw"); up1=$(proc_ticks "$DEMO_PID"); m1=$(machine_ticks); t1=$(date +%s%N)
    local hwm
    hwm=$(hwm_kb "$gw")
    ((rc == 0)) || die "$id: load tool exited with $rc: $(tail -5 "$out")"

    local reqs rps p50 p99 errs
    if [[ $TOOL == wrk ]]; then
        reqs=$(awk '/ requests in / {print $1}' "$out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
        # post.lua's count (not 200, no "data", or "errors") plus socket errors
        errs=$(awk '/^graphql_bad:/ {e += $2}
                    /^ *Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
                    END {print e + 0}' "$out")
    else
        read -r reqs rps p50 p99 errs < <(node -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const codes = d.statusCodeDistribution || {};
let ok = 0, bad = 0;
for (const [c, n] of Object.entries(codes)) { if (c.startsWith("2")) ok += n; else bad += n; }
for (const [e, n] of Object.entries(d.errorDistribution || {})) if (e !== "aborted due to deadline") bad += n;
const p = d.latencyPercentiles;
console.log(ok + bad, d.summary.requestsPerSec, (p.p50 * 1000).toFixed(3), (p.p99 * 1000).toFixed(3), bad);
' "$out") || die "$id: cannot read oha's JSON (see $out)"
    fi
    [[ -n $reqs && $reqs -gt 0 ]] || die "$id: no completed requests (see $out)"
    local wall_s
    wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a) / 1e9}')
    REQS[$id]=$reqs
    RPS[$id]=$(printf '%.0f' "$rps")
    P50[$id]=$p50
    P99[$id]=$p99
    ERRS[$id]=$errs
    GW_US[$id]=$(awk -v d=$((gw1 - gw0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    UP_US[$id]=$(awk -v d=$((up1 - up0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    RSS_MB[$id]=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
    local tool_cpu
    tool_cpu=$(awk '{print $1 + $2}' "$WORK/$id.time")
    TOOL_US[$id]=$(awk -v c="$tool_cpu" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / n}')
    # CPU used during the window by anything but the gateway, the upstream and the
    # load tool (other tenants, softirq work not charged to a process), in % of one core.
    read -r mb0 _ <<<"$m0"
    read -r mb1 _ <<<"$m1"
    OTHER[$id]=$(awk -v m=$((mb1 - mb0)) -v g=$((gw1 - gw0)) -v u=$((up1 - up0)) -v t="$tool_cpu" -v hz="$CLK_TCK" -v w="$wall_s" \
        'BEGIN {o = (m - g - u) / hz - t; if (o < 0) o = 0; printf "%.0f", o / w * 100}')
    say "$id: ${RPS[$id]} req/s, p50 ${P50[$id]} ms, p99 ${P99[$id]} ms, errors ${ERRS[$id]}, gateway ${GW_US[$id]} us/req, upstream ${UP_US[$id]} us/req, peak RSS ${RSS_MB[$id]} MiB"
}

# ---------------------------------------------------------------- servers ---
say "starting switchyard-demo on 127.0.0.1:$USERS_PORT/$ORDERS_PORT/$INVENTORY_PORT ${SERVER_PIN[*]:+(${SERVER_PIN[*]})}"
"${SERVER_PIN[@]}" "$DEMO_BIN" --users "$DEMO_USERS_ADDR" --orders "$DEMO_ORDERS_ADDR" \
    --inventory "$DEMO_INVENTORY_ADDR" >"$RAW/demo.log" 2>&1 &
DEMO_PID=$!
STARTED+=("$DEMO_PID")
for _ in $(seq 100); do
    kill -0 "$DEMO_PID" 2>/dev/null || die "switchyard-demo exited: $(cat "$RAW/demo.log")"
    (($(grep -c 'listening on' "$RAW/demo.log") >= 3)) && break
    sleep 0.1
done
(($(grep -c 'listening on' "$RAW/demo.log") >= 3)) || die "switchyard-demo not listening after 10 s: $(cat "$RAW/demo.log")"

# The supergraph records the upstream addresses, so it is composed for this run's ports.
say "composing the supergraph (mesh-compose -c mesh.config.ts) for upstreams $DEMO_USERS_ADDR, $DEMO_ORDERS_ADDR, $DEMO_INVENTORY_ADDR"
(cd "$HERE" && node_modules/.bin/mesh-compose -c mesh.config.ts -o supergraph.graphql) >"$RAW/compose.log" 2>&1 ||
    die "mesh-compose failed: $(tail -5 "$RAW/compose.log")"

say "starting Hive Gateway $HIVE_VERSION on 127.0.0.1:$HIVE_PORT ${SERVER_PIN[*]:+(${SERVER_PIN[*]})}"
(
    cd "$HERE"
    # taskset, env and the bin's shebang all exec: $! is the node process itself.
    exec "${SERVER_PIN[@]}" env NODE_ENV=production HIVE_PORT="$HIVE_PORT" \
        node_modules/.bin/hive-gateway supergraph --fork 1 -c gateway.config.ts >"$RAW/hive.log" 2>&1
) &
HIVE_PID=$!
STARTED+=("$HIVE_PID")
for _ in $(seq 300); do
    kill -0 "$HIVE_PID" 2>/dev/null || die "Hive Gateway exited: $(tail -20 "$RAW/hive.log")"
    curl -fsS -o /dev/null "http://127.0.0.1:$HIVE_PORT/readiness" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$HIVE_PORT/readiness" || die "Hive Gateway not ready after 30 s: $(tail -20 "$RAW/hive.log")"
[[ $(tr '\0' ' ' <"/proc/$HIVE_PID/cmdline") == *hive-gateway* ]] || die "pid $HIVE_PID is not the Hive Gateway process"
HIVE_URL=http://127.0.0.1:$HIVE_PORT/graphql
IDLE_RSS=("Hive $(awk -v k="$(rss_kib $HIVE_PID)" 'BEGIN {printf "%.1f", k / 1024}') MiB")

# ----------------------------------------------------------- Hive: check ---
B_HIVE_SINGLE=$(body_file hive-single "$Q_HIVE_SINGLE")
B_HIVE_AGG=$(body_file hive-agg "$Q_HIVE_AGG")
for q in single agg; do
    b=B_HIVE_${q^^}
    e=EXPECT_${q^^}
    code=$(post "${!b}" "$HIVE_URL" "$RAW/hive-$q.answer.json") || die "POST $HIVE_URL: curl failed"
    [[ $code == 200 ]] || die "Hive Gateway answered $code to the $q query: $(head -c 500 "$RAW/hive-$q.answer.json")"
    why=$(check_answer "$RAW/hive-$q.answer.json" "${!e}") ||
        die "Hive Gateway, $q query: $why (answer: $(head -c 500 "$RAW/hive-$q.answer.json"))"
    say "check: Hive, $q query -> $(cat "$RAW/hive-$q.answer.json")"
done

# Machine noise before starting (servers idle).
others=$(for p in wrk h2load oha ghz; do pgrep -x "$p" || true; done | tr '\n' ' ')
others=${others% }
[[ -z $others ]] || say "WARNING: other load generators are running (pids $others): figures will be noisy"
m0=$(machine_ticks); sleep 1; m1=$(machine_ticks)
IDLE_BUSY=$(awk -v a="$m0" -v b="$m1" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * 100 * '"$NCPU"'}')
((IDLE_BUSY > NOISY)) && say "WARNING: the machine is already busy (${IDLE_BUSY}% of a core used by others before the run): figures will be noisy"

measure hive-single "Hive     single (1 call)" "$HIVE_PID" "$RAW/hive.log" "$B_HIVE_SINGLE" "$HIVE_URL"
measure hive-agg "Hive     aggregated (4 calls)" "$HIVE_PID" "$RAW/hive.log" "$B_HIVE_AGG" "$HIVE_URL"
source "$HERE/sweep.sh"
sweep hive "$HIVE_URL" "$B_HIVE_AGG"
stop_pid "$HIVE_PID" # frees its core and memory for the Switchyard rows

# ------------------------------------------------------------- Switchyard ---
SY_NOTE=()
sy_unavailable() { SY_NOTE+=("$1"); say "$1"; }
start_switchyard() { # start_switchyard CONFIG -> SY_PID, 0 when ready
    local config=$1
    (
        cd "$(dirname "$config")"
        export SWITCHYARD_LISTEN=127.0.0.1:$SY_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT
        exec "${SERVER_PIN[@]}" "$SY_BIN" --log warn run --config "$(basename "$config")" >"$RAW/switchyard.log" 2>&1
    ) &
    SY_PID=$!
    STARTED+=("$SY_PID")
    for _ in $(seq 300); do
        kill -0 "$SY_PID" 2>/dev/null || { wait "$SY_PID" 2>/dev/null || true; return 1; }
        curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
if [[ $WITH_SY != 0 ]]; then
    [[ -f $SY_CONFIG ]] || die "config $SY_CONFIG not found"
    say "starting switchyard on 127.0.0.1:$SY_PORT (admin $ADMIN_PORT) with ${SY_CONFIG#"$ROOT"/}"
    SY_OK=0
    if start_switchyard "$SY_CONFIG"; then
        SY_OK=1
    elif grep -q '^ *# >>> joins' "$SY_CONFIG" && grep -qi 'joins' "$RAW/switchyard.log"; then
        # The join format in switchyard.yaml is a guess: retry without it, so that the
        # single-service row can still be measured.
        say "switchyard refused the config's joins ($(grep -i -m1 'joins' "$RAW/switchyard.log" | cut -c1-200)); retrying without them"
        cp "$RAW/switchyard.log" "$RAW/switchyard-with-joins.log"
        stop_pid "$SY_PID"
        sed -e '/^ *# >>> joins/,/^ *# <<< joins/d' \
            -e "s|^\( *sources:\).*|\1 [\"$ROOT/proto\"]|" "$SY_CONFIG" >"$WORK/switchyard-nojoins.yaml"
        SY_NOTE+=("switchyard: the joins in ${SY_CONFIG#"$ROOT"/} were refused (see ${RAW#"$ROOT"/}/switchyard-with-joins.log); ran without them")
        start_switchyard "$WORK/switchyard-nojoins.yaml" && SY_OK=1
    fi
    if ((SY_OK == 0)); then
        sy_unavailable "switchyard: GraphQL endpoint not available yet (the gateway did not start: $(tail -3 "$RAW/switchyard.log" | tr '\n' ' ' | cut -c1-300))"
    else
        SY_URL=http://127.0.0.1:$SY_PORT/graphql
        IDLE_RSS+=("Switchyard $(awk -v k="$(rss_kib $SY_PID)" 'BEGIN {printf "%.1f", k / 1024}') MiB")
        code=$(post "$(body_file probe '{ __typename }')" "$SY_URL" "$RAW/switchyard-probe.json") || code=000
        if [[ $code == 404 || $code == 000 ]]; then
            sy_unavailable "switchyard: GraphQL endpoint not available yet (POST /graphql answered $code)"
        else
            B_SY_SINGLE=$(body_file sy-single "$Q_SY_SINGLE")
            B_SY_AGG=$(body_file sy-agg "$Q_SY_AGG")
            for q in single agg; do
                b=B_SY_${q^^}
                e=EXPECT_${q^^}
                why=""
                code=$(post "${!b}" "$SY_URL" "$RAW/sy-$q.answer.json") || code=000
                if [[ $code == 200 ]] && why=$(check_answer "$RAW/sy-$q.answer.json" "${!e}"); then
                    say "check: Switchyard, $q query -> $(cat "$RAW/sy-$q.answer.json")"
                    if [[ $q == single ]]; then lbl="Switchyard single (1 call)"; else lbl="Switchyard aggregated"; fi
                    measure "sy-$q" "$lbl" "$SY_PID" "$RAW/switchyard.log" "${!b}" "$SY_URL"
                    [[ $q == agg ]] && sweep switchyard "$SY_URL" "${!b}"
                else
                    sy_unavailable "switchyard: the $q query is not answered yet (HTTP $code${why:+, $why}: $(head -c 300 "$RAW/sy-$q.answer.json"))"
                fi
            done
        fi
    fi
else
    SY_NOTE+=("switchyard: not measured (BENCH_SWITCHYARD=0 or no binary)")
fi

# ----------------------------------------------------------------- report ---
REPORT=$WORK/report.txt
{
    echo "Switchyard vs Hive Gateway, GraphQL — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- gateway demo proto Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes)')," \
        "$NCPU CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
    if [[ $TOOL == wrk ]]; then echo -n "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t1 -c$CONNS (bench/graphql/post.lua)"; else echo -n "$(oha --version 2>&1 | head -1) -c$CONNS"; fi
    echo ", Node $(node --version), Hive Gateway $HIVE_VERSION (NODE_ENV=production, --fork 1)"
    echo "pinning: $PIN$([[ $PIN == split ]] && echo ' (load tool on CPU 0; gateway and upstream on CPU 1)')$([[ $PIN == load ]] && echo ' (load tool on CPU 0; servers unpinned)');" \
        "${WARMUP}s warm-up then ${DURATION}s measured per row; $CONNS connections, HTTP/1.1 keep-alive"
    echo "machine busy before the run (others): ${IDLE_BUSY}% of a core"
    echo
    printf '%-30s %8s %8s %8s %7s %10s %10s %9s %10s %6s\n' \
        row req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req" "peak MiB" "tool us/r" other
    for id in "${ORDER[@]}"; do
        mark=""
        ((OTHER[$id] > NOISY)) && mark="*"
        printf '%-30s %8s %8s %8s %7s %10s %10s %9s %10s %5s%%%s\n' "${LABEL[$id]}" "${RPS[$id]}" \
            "${P50[$id]}" "${P99[$id]}" "${ERRS[$id]}" "${GW_US[$id]}" "${UP_US[$id]}" "${RSS_MB[$id]}" "${TOOL_US[$id]}" "${OTHER[$id]}" "$mark"
    done
    noisy=0
    for id in "${ORDER[@]}"; do ((OTHER[$id] > NOISY)) && noisy=1; done
    ((noisy == 0)) || echo "* other processes used more than ${NOISY}% of a core during this row: the machine was busy, re-run to confirm"
    echo
    echo "gw us/req = CPU time (utime+stime, all threads, /proc/PID/stat) of the gateway during the measured"
    echo "window / completed requests; up = switchyard-demo (all three upstream services, one process);"
    echo "peak MiB = the gateway's VmHWM during the row (reset before it)$HWM_NOTE; tool = the load"
    echo "generator's CPU per request; other = CPU used meanwhile by everything else, in % of one core."
    echo "RSS when ready, before any load: $(IFS=,; echo "${IDLE_RSS[*]}" | sed 's/,/, /g')"
    total_errs=0
    for id in "${ORDER[@]}"; do total_errs=$((total_errs + ERRS[$id])); done
    ((total_errs == 0)) || echo "WARNING: $total_errs requests failed, were not 200 or carried GraphQL errors (see ${RAW#"$ROOT"/}/)"
    [[ $TOOL == oha ]] && echo "(oha only sees HTTP statuses: answers were checked once per query, not under load)"
    for n in "${SY_NOTE[@]}"; do echo "$n"; done
    for q in single agg; do
        [[ -n ${RPS[sy-$q]:-} && -n ${RPS[hive-$q]:-} ]] || continue
        awk -v q="$q" -v sr="${RPS[sy-$q]}" -v hr="${RPS[hive-$q]}" -v sc="${GW_US[sy-$q]}" -v hc="${GW_US[hive-$q]}" \
            -v sp="${P99[sy-$q]}" -v hp="${P99[hive-$q]}" -v sm="${RSS_MB[sy-$q]}" -v hm="${RSS_MB[hive-$q]}" 'BEGIN {
            printf "%-10s Switchyard/Hive: req/s %.1fx (target >= 10: %s), CPU/req %.3f (target <= 0.1: %s), p99 %.3f (lower: %s), peak RSS %.3f\n",
                q, sr / hr, (sr / hr >= 10 ? "MET" : "NOT MET"), sc / hc, (sc / hc <= 0.1 ? "MET" : "NOT MET"),
                sp / hp, (sp < hp ? "yes" : "no"), sm / hm }'
    done
    echo
    echo "Queries:"
    echo "  Hive single:           $Q_HIVE_SINGLE"
    echo "  Hive aggregated:       $Q_HIVE_AGG"
    echo "  Switchyard single:     $Q_SY_SINGLE"
    echo "  Switchyard aggregated: $Q_SY_AGG"
    echo "Answers checked before measuring (Hive): $(cat "$RAW/hive-single.answer.json")"
    echo "                                          $(cat "$RAW/hive-agg.answer.json")"
    echo
    if [[ -f $SWEEP_CSV ]] && grep -q '^switchyard' "$SWEEP_CSV"; then
        echo "Aggregated query against offered load (oha -q, latency-corrected, ${SWEEP_DURATION}s per point; plot ${OUT#"$ROOT"/}/graphql-latency.png):"
        column -t -s, "$SWEEP_CSV"
        echo
    fi
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_TOOL=$TOOL BENCH_PIN=$PIN bench/graphql/run.sh"
    echo "Load commands (body files: {\"query\": <the query above>}; servers${SERVER_PIN[*]:+ under '${SERVER_PIN[*]}'}):"
    for id in "${ORDER[@]}"; do echo "  $id: ${CMD[$id]//"$WORK"\//}"; done
} >"$REPORT"
cp "$REPORT" "$OUT/graphql.txt"
sweep_plot
echo
cat "$REPORT"
echo
say "report written to ${OUT#"$ROOT"/}/graphql.txt; raw tool output and logs in ${RAW#"$ROOT"/}/"
