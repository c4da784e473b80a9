#!/usr/bin/env bash
# TLS cost at the edge: GET /v1/users/1 through one gateway with a plain
# listener and a TLS one (bench/tls/gateway.yaml: ECDSA P-256 certificate,
# TLS 1.3, HTTP/1.1), in one run. Rows:
#   plain-keepalive / tls-keepalive   connections kept: the cost per request
#   plain-newconn  / tls-newconn      a new connection per request (oha
#                                     --disable-keepalive): tls-newconn's
#                                     req/s is the full-handshake rate
# Each row: warm-up, then oha -cBENCH_CONNECTIONS for BENCH_DURATION s;
# CPU per request of gateway and upstream from /proc/PID/stat.
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_CONNECTIONS=16 BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-2} CONNS=${BENCH_CONNECTIONS:-16}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-tls
die() { printf 'tls/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'tls/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
need curl curl; need taskset util-linux; need python3 python3
need_oha

STARTED=() # only the processes started here are killed
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
if (($(getconf _NPROCESSORS_ONLN) >= 2)); then LOAD_PIN=(taskset -c 0) SRV_PIN=(taskset -c 1); else LOAD_PIN=() SRV_PIN=(); fi

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    say "cargo build --release --locked -p switchyard -p switchyard-demo"
    cargo build --release --locked -p switchyard -p switchyard-demo >&2 || die "cargo build failed"
fi
[[ -x $BIN/switchyard && -x $BIN/switchyard-demo ]] || die "no binaries in $BIN (run with BENCH_BUILD=1)"

BUSY=" $(listening_ports | tr '\n' ' ') "
pick_port GW_PORT 8080; pick_port TLS_PORT 8443; pick_port ADMIN_PORT 9090; pick_port USERS_PORT 50051
pick_port ORDERS_PORT 50052; pick_port INV_PORT 50053
mkdir -p "$RAW"; rm -f "$RAW"/*
CA=config/examples/tls/localhost.pem

start_demo "$RAW/demo.log"
say "starting switchyard with bench/tls/gateway.yaml"
( export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_LISTEN_TLS=127.0.0.1:$TLS_PORT \
    SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT
  exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config bench/tls/gateway.yaml >"$RAW/gateway.log" 2>&1 ) &
GW=$!; STARTED+=("$GW")
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
    kill -0 $GW 2>/dev/null || die "switchyard exited: $(cat "$RAW/gateway.log")"; sleep 0.1; done
curl -fsS -o /dev/null --cacert "$CA" "https://localhost:$TLS_PORT/v1/users/1" || die "GET over TLS failed"
curl -fsS -o /dev/null "http://127.0.0.1:$GW_PORT/v1/users/1" || die "GET over plain HTTP failed"

HZ=$(getconf CLK_TCK)
declare -A ROW; ORDER=()
run_row() { # run_row ID URL [oha flags...]
    local id=$1 url=$2; shift 2
    # --insecure: the example certificate is self-signed (a CA as its own end
    # entity, which rustls refuses); verifying costs only the client, pinned
    # apart from the gateway.
    local load=(oha --no-tui --output-format json -c "$CONNS" --insecure "$@" "$url")
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${load[@]}" -z "${WARMUP}s" >"$RAW/$id.warmup.json" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.3
    local g0 u0 g1 u1 out=$RAW/$id.json
    g0=$(ticks $GW); u0=$(ticks $DEMO_PID)
    "${LOAD_PIN[@]}" "${load[@]}" -z "${DURATION}s" >"$out" 2>&1 || die "$id: oha failed: $(tail -3 "$out")"
    sleep 0.3
    g1=$(ticks $GW); u1=$(ticks $DEMO_PID)
    local n rps p50 p99 e
    read -r n rps p50 p99 e < <(oha_summary "$out") || die "$id: cannot read oha's output (see $out)"
    ((n > 0)) || die "$id: no requests (see $out)"
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v g=$((g1 - g0)) -v u=$((u1 - u0)) -v hz="$HZ" \
        -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$e" \
        'BEGIN {printf "%-16s %8.0f %8s %8s %7d %10.1f %10.1f", id, rps, p50, p99, e, g / hz * 1e6 / n, u / hz * 1e6 / n}')
    ORDER+=("$id"); say "${ROW[$id]}"
    LOADCMD[$id]="${LOAD_PIN[*]} $(shell_words "${load[@]}") -z ${DURATION}s"
}
declare -A LOADCMD
PLAIN=http://127.0.0.1:$GW_PORT/v1/users/1
TLS=https://localhost:$TLS_PORT/v1/users/1
run_row plain-keepalive "$PLAIN"
run_row tls-keepalive "$TLS"
run_row plain-newconn "$PLAIN" --disable-keepalive
run_row tls-newconn "$TLS" --disable-keepalive

col() { awk -v c="$2" '{print $c}' <<<"${ROW[$1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
diff_us() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f", a - b}'; }
{
    echo "TLS at the edge, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "oha -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per row, oha on CPU 0, gateway (1 worker) + upstream on CPU 1"
    echo
    printf '%-16s %8s %8s %8s %7s %10s %10s\n' row req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req"
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "new TLS connections/s (full handshake + one request): $(col tls-newconn 2)"
    echo "TLS / plain, new connection per request:  req/s $(ratio "$(col tls-newconn 2)" "$(col plain-newconn 2)"), gateway CPU $(diff_us "$(col tls-newconn 6)" "$(col plain-newconn 6)") us per connection"
    echo "TLS / plain, kept connections:            req/s $(ratio "$(col tls-keepalive 2)" "$(col plain-keepalive 2)"), gateway CPU $(diff_us "$(col tls-keepalive 6)" "$(col plain-keepalive 6)") us per request"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS bench/tls/run.sh"
    for id in "${ORDER[@]}"; do echo "  $id: ${LOADCMD[$id]}"; done
} | tee "$OUT/tls.txt"
