#!/usr/bin/env bash
# Event cost: POST /v1/orders (CreateOrder) through the gateway with no event,
# against the same route publishing one CloudEvent per call to NATS JetStream
# through the outbox, in one run. Rows:
#   plain        bench/events/gateway-plain.yaml (no events)
#   events       bench/events/gateway.yaml, the machine's NATS (127.0.0.1:4222)
#   outbox-only  the same with the sink pointed at a closed port: every event
#                is appended (and fsynced in batches) but none is published,
#                so its CPU over `plain` is the outbox append cost alone
# Each row: its own gateway process and a fresh outbox file, warm-up, then
# wrk -c64 for BENCH_DURATION s; CPU per request of gateway and upstream from
# /proc/PID/stat (and of nats-server, and of the whole machine from
# /proc/stat: at saturation the throughput ratio follows the machine's CPU
# per request); the `events` row then waits until every appended event was
# published (acknowledged by JetStream) and fails if one was not.
# Two more rows, plain@rate and events@rate, send a fixed rate (oha, open
# loop, latency-corrected) well below saturation: the latency a client sees
# at a load the machine carries, with and without the event. A last row,
# outage@rate, is events@rate with its broker (a private nats-server)
# killed for the middle third of the window.
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=64 BENCH_RATE=4000
#        BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-3} CONNS=${BENCH_CONNECTIONS:-64} RATE=${BENCH_RATE:-4000}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-events
die() { printf 'events/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'events/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS RATE; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
need wrk wrk; need curl curl; need taskset util-linux
need_oha
(exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null || die "no NATS on 127.0.0.1:4222 (scripts/test.sh starts one: nats-server -js)"
NATS_PID=$(pgrep -o -x nats-server) || die "no nats-server process to measure"

STARTED=() # only the processes started here are killed
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}" $(cat "$RAW/private-nats.pid" 2>/dev/null); exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
if (($(getconf _NPROCESSORS_ONLN) >= 2)); then LOAD_PIN=(taskset -c 0) SRV_PIN=(taskset -c 1); else LOAD_PIN=() SRV_PIN=(); fi

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    say "cargo build --release --locked -p switchyard -p switchyard-demo"
    cargo build --release --locked -p switchyard -p switchyard-demo >&2 || die "cargo build failed"
fi
[[ -x $BIN/switchyard && -x $BIN/switchyard-demo ]] || die "no binaries in $BIN (run with BENCH_BUILD=1)"

BUSY=" $(listening_ports | tr '\n' ' ') "
pick_port GW_PORT 8080; pick_port ADMIN_PORT 9090; pick_port USERS_PORT 50051
pick_port ORDERS_PORT 50052; pick_port INV_PORT 50053
mkdir -p "$RAW"; rm -rf "${RAW:?}"/*
URL=http://127.0.0.1:$GW_PORT/v1/orders
BODY='{"userId":"1","items":[{"sku":"A-1","qty":1}]}'

start_demo "$RAW/demo.log"

metric() { # metric LINE-PREFIX: the value of the first /metrics line starting with it (0 if none)
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v p="$1" 'index($0, p) == 1 && !f {v = $NF; f = 1} END {print f ? v : 0}'
}
HZ=$(getconf CLK_TCK)
WRK=(wrk -t1 -c"$CONNS" --latency -s bench/events/post.lua "$URL")
OHA=(oha --no-tui --latency-correction --output-format json -c 16 -q "$RATE" -m POST
     -H 'content-type: application/json' -d "$BODY" "$URL")
declare -A ROW; ORDER=()

run_row() { # run_row ID CONFIG NATS-URL [wrk|oha]
    local id=$1 cfg=$2 nats=$3 tool=${4:-wrk} outbox=$RAW/${1%@*}-outbox.redb
    rm -f "$outbox"
    say "$id: starting switchyard with $cfg (sink $nats)"
    ( export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT \
        DEMO_ORDERS_ADDR=127.0.0.1:$ORDERS_PORT EVENTS_NATS_URL=$nats EVENTS_OUTBOX=$outbox
      exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config "$cfg" >"$RAW/$id.gateway.log" 2>&1 ) &
    local gw=$!; STARTED+=("$gw")
    for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
        kill -0 $gw 2>/dev/null || die "switchyard exited: $(cat "$RAW/$id.gateway.log")"; sleep 0.1; done
    local ok
    ok=$(curl -sS -o "$RAW/$id.body" -w '%{http_code}' -H 'content-type: application/json' -d "$BODY" "$URL")
    [[ $ok == 200 ]] && grep -q '"id"' "$RAW/$id.body" || die "$id: POST answered $ok: $(head -c 300 "$RAW/$id.body")"
    local load=("${WRK[@]}"); [[ $tool == oha ]] && load=("${OHA[@]}")
    local wflag=(-d "${WARMUP}s") dflag=(-d "${DURATION}s")
    [[ $tool == oha ]] && wflag=(-z "${WARMUP}s") dflag=(-z "${DURATION}s")
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${load[@]}" "${wflag[@]}" >"$RAW/$id.warmup.txt" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.5
    local g0 u0 g1 u1 n0 n1 m0 m1 out=$RAW/$id.$tool.txt
    g0=$(ticks $gw); u0=$(ticks $DEMO_PID); n0=$(ticks $NATS_PID); m0=$(machine_ticks)
    local outage_pid=
    if [[ $id == outage* ]]; then outage & outage_pid=$!; fi
    "${LOAD_PIN[@]}" "${load[@]}" "${dflag[@]}" >"$out" 2>&1 || die "$id: $tool failed: $(tail -3 "$out")"
    [[ -z $outage_pid ]] || wait "$outage_pid"
    sleep 0.3
    g1=$(ticks $gw); u1=$(ticks $DEMO_PID); n1=$(ticks $NATS_PID); m1=$(machine_ticks)
    local n rps p50 p99 e
    read -r n rps p50 p99 e < <("${tool}_summary" "$out") || die "$id: cannot read $tool's output (see $out)"
    ((n > 0)) || die "$id: no requests (see $out)"
    local appended published
    appended=$(metric 'switchyard_events_total{outcome="appended",sink="bus",')
    if [[ $id == events* || $id == outage* ]]; then
        for _ in $(seq 600); do
            published=$(metric 'switchyard_events_total{outcome="published",sink="bus",')
            [[ $published == "$appended" ]] && break; sleep 0.1; done
        [[ $published == "$appended" ]] || die "$id: $appended events appended but only $published published within 60 s"
        say "$id: all $appended events published"
    fi
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v g=$((g1 - g0)) -v u=$((u1 - u0)) -v hz="$HZ" -v ev="$appended" \
        -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$e" -v nt=$((n1 - n0)) -v mt=$((${m1% *} - ${m0% *})) \
        'BEGIN {printf "%-12s %8.0f %8s %8s %7d %10.1f %10.1f %10.1f %10.1f %9d", id, rps, p50, p99, e,
                g / hz * 1e6 / n, u / hz * 1e6 / n, nt / hz * 1e6 / n, mt / hz * 1e6 / n, ev}')
    ORDER+=("$id"); say "${ROW[$id]}"
    stop "$gw"; STARTED=("$DEMO_PID")
    rm -f "$outbox"
}

# The outage row's broker: a private nats-server on a spare port (the
# machine's own is never stopped), SIGKILLed a third into the measured
# window and started again on the same store two thirds in.
pick_port PNATS_PORT 14222
PNATS=(nats-server -js -a 127.0.0.1 -p "$PNATS_PORT" -sd "$RAW/private-js")
start_private_nats() { "${PNATS[@]}" >>"$RAW/private-nats.log" 2>&1 & echo $! >"$RAW/private-nats.pid"; STARTED+=("$(<"$RAW/private-nats.pid")"); }
outage() {
    sleep $((DURATION / 3)); kill -KILL "$(<"$RAW/private-nats.pid")"
    sleep $((DURATION / 3)); start_private_nats
}

run_row plain bench/events/gateway-plain.yaml -
run_row events bench/events/gateway.yaml nats://127.0.0.1:4222
run_row outbox-only bench/events/gateway.yaml nats://127.0.0.1:1
run_row plain@rate bench/events/gateway-plain.yaml - oha
run_row events@rate bench/events/gateway.yaml nats://127.0.0.1:4222 oha
command -v nats-server >/dev/null || die "no nats-server binary for the outage row"
start_private_nats
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PNATS_PORT") 2>/dev/null && break; sleep 0.1; done
run_row outage@rate bench/events/gateway.yaml "nats://127.0.0.1:$PNATS_PORT" oha
stop "$(<"$RAW/private-nats.pid")"

col() { awk -v c="$2" '{print $c}' <<<"${ROW[$1]}"; }
RPS_RATIO=$(awk -v a="$(col events 2)" -v b="$(col plain 2)" 'BEGIN {printf "%.3f", a / b}')
P99_DIFF=$(awk -v a="$(col events 4)" -v b="$(col plain 4)" 'BEGIN {printf "%+.3f", a - b}')
CPU_EVENTS=$(awk -v a="$(col events 6)" -v b="$(col plain 6)" 'BEGIN {printf "%+.1f", a - b}')
CPU_APPEND=$(awk -v a="$(col outbox-only 6)" -v b="$(col plain 6)" 'BEGIN {printf "%+.1f", a - b}')
CPU_NATS=$(awk -v a="$(col events 8)" -v b="$(col plain 8)" 'BEGIN {printf "%+.1f", a - b}')
CPU_BOX=$(awk -v a="$(col events 9)" -v b="$(col plain 9)" 'BEGIN {printf "%+.1f", a - b}')
BOX_BUDGET=$(awk -v b="$(col plain 9)" 'BEGIN {printf "%.1f", b / 9}')
RATE_P99=$(awk -v a="$(col events@rate 4)" -v b="$(col plain@rate 4)" 'BEGIN {printf "%+.3f", a - b}')
RATE_P50=$(awk -v a="$(col events@rate 3)" -v b="$(col plain@rate 3)" 'BEGIN {printf "%+.3f", a - b}')
RATE_OK=$(awk -v d="$RATE_P99" 'BEGIN {print (d < 1 ? "MET" : "NOT MET")}')
OUTAGE_P99=$(awk -v a="$(col outage@rate 4)" -v b="$(col events@rate 4)" 'BEGIN {printf "%+.3f", a - b}')
OUTAGE_P50=$(awk -v a="$(col outage@rate 3)" -v b="$(col events@rate 3)" 'BEGIN {printf "%+.3f", a - b}')
LOSS_OK=$(awk -v r="$RPS_RATIO" 'BEGIN {print (r > 0.9 ? "MET" : "NOT MET")}')
P99_OK=$(awk -v d="$P99_DIFF" 'BEGIN {print (d < 1 ? "MET" : "NOT MET")}')
{
    echo "Event cost, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "wrk -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per row, wrk on CPU 0, gateway + upstream on CPU 1, NATS unpinned"
    echo
    printf '%-12s %8s %8s %8s %7s %10s %10s %10s %10s %9s\n' config req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req" \
        "nats us/req" "box us/req" events
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "plain       = no event; events = one CloudEvent per CreateOrder to JetStream (all published, checked);"
    echo "outbox-only = the event appended but its sink unreachable (append + batched fsync, no publish)"
    echo "@rate       = a fixed $RATE req/s (oha -c16, open loop, latency-corrected) instead of saturation"
    echo "outage@rate = events@rate to a private nats-server SIGKILLed at ${DURATION}/3 s and restarted at 2x${DURATION}/3 s (every event published after, checked)"
    echo
    echo "throughput with events / without:  $RPS_RATIO  (target loss < 10%: $LOSS_OK)"
    echo "p99 with events - without:         $P99_DIFF ms  (target < 1 ms: $P99_OK) at saturation"
    echo "at $RATE req/s, with - without:     p50 $RATE_P50 ms, p99 $RATE_P99 ms  (target < 1 ms: $RATE_OK)"
    echo "broker killed a third in, back two thirds in, against up:  p50 $OUTAGE_P50 ms, p99 $OUTAGE_P99 ms  (outage@rate - events@rate)"
    echo "gateway CPU per event, published:  $CPU_EVENTS us  (append + relay + JetStream publish and ack)"
    echo "gateway CPU per event, append:     $CPU_APPEND us  (outbox append cost alone)"
    echo "nats-server CPU per event:         $CPU_NATS us  (the broker, on the same CPUs)"
    echo "whole machine CPU per event:       $CPU_BOX us  (a 10% loss at saturation allows $BOX_BUDGET us)"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_RATE=$RATE bench/events/run.sh"
    echo "Load commands: ${LOAD_PIN[*]} ${WRK[*]} -d ${DURATION}s"
    echo "               ${LOAD_PIN[*]} ${OHA[*]} -z ${DURATION}s"
} | tee "$OUT/events.txt"
