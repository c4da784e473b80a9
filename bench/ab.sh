#!/usr/bin/env bash
# A/B of two gateway binaries on one call, alternated in one sitting (the
# machine's noise hits both): each round starts `BIN demo` (gateway and
# sample services in one process, on :8080/:9090), warms up 2 s, measures
# AB_SECONDS of wrk -t1 -c64 on CPU 0, and prints both req/s and head/base.
#   bench/ab.sh BASE-BINARY HEAD-BINARY     e.g. a copy of an older target/release/switchyard
# Knobs: AB_ROUNDS=3 AB_SECONDS=8 AB_SCRIPT=bench/events/post.lua (POST /v1/orders)
#        AB_PATH=/v1/orders
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); cd "$ROOT"
(($# == 2)) && [[ -x $1 && -x $2 ]] || { sed -n '2,9p' "$0" >&2; exit 2; }
ROUNDS=${AB_ROUNDS:-3} SECONDS_EACH=${AB_SECONDS:-8}
SCRIPT=${AB_SCRIPT:-bench/events/post.lua} URL=http://127.0.0.1:8080${AB_PATH:-/v1/orders}
for port in 8080 9090 50051 50052 50053; do
    ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "port $port is busy: bench/ab.sh needs the demo's ports" >&2; exit 1; }
done
PIN=(); (($(nproc) >= 2)) && PIN=(taskset -c 0)
run() {
    "$1" demo >/dev/null 2>&1 & local pid=$!
    for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null && break; sleep 0.1; done
    "${PIN[@]}" wrk -t1 -c64 -d2s -s "$SCRIPT" "$URL" >/dev/null
    "${PIN[@]}" wrk -t1 -c64 -d"${SECONDS_EACH}s" -s "$SCRIPT" "$URL" | awk '/Requests\/sec/ {print $2}'
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
for i in $(seq "$ROUNDS"); do
    b=$(run "$1"); h=$(run "$2")
    echo "round $i: base $b head $h ratio $(awk -v a="$h" -v b="$b" 'BEGIN {printf "%.3f", a / b}')"
done
echo "Reproduce: AB_ROUNDS=$ROUNDS AB_SECONDS=$SECONDS_EACH AB_SCRIPT=$SCRIPT bench/ab.sh $1 $2"
