#!/usr/bin/env bash
# gRPC passthrough: demo.users.v1.UserService/GetUser sent by h2load
#   direct       straight to the demo upstream (the baseline)
#   switchyard   through Switchyard (routes[].grpc.passthrough, 1 worker)
#   nginx        through Debian's nginx, grpc_pass, 1 worker, access log off
# in one run, same upstream, same load (h2load -c CONNS -m STREAMS). Each
# row: warm-up, then BENCH_DURATION s; CPU per call of the proxy and of the
# upstream from /proc/PID/stat. h2load only sees HTTP statuses, so each
# target is checked once for grpc-status 0 with curl.
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=16 BENCH_STREAMS=1
#        BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-3} CONNS=${BENCH_CONNECTIONS:-16}
STREAMS=${BENCH_STREAMS:-1}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-grpc
die() { printf 'grpc/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'grpc/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS STREAMS; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
need curl curl; need taskset util-linux; need h2load nghttp2-client; need nginx nginx

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
pick_port GW_PORT 8080; pick_port NGINX_PORT 8081; pick_port ADMIN_PORT 9090; pick_port USERS_PORT 50051
pick_port ORDERS_PORT 50052; pick_port INV_PORT 50053
mkdir -p "$RAW"; rm -rf "${RAW:?}"/*

start_demo "$RAW/demo.log"
say "starting switchyard with bench/grpc/gateway.yaml"
( export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT \
    DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT
  exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config bench/grpc/gateway.yaml >"$RAW/gateway.log" 2>&1 ) &
GW=$!; STARTED+=("$GW")

start_nginx_grpc "$RAW/nginx" "$NGINX_PORT" "$USERS_PORT"

for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
    kill -0 $GW 2>/dev/null || die "switchyard exited: $(cat "$RAW/gateway.log")"; sleep 0.1; done

BODY=$RAW/body.bin
printf '\x00\x00\x00\x00\x03\x0a\x01\x31' >"$BODY" # GetUserRequest{id:"1"}
PATH_=/demo.users.v1.UserService/GetUser
check_ok() { # check_ok PORT NAME: one call answers grpc-status 0
    local headers
    headers=$(curl -sS --http2-prior-knowledge -o /dev/null -D - --data-binary "@$BODY" \
        -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$1$PATH_") || die "$2: curl failed"
    grep -qi '^grpc-status: *0' <<<"$headers" || die "$2: no grpc-status 0 in: $headers"
}
check_ok "$USERS_PORT" direct; check_ok "$GW_PORT" switchyard; check_ok "$NGINX_PORT" nginx

HZ=$(getconf CLK_TCK)
declare -A ROW LOADCMD; ORDER=()
run_row() { # run_row ID PORT PROXY-PID ("" for none)
    local id=$1 port=$2 proxy=$3
    local load=(h2load -t1 -c"$CONNS" -m"$STREAMS" -d "$BODY" -H 'content-type: application/grpc' -H 'te: trailers'
        "http://127.0.0.1:$port$PATH_")
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${load[@]}" -D "$WARMUP" >"$RAW/$id.warmup.txt" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.3
    local p0=0 u0 p1=0 u1 out=$RAW/$id.txt
    [[ -n $proxy ]] && p0=$(ticks "$proxy"); u0=$(ticks $DEMO_PID)
    "${LOAD_PIN[@]}" "${load[@]}" -D "$DURATION" >"$out" 2>&1 || die "$id: h2load failed: $(tail -3 "$out")"
    sleep 0.3
    [[ -n $proxy ]] && p1=$(ticks "$proxy"); u1=$(ticks $DEMO_PID)
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    local n rps mean e
    n=$(awk '/^requests:/ {print $8}' "$out"); rps=$(awk '/^finished in/ {print $4}' "$out")
    e=$(awk '/^requests:/ {print $10 + $12 + $14}' "$out")
    mean=$(awk '/^time for request:/ {print $4}' "$out")
    [[ -n $n && $n -gt 0 ]] || die "$id: no calls (see $out)"
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v p=$((p1 - p0)) -v u=$((u1 - u0)) -v hz="$HZ" -v rps="$rps" \
        -v mean="$mean" -v e="$e" -v proxied="${proxy:+1}" \
        'BEGIN {printf "%-12s %8.0f %10s %7d %12s %10.1f", id, rps, mean, e,
                (proxied ? sprintf("%.1f", p / hz * 1e6 / n) : "-"), u / hz * 1e6 / n}')
    ORDER+=("$id"); say "${ROW[$id]}"
    LOADCMD[$id]="${LOAD_PIN[*]} $(shell_words "${load[@]}") -D $DURATION"
}
run_row direct "$USERS_PORT" ""
run_row switchyard "$GW_PORT" "$GW"
run_row nginx "$NGINX_PORT" "$NGINX_WORKER"

col() { awk -v c="$2" '{print $c}' <<<"${ROW[$1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
    echo "gRPC passthrough, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "h2load -c$CONNS -m$STREAMS, ${WARMUP}s warm-up + ${DURATION}s per row, h2load on CPU 0, proxy + upstream on CPU 1"
    echo
    printf '%-12s %8s %10s %7s %12s %10s\n' row calls/s "mean" errors "proxy us/req" "up us/req"
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "switchyard / nginx: calls/s $(ratio "$(col switchyard 2)" "$(col nginx 2)"), proxy CPU per call $(ratio "$(col switchyard 5)" "$(col nginx 5)")"
    echo "upstream CPU per call behind switchyard / direct: $(ratio "$(col switchyard 6)" "$(col direct 6)"), behind nginx / direct: $(ratio "$(col nginx 6)" "$(col direct 6)")"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_STREAMS=$STREAMS bench/grpc/run.sh"
    for id in "${ORDER[@]}"; do echo "  $id: ${LOADCMD[$id]}"; done
} | tee "$OUT/grpc.txt"
