#!/usr/bin/env bash
# Switchyard benchmark: REST/JSON through the gateway vs. the same call sent
# to the upstream as gRPC directly. One run measures, in this order:
#   rest-h1    GET /v1/users/1, HTTP/1.1 keep-alive, wrk, 64 connections
#   grpc-h2    demo.users.v1.UserService/GetUser straight to the upstream,
#              h2load, 64 connections x 1 stream
#   rest-h2c   GET /v1/users/1 over h2c (prior knowledge), h2load, 64 x 1
#   rest-h1-c1 / grpc-h2-c1   the same two calls at 1 connection (unloaded
#              latency; skipped with BENCH_UNLOADED_DURATION=0)
# and prints requests/s, p50/p99 latency, errors, and the CPU time per request
# of the gateway and of the upstream process (utime+stime from /proc/PID/stat).
# See bench/README.md. Usage: bench/run.sh   (knobs: bench/run.sh --help)
set -Eeuo pipefail

usage() {
    cat <<'EOF'
Usage: bench/run.sh

Environment knobs (defaults in brackets):
  BENCH_DURATION=10           measured seconds per scenario
  BENCH_WARMUP=3              warm-up seconds before each scenario (not measured)
  BENCH_CONNECTIONS=64        concurrent connections (h2load: 1 stream each)
  BENCH_UNLOADED_DURATION=3   seconds for the 1-connection latency rows; 0 = skip
  BENCH_RATE=10000            total req/s of the fixed-rate rows (oha, open loop, evenly spaced,
                              same 64 connections, below saturation); 0 = skip
  BENCH_PIN=split             split: load tool on CPU 0, gateway + upstream on CPU 1
                              load:  load tool on CPU 0, servers unpinned
                              none:  no pinning
  BENCH_BUILD=1               0 = do not run cargo build (use existing binaries)
  BENCH_BIN_DIR=target/release
  BENCH_CONFIG=bench/gateway.yaml
  BENCH_GATEWAY_PORT=8080 BENCH_ADMIN_PORT=9090
  BENCH_USERS_PORT=50051 BENCH_ORDERS_PORT=50052 BENCH_INVENTORY_PORT=50053
                              preferred ports; a busy one is replaced by a free one
  BENCH_OUT=bench/out         results: latest.txt (the report), raw/ (tool output, logs)
  BENCH_NOISY_PERCENT=20      flag rows during which other processes used more than this % of a core
EOF
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNS=${BENCH_CONNECTIONS:-64}
UNLOADED=${BENCH_UNLOADED_DURATION:-3}
RATE=${BENCH_RATE:-10000}
PIN=${BENCH_PIN:-split}
BUILD=${BENCH_BUILD:-1}
BIN_DIR=${BENCH_BIN_DIR:-$ROOT/target/release}
CONFIG=${BENCH_CONFIG:-$ROOT/bench/gateway.yaml}
OUT=${BENCH_OUT:-$ROOT/bench/out}
abspath() { [[ $1 == /* ]] && echo "$1" || echo "$ROOT/$1"; }
BIN_DIR=$(abspath "$BIN_DIR")
CONFIG=$(abspath "$CONFIG")
OUT=$(abspath "$OUT")
RAW=$OUT/raw
NOISY=${BENCH_NOISY_PERCENT:-20} # "other" CPU (% of a core) above which a row is flagged

die() { printf '\nbench: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'bench: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP CONNS UNLOADED; do
    is_uint "${!v}" || die "BENCH_$v must be a whole number, got '${!v}'"
done
((DURATION > 0 && CONNS > 0)) || die "BENCH_DURATION and BENCH_CONNECTIONS must be > 0"
((DURATION + WARMUP <= 120 && UNLOADED <= 60)) || die "durations capped (duration+warmup <= 120 s, unloaded <= 60 s): this is a shared machine"
case $PIN in split | load | none) ;; *) die "BENCH_PIN must be split, load or none" ;; esac

# ---------------------------------------------------------------- cleanup ---
STARTED=()   # PIDs of the processes this script started; only these are killed
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM HUP

# ------------------------------------------------------------------ tools ---
need wrk wrk
need h2load nghttp2-client
need curl curl
need taskset util-linux
need python3 python3
((RATE > 0)) && need_oha
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

# ------------------------------------------------------------------ build ---
if [[ $BUILD != 0 ]]; then
    say "cargo build --release --locked -p switchyard -p switchyard-demo"
    cargo build --release --locked -p switchyard -p switchyard-demo >&2 || die "cargo build failed"
fi
GATEWAY_BIN=$BIN_DIR/switchyard
DEMO_BIN=$BIN_DIR/switchyard-demo
[[ -x $GATEWAY_BIN && -x $DEMO_BIN ]] || die "binaries not found in $BIN_DIR (run without BENCH_BUILD=0)"
[[ -f $CONFIG ]] || die "config $CONFIG not found"

# ------------------------------------------------------------------ ports ---
BUSY=" $(listening_ports | tr '\n' ' ') "
pick_port GW_PORT "${BENCH_GATEWAY_PORT:-8080}"
pick_port ADMIN_PORT "${BENCH_ADMIN_PORT:-9090}"
pick_port USERS_PORT "${BENCH_USERS_PORT:-50051}"
pick_port ORDERS_PORT "${BENCH_ORDERS_PORT:-50052}"
pick_port INVENTORY_PORT "${BENCH_INVENTORY_PORT:-50053}"

mkdir -p "$RAW"
rm -f "$RAW"/*.txt "$RAW"/*.log

# ---------------------------------------------------------------- servers ---
say "starting switchyard-demo on 127.0.0.1:$USERS_PORT/$ORDERS_PORT/$INVENTORY_PORT ${SERVER_PIN[*]:+(${SERVER_PIN[*]})}"
"${SERVER_PIN[@]}" "$DEMO_BIN" --users "127.0.0.1:$USERS_PORT" --orders "127.0.0.1:$ORDERS_PORT" \
    --inventory "127.0.0.1:$INVENTORY_PORT" >"$RAW/demo.log" 2>&1 &
DEMO_PID=$!
STARTED+=("$DEMO_PID")
for _ in $(seq 100); do
    kill -0 "$DEMO_PID" 2>/dev/null || die "switchyard-demo exited: $(cat "$RAW/demo.log")"
    (($(grep -c 'listening on' "$RAW/demo.log") >= 3)) && break
    sleep 0.1
done
(($(grep -c 'listening on' "$RAW/demo.log") >= 3)) || die "switchyard-demo not listening after 10 s: $(cat "$RAW/demo.log")"

say "starting switchyard on 127.0.0.1:$GW_PORT (admin $ADMIN_PORT) with $CONFIG"
# Started from the config's directory with a bare file name (the subshell execs, so $! is the
# gateway): other scripts on this shared machine have been seen to `pkill -f bench/gateway.yaml`.
(
    cd "$(dirname "$CONFIG")"
    export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT \
        DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT DEMO_ORDERS_ADDR=127.0.0.1:$ORDERS_PORT \
        DEMO_INVENTORY_ADDR=127.0.0.1:$INVENTORY_PORT
    exec "${SERVER_PIN[@]}" "$GATEWAY_BIN" --log warn run --config "$(basename "$CONFIG")" >"$RAW/gateway.log" 2>&1
) &
GW_PID=$!
STARTED+=("$GW_PID")
for _ in $(seq 300); do
    kill -0 "$GW_PID" 2>/dev/null || die "switchyard exited: $(cat "$RAW/gateway.log")"
    curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" || die "gateway not ready after 30 s: $(cat "$RAW/gateway.log")"
# taskset execs the program, so these PIDs are the servers themselves.
for pid in "$DEMO_PID" "$GW_PID"; do [[ -r /proc/$pid/stat ]] || die "no /proc/$pid/stat"; done

# ----------------------------------------------------------------- sanity ---
REST_URL=http://127.0.0.1:$GW_PORT/v1/users/1
GRPC_URL=http://127.0.0.1:$USERS_PORT/demo.users.v1.UserService/GetUser
EXPECTED='{"id":"1","name":"Ada Lovelace","email":"ada@example.com","role":"ROLE_ADMIN","createTime":"2024-01-01T01:00:00Z"}'
json_equal() { python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]) == json.load(open(sys.argv[2])) else 1)' "$1" "$2" 2>/dev/null; }

code=$(curl -sS -o "$WORK/rest.json" -w '%{http_code}' "$REST_URL") || die "GET $REST_URL: curl failed"
[[ $code == 200 ]] || die "GET $REST_URL answered $code, not 200: $(head -c 500 "$WORK/rest.json")"
json_equal "$EXPECTED" "$WORK/rest.json" ||
    die "GET $REST_URL answered 200 with unexpected JSON: $(head -c 500 "$WORK/rest.json") (expected $EXPECTED)"
say "sanity: GET /v1/users/1 (HTTP/1.1) -> 200 $(cat "$WORK/rest.json")"

code=$(curl -sS --http2-prior-knowledge -o "$WORK/rest2.json" -w '%{http_code} %{http_version}' "$REST_URL") || die "h2c GET $REST_URL: curl failed"
[[ $code == "200 2" ]] || die "h2c GET $REST_URL answered '$code' (status, HTTP version), expected '200 2'"
json_equal "$EXPECTED" "$WORK/rest2.json" || die "h2c GET $REST_URL: unexpected JSON: $(head -c 500 "$WORK/rest2.json")"
say "sanity: GET /v1/users/1 (h2c) -> 200, same JSON"

# One gRPC frame: flag 0, length 3 (big-endian u32), GetUserRequest{id: "1"} = 0a 01 31.
BODY=$WORK/body.bin
printf '\x00\x00\x00\x00\x03\x0a\x01\x31' >"$BODY"
curl -sS --http2-prior-knowledge -D "$WORK/grpc.headers" -o "$WORK/grpc.out" --data-binary "@$BODY" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$GRPC_URL" || die "gRPC GetUser: curl failed"
GRPC_STATUS=$(tr -d '\r' <"$WORK/grpc.headers" | awk -F': *' 'tolower($1) == "grpc-status" {s = $2} END {print s}')
[[ $GRPC_STATUS == 0 ]] ||
    die "gRPC GetUser direct: grpc-status '${GRPC_STATUS:-missing}' (headers: $(tr -d '\r' <"$WORK/grpc.headers" | tr '\n' ' '))"
grep -aq 'Ada Lovelace' "$WORK/grpc.out" || die "gRPC GetUser direct: reply does not contain user 1"
say "sanity: gRPC GetUser{id:\"1\"} direct -> grpc-status: $GRPC_STATUS, $(stat -c %s "$WORK/grpc.out")-byte reply (user 1)"

# ------------------------------------------------------------ measurement ---
proc_ticks() { # utime + stime of all threads of PID, in clock ticks
    local s
    s=$(<"/proc/$1/stat") || die "process $1 is gone"
    s=${s##*) } # drop "pid (comm) "; field 3 (state) is now $1, so 14/15 are $12/$13
    set -- $s
    echo $((${12} + ${13}))
}
percentiles() { # file with one latency (us) per line -> "p50_ms p99_ms" (nearest rank)
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan nan"; exit }
        i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
        i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
        printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }'
}


server_alive() { # server_alive PID NAME LOG SCENARIO
    kill -0 "$1" 2>/dev/null && return 0
    local status=0
    wait "$1" 2>/dev/null || status=$?
    if ((status > 128)); then status="killed by signal $((status - 128))"; else status="exit status $status"; fi
    die "$2 (pid $1) went away during $4 ($status; Ctrl-C, or another process killed it): $(tail -5 "$3")"
}

declare -A LABEL RPS P50 P99 ERRS REQS GW_US UP_US TOOL_US OTHER CMD
ORDER=()

# measure ID LABEL SECONDS WARMUP TOOL ARGS...  (TOOL is wrk or h2load; the
# duration flag is added here so that warm-up and measured runs are identical)
measure() {
    local id=$1 label=$2 secs=$3 warm=$4 tool=$5
    shift 5
    local -a args=("$@") dur log=()
    local out=$RAW/$id.txt
    case $tool in
        wrk) dur=(-d "${secs}s") ;;
        oha) dur=(-z "${secs}s") ;;
        *) dur=(-D "$secs"); log=(--log-file "$WORK/$id.lat") ;;
    esac
    LABEL[$id]=$label
    ORDER+=("$id")
    CMD[$id]=$(shell_words "${LOAD_PIN[@]}" "$tool" "${dur[@]}" "${args[@]}")
    if ((warm > 0)); then
        say "$id: warm-up ${warm}s"
        local -a wdur
        case $tool in
            wrk) wdur=(-d "${warm}s") ;;
            oha) wdur=(-z "${warm}s") ;;
            *) wdur=(-D "$warm") ;;
        esac
        "${LOAD_PIN[@]}" "$tool" "${wdur[@]}" "${args[@]}" >"$RAW/$id.warmup.txt" 2>&1 ||
            die "$id warm-up failed: $(tail -5 "$RAW/$id.warmup.txt")"
    fi
    rm -f "$WORK/$id.lat" # h2load appends to its --log-file
    sleep 0.5 # let the warm-up connections close before the window opens
    say "$id: measuring ${secs}s: ${CMD[$id]}"
    local gw0 up0 m0 t0 gw1 up1 m1 t1 rc=0 tool_cpu
    gw0=$(proc_ticks "$GW_PID"); up0=$(proc_ticks "$DEMO_PID"); m0=$(machine_ticks); t0=$(date +%s%N)
    local TIMEFORMAT='%3U %3S'
    { time "${LOAD_PIN[@]}" "$tool" "${dur[@]}" "${log[@]}" "${args[@]}" >"$out" 2>&1; } 2>"$WORK/$id.time" || rc=$?
    sleep 0.3 # the servers close the connections: count that too
    # (Ctrl-C reaches the servers too, and wrk/h2load exit 0 on SIGINT, which makes bash drop its own trap.)
    server_alive "$GW_PID" "the gateway" "$RAW/gateway.log" "$id"
    server_alive "$DEMO_PID" "switchyard-demo" "$RAW/demo.log" "$id"
    gw1=$(proc_ticks "$GW_PID"); up1=$(proc_ticks "$DEMO_PID"); m1=$(machine_ticks); t1=$(date +%s%N)
    ((rc == 0)) || die "$id: $tool exited with $rc: $(tail -5 "$out")"

    local reqs rps p50 p99 errs
    if [[ $tool == wrk ]]; then
        read -r reqs rps p50 p99 errs < <(wrk_summary "$out")
    elif [[ $tool == oha ]]; then
        read -r reqs rps p50 p99 errs < <(oha_summary "$out") || die "$id: cannot read oha's JSON (see $out)"
    else
        # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
        reqs=$(awk '/^requests:/ {print $6}' "$out")
        rps=$(awk '/^finished in/ {print $4}' "$out")
        # everything that is not a 2xx: 3xx/4xx/5xx, plus streams that failed (-1 in the log)
        errs=$(awk -F'\t' '$2 < 200 || $2 > 299 {e++} END {print e + 0}' "$WORK/$id.lat")
        local failed
        failed=$(awk '/^requests:/ {print $10 + 0}' "$out")
        ((${failed:-0} > errs)) && errs=$failed
        awk -F'\t' '{print $3}' "$WORK/$id.lat" >"$WORK/$id.us"
        read -r p50 p99 < <(percentiles "$WORK/$id.us")
        rm -f "$WORK/$id.lat" "$WORK/$id.us"
    fi
    [[ -n $reqs && $reqs -gt 0 ]] || die "$id: no completed requests (see $out)"
    tool_cpu=$(awk '{print $1 + $2}' "$WORK/$id.time")
    local wall_s
    wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a) / 1e9}')
    REQS[$id]=$reqs
    RPS[$id]=$(printf '%.0f' "$rps")
    P50[$id]=$p50
    P99[$id]=$p99
    ERRS[$id]=$errs
    GW_US[$id]=$(awk -v d=$((gw1 - gw0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    UP_US[$id]=$(awk -v d=$((up1 - up0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    TOOL_US[$id]=$(awk -v c="$tool_cpu" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / n}')
    # CPU used during the window by anything other than gateway, upstream and load tool
    # (other tenants, kernel softirq work not charged to a process), in % of one core.
    read -r mb0 _ <<<"$m0"
    read -r mb1 _ <<<"$m1"
    OTHER[$id]=$(awk -v m=$((mb1 - mb0)) -v g=$((gw1 - gw0)) -v u=$((up1 - up0)) -v t="$tool_cpu" \
        -v hz="$CLK_TCK" -v w="$wall_s" 'BEGIN {o = (m - g - u) / hz - t; if (o < 0) o = 0; printf "%.0f", o / w * 100}')
    say "$id: ${RPS[$id]} req/s, p50 ${P50[$id]} ms, p99 ${P99[$id]} ms, errors ${ERRS[$id]}, gateway ${GW_US[$id]} us/req, upstream ${UP_US[$id]} us/req"
}

# Machine noise before starting (servers idle).
others=$(for p in wrk h2load oha ghz; do pgrep -x "$p" || true; done | tr '\n' ' ')
others=${others% }
[[ -z $others ]] || say "WARNING: other load generators are running (pids $others): figures will be noisy"
m0=$(machine_ticks); sleep 1; m1=$(machine_ticks)
IDLE_BUSY=$(awk -v a="$m0" -v b="$m1" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * 100 * '"$NCPU"'}')
((IDLE_BUSY > NOISY)) && say "WARNING: the machine is already busy (${IDLE_BUSY}% of a core used by others before the run): figures will be noisy"

GRPC_HDRS=(-H 'content-type: application/grpc' -H 'te: trailers')
measure rest-h1 "REST  HTTP/1.1 -> gateway -> gRPC" "$DURATION" "$WARMUP" \
    wrk -t1 -c"$CONNS" --latency "$REST_URL"
measure grpc-h2 "gRPC  h2c direct to upstream" "$DURATION" "$WARMUP" \
    h2load -t1 -c"$CONNS" -m1 -d "$BODY" "${GRPC_HDRS[@]}" "$GRPC_URL"
measure rest-h2c "REST  h2c -> gateway -> gRPC" "$DURATION" "$WARMUP" \
    h2load -t1 -c"$CONNS" -m1 "$REST_URL"
if ((RATE > 0)); then
    OHA=(oha --no-tui --latency-correction --output-format json -c "$CONNS" -q "$RATE")
    measure rest-h1-rate "REST  HTTP/1.1 at $RATE req/s" "$DURATION" 1 \
        "${OHA[@]}" "$REST_URL"
    measure grpc-h2-rate "gRPC  direct at $RATE req/s" "$DURATION" 1 \
        "${OHA[@]}" --http2 -m POST -D "$BODY" "${GRPC_HDRS[@]}" "$GRPC_URL"
fi
if ((UNLOADED > 0)); then
    measure rest-h1-c1 "REST  HTTP/1.1, 1 connection" "$UNLOADED" 1 \
        wrk -t1 -c1 --latency "$REST_URL"
    measure grpc-h2-c1 "gRPC  direct, 1 connection" "$UNLOADED" 1 \
        h2load -t1 -c1 -m1 -d "$BODY" "${GRPC_HDRS[@]}" "$GRPC_URL"
fi

# ----------------------------------------------------------------- report ---
REPORT=$WORK/report.txt
{
    echo "Switchyard benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- gateway plugins demo proto Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes)')," \
        "$NCPU CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
    echo "$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(h2load --version 2>&1 | head -1)"
    echo "pinning: $PIN$([[ $PIN == split ]] && echo ' (load tool on CPU 0; gateway and upstream on CPU 1)')$([[ $PIN == load ]] && echo ' (load tool on CPU 0; servers unpinned)');" \
        "${WARMUP}s warm-up then ${DURATION}s measured per scenario; $CONNS connections" \
        "(h2load: $CONNS connections x 1 stream, so every tool keeps $CONNS requests in flight)"
    echo "machine busy before the run (others): ${IDLE_BUSY}% of a core"
    echo
    printf '%-36s %9s %8s %8s %7s %10s %10s %10s %6s\n' \
        scenario req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req" "tool us/r" "other"
    for id in "${ORDER[@]}"; do
        mark=""
        ((OTHER[$id] > NOISY)) && mark="*"
        printf '%-36s %9s %8s %8s %7s %10s %10s %10s %5s%%%s\n' "${LABEL[$id]}" "${RPS[$id]}" \
            "${P50[$id]}" "${P99[$id]}" "${ERRS[$id]}" "${GW_US[$id]}" "${UP_US[$id]}" "${TOOL_US[$id]}" "${OTHER[$id]}" "$mark"
    done
    noisy=0
    for id in "${ORDER[@]}"; do ((OTHER[$id] > NOISY)) && noisy=1; done
    ((noisy == 0)) || echo "* other processes used more than ${NOISY}% of a core during this row: the machine was busy, re-run to confirm"
    echo
    echo "us/req = CPU time (utime+stime, all threads, /proc/PID/stat) used by the process during the measured"
    echo "window / completed requests. gw = switchyard, up = switchyard-demo (the upstream), tool = the load"
    echo "generator; other = CPU used meanwhile by everything else, in % of one core."
    echo
    noisy_note() { # noisy_note ID... -> text to append to a verdict that involves a flagged row
        local id
        for id in "$@"; do ((OTHER[$id] > NOISY)) && { echo " (measured while the machine was busy: re-run)"; return; }; done
        true
    }
    awk -v g="${GW_US[rest-h1]}" -v u="${UP_US[rest-h1]}" -v ud="${UP_US[grpc-h2]}" -v note="$(noisy_note rest-h1)" 'BEGIN {
        r = g / u
        printf "REST CPU ratio gateway/upstream (rest-h1):   %.2f  (%.1f / %.1f us/req; target <= 1.5: %s)%s\n", r, g, u, (r <= 1.5 ? "MET" : "NOT MET"), note
        printf "gateway vs upstream called directly:         %.2f  (%.1f / %.1f us/req: behind the gateway the upstream gets one\n", g / ud, g, ud
        printf "                                             multiplexed connection and is cheaper per call than with 64)\n"
        printf "end-to-end CPU per REST call (gw + up):      %.1f us vs %.1f us for the direct gRPC call (%.1fx)\n", g + u, ud, (g + u) / ud }'
    awk -v g="${GW_US[rest-h2c]}" -v u="${UP_US[rest-h2c]}" 'BEGIN {
        printf "REST CPU ratio gateway/upstream (rest-h2c):  %.2f  (%.1f / %.1f us/req)\n", g / u, g, u }'
    awk -v a="${P99[rest-h1]}" -v b="${P99[grpc-h2]}" -v ra="${RPS[rest-h1]}" -v rb="${RPS[grpc-h2]}" -v c="$CONNS" \
        -v note="$(noisy_note rest-h1 grpc-h2)" 'BEGIN {
        d = a - b
        printf "p99 REST (rest-h1) - p99 direct gRPC:        %+.3f ms  (target within 1 ms: %s)%s\n", d, (d <= 1 ? "MET" : "NOT MET"), note
        printf "  at saturation latency is mostly queueing: %d in flight / req/s = %.2f ms (REST) vs %.2f ms (gRPC)\n", c, c / ra * 1000, c / rb * 1000 }'
    if ((RATE > 0)); then
        awk -v a="${P99[rest-h1-rate]}" -v b="${P99[grpc-h2-rate]}" -v a5="${P50[rest-h1-rate]}" -v b5="${P50[grpc-h2-rate]}" \
            -v note="$(noisy_note rest-h1-rate grpc-h2-rate)" 'BEGIN {
            d = a - b
            printf "same offered load (%d req/s, %d connections): p50 %+.3f ms, p99 %+.3f ms REST vs gRPC (target p99 within 1 ms: %s)%s\n", '"$RATE"', '"$CONNS"', a5 - b5, d, (d <= 1 ? "MET" : "NOT MET"), note }'
    fi
    if ((UNLOADED > 0)); then
        awk -v a="${P99[rest-h1-c1]}" -v b="${P99[grpc-h2-c1]}" -v a5="${P50[rest-h1-c1]}" -v b5="${P50[grpc-h2-c1]}" 'BEGIN {
            printf "unloaded (1 connection) REST - gRPC:        p50 %+.3f ms, p99 %+.3f ms (latency the gateway hop adds)\n", a5 - b5, a - b }'
    fi
    total_errs=0
    for id in "${ORDER[@]}"; do total_errs=$((total_errs + ERRS[$id])); done
    ((total_errs == 0)) || echo "WARNING: $total_errs requests failed or were not 2xx (see $RAW/)"
    echo "direct gRPC checked once with curl: grpc-status: $GRPC_STATUS (h2load only sees HTTP status 200)"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_UNLOADED_DURATION=$UNLOADED BENCH_RATE=$RATE BENCH_PIN=$PIN bench/run.sh"
    echo "Load commands (body.bin = 00 00 00 00 03 0a 01 31; servers${SERVER_PIN[*]:+ under '${SERVER_PIN[*]}'}: switchyard-demo --users 127.0.0.1:$USERS_PORT ...; switchyard --log warn run --config ${CONFIG#"$ROOT"/}):"
    for id in "${ORDER[@]}"; do echo "  $id: ${CMD[$id]//"$WORK"\//}"; done
} >"$REPORT"
cp "$REPORT" "$OUT/latest.txt"
echo
cat "$REPORT"
echo
say "report written to ${OUT#"$ROOT"/}/latest.txt; raw tool output in ${RAW#"$ROOT"/}/"
