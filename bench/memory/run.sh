#!/usr/bin/env bash
# Memory per held connection: the gateway's RSS with 10 000 idle keep-alive
# HTTP/1.1 connections (each served one GET first), and with 1 000 open SSE
# streams (GET /v1/users/1/orders:watch, each past its first event), over
# its RSS before them, per connection; and its RSS once they are closed.
# Clients: bench/memory/hold.py (asyncio). Knobs: MEM_IDLE=10000
# MEM_SSE=1000 BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
IDLE=${MEM_IDLE:-10000} SSE=${MEM_SSE:-1000}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-memory
die() { printf 'memory/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'memory/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in IDLE SSE; do [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} > 0 && ${!v} <= 15000)) || die "MEM_$v must be 1..15000"; done
((IDLE + SSE + 100 < $(ulimit -n))) || die "ulimit -n $(ulimit -n) is too low for $IDLE + $SSE connections"
need curl curl
if [[ ${BENCH_BUILD:-1} != 0 ]]; then build_binaries release; else build_binaries none; fi

STARTED=()
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
SRV_PIN=()
pick_demo_ports
mkdir -p "$RAW"; rm -f "$RAW"/*
start_demo "$RAW/demo.log"
fresh_gateway() { # a fresh gateway per row, so one row's freed memory is not the next row's baseline
    start_gateway bench/memory/gateway.yaml "$RAW/gateway.log"
    # Warm: every path the held connections take, a few hundred times.
    for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$GW_PORT/v1/users/1"; done
    timeout 2 curl -sSN -o /dev/null -H 'accept: text/event-stream' "http://127.0.0.1:$GW_PORT/v1/users/1/orders:watch" || true
}

declare -A ROWS
hold() { # hold KIND COUNT: RSS before, with, and after COUNT held connections
    local kind=$1 count=$2 before with after
    fresh_gateway
    sleep 2; before=$(rss_kib $GW)
    coproc HOLD { exec python3 bench/memory/hold.py "$GW_PORT" "$kind" "$count" 2>"$RAW/hold-$kind.err"; }
    local pid=$HOLD_PID; STARTED+=("$pid")
    local line; read -r -t 120 line <&"${HOLD[0]}" || die "$kind: the clients did not get ready: $(cat "$RAW/hold-$kind.err")"
    [[ $line == "ready $count" ]] || die "$kind: $line"
    sleep 3; with=$(rss_kib $GW)
    exec {HOLD[1]}>&-; wait "$pid" 2>/dev/null || true
    sleep 3; after=$(rss_kib $GW)
    stop "$GW"; STARTED=("$DEMO_PID")
    ROWS[$kind]=$(awk -v k="$kind" -v n="$count" -v b="$before" -v w="$with" -v a="$after" \
        'BEGIN {printf "%-6s %7d %12d %12d %12d %10.1f", k, n, b, w, a, (w - b) / n}')
    say "${ROWS[$kind]}"
}
hold idle "$IDLE"
hold sse "$SSE"
{
    echo "Memory per held connection, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, release build"
    printf '%-6s %7s %12s %12s %12s %10s\n' kind count "RSS KiB" "held KiB" "closed KiB" "KiB/conn"
    echo "${ROWS[idle]}"
    echo "${ROWS[sse]}"
    echo "idle: HTTP/1.1 keep-alive, one GET /v1/users/1 served on each; sse: GET /v1/users/1/orders:watch, past the first event"
    echo "Reproduce: MEM_IDLE=$IDLE MEM_SSE=$SSE bench/memory/run.sh"
} | tee "$OUT/memory.txt"
