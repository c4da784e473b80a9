#!/usr/bin/env bash
# Cache cost: GET /v1/users/1 through the gateway uncached (bench/gateway-plain.yaml:
# transcode, call the demo upstream, render) against the same route with the
# response cache on (bench/cache/gateway-cached.yaml: every measured request a
# hit), in one run, and against the floor (bench/cache/gateway-floor.yaml: the
# same answer from an edge rule, no route or upstream at all). Each row: its own gateway process, warm-up, then wrk -c64
# for BENCH_DURATION s; CPU per request of the gateway and the upstream from
# /proc/PID/stat. wrk on CPU 0, gateway + upstream on CPU 1.
# Target (issue 9): a hit costs the gateway at least 3x less CPU than the
# uncached transcoded call.
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=64 BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-3} CONNS=${BENCH_CONNECTIONS:-64}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-cache
die() { printf 'cache/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'cache/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
need wrk wrk; need curl curl; need taskset util-linux

STARTED=() # only the processes started here are killed
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
if (($(getconf _NPROCESSORS_ONLN) >= 2)); then LOAD_PIN=(taskset -c 0) SRV_PIN=(taskset -c 1); else LOAD_PIN=() SRV_PIN=(); fi

if [[ ${BENCH_BUILD:-1} != 0 ]]; then build_binaries release; else build_binaries none; fi
pick_demo_ports
mkdir -p "$RAW"; rm -f "$RAW"/*
URL=http://127.0.0.1:$GW_PORT/v1/users/1
start_demo "$RAW/demo.log"

HZ=$(getconf CLK_TCK)
WRK=(wrk -t1 -c"$CONNS" --latency "$URL")
declare -A ROW; ORDER=()

run_row() { # run_row ID CONFIG EXPECTED-CACHE-STATUS-PREFIX (empty: none)
    local id=$1 cfg=$2 want=$3
    say "$id: starting switchyard with $cfg"
    start_gateway "$cfg" "$RAW/$id.gateway.log"
    local gw=$GW got
    for _ in 1 2; do
        curl -fsS -D "$RAW/$id.headers" -o "$RAW/$id.body" "$URL" || die "$id: GET failed"
    done
    grep -q 'Ada Lovelace' "$RAW/$id.body" || die "$id: unexpected body: $(head -c 300 "$RAW/$id.body")"
    got=$(awk 'tolower($1) == "cache-status:" {sub(/\r$/, ""); $1 = ""; print substr($0, 2)}' "$RAW/$id.headers")
    if [[ -n $want ]]; then [[ $got == "$want"* ]] || die "$id: second GET's Cache-Status is '$got', not '$want…'"
    else [[ -z $got ]] || die "$id: an uncached answer had Cache-Status '$got'"; fi
    say "$id: sanity ok (Cache-Status: ${got:-none})"
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${WRK[@]}" -d "${WARMUP}s" >"$RAW/$id.warmup.txt" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.5
    local g0 u0 g1 u1 calls0 calls1 out=$RAW/$id.wrk.txt
    g0=$(ticks "$gw"); u0=$(ticks "$DEMO_PID")
    calls0=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^switchyard_upstream_requests_total\{/ {s += $NF} END {print s + 0}')
    "${LOAD_PIN[@]}" "${WRK[@]}" -d "${DURATION}s" >"$out" 2>&1 || die "$id: wrk failed: $(tail -3 "$out")"
    sleep 0.3
    g1=$(ticks "$gw"); u1=$(ticks "$DEMO_PID")
    calls1=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^switchyard_upstream_requests_total\{/ {s += $NF} END {print s + 0}')
    local n; n=$(awk '/ requests in / {print $1}' "$out"); ((n > 0)) || die "$id: no requests (see $out)"
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v g=$((g1 - g0)) -v u=$((u1 - u0)) -v hz="$HZ" -v calls=$((calls1 - calls0)) \
        -v rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
        -v p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")" -v p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")" \
        -v e="$(awk '/Non-2xx or 3xx/ {e += $NF} /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} END {print e + 0}' "$out")" \
        'BEGIN {printf "%-10s %8.0f %8s %8s %7d %10.1f %10.1f %12d", id, rps, p50, p99, e, g / hz * 1e6 / n, u / hz * 1e6 / n, calls}')
    ORDER+=("$id"); say "${ROW[$id]}"
    stop "$gw"; STARTED=("$DEMO_PID")
}

run_row uncached bench/gateway-plain.yaml ""
run_row cached bench/cache/gateway-cached.yaml "switchyard; hit"
run_row floor bench/cache/gateway-floor.yaml ""

col() { awk -v c="$2" '{print $c}' <<<"${ROW[$1]}"; }
RATIO=$(awk -v a="$(col uncached 6)" -v b="$(col cached 6)" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
WHOLE=$(awk -v a="$(col uncached 6)" -v au="$(col uncached 7)" -v b="$(col cached 6)" -v bu="$(col cached 7)" \
    'BEGIN {printf "%.2f", ((b + bu) > 0 ? (a + au) / (b + bu) : 0)}')
OVER=$(awk -v b="$(col cached 6)" -v f="$(col floor 6)" 'BEGIN {printf "%+.1f", b - f}')
BOUND=$(awk -v a="$(col uncached 6)" -v f="$(col floor 6)" 'BEGIN {printf "%.2f", (f > 0 ? a / f : 0)}')
VERDICT=$(awk -v r="$RATIO" 'BEGIN {print (r >= 3 ? "MET" : "NOT MET")}')
{
    echo "Cache cost, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "wrk -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per row, wrk on CPU 0, gateway + upstream on CPU 1"
    echo
    printf '%-10s %8s %8s %8s %7s %10s %10s %12s\n' config req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req" "upstream calls"
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "uncached = bench/gateway-plain.yaml (users route: transcode, gRPC call, render)"
    echo "cached   = bench/cache/gateway-cached.yaml (the same route, cache ttl 1h: every measured GET a hit)"
    echo "floor    = bench/cache/gateway-floor.yaml (the same answer from an edge rule: no route, no upstream, no cache)"
    echo
    echo "gateway CPU per request, uncached / cached hit:  ${RATIO}x  (target >= 3x: $VERDICT)"
    echo "gateway + upstream CPU per request, the same:   ${WHOLE}x"
    echo "a hit over the floor (the cache's own cost):     $OVER us/req"
    echo "uncached / floor (the best any hit could do):    ${BOUND}x"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS bench/cache/run.sh"
    echo "Load command: ${LOAD_PIN[*]} ${WRK[*]} -d ${DURATION}s"
} | tee "$OUT/cache.txt"
