#!/usr/bin/env bash
# Latency against offered load, plotted: GetUser{id: "1"} as REST/JSON
# through the gateway (GET /v1/users/1, HTTP/1.1), as gRPC straight to the
# upstream (h2c), and as gRPC through a proxy: Switchyard's passthrough
# (bench/grpc/gateway.yaml, 1 worker) and its peer nginx grpc_pass (1
# worker), each at the same fixed rates, open loop with latency correction
# (oha -q), 64 connections. The rates are fractions of the
# gateway's saturation, measured first (oha -c64, closed loop). Writes
# bench/out/latency.csv and bench/out/latency.png (gnuplot) and prints the
# table; bench/latency.png is the committed copy of a run.
# Knobs: BENCH_DURATION=8 (s per point) BENCH_BUILD=1 BENCH_OUT=bench/out
#        LAT_FRACTIONS="0.1 0.25 0.5 0.7 0.85 1.0 1.2"
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-8} FRACTIONS=${LAT_FRACTIONS:-"0.1 0.25 0.5 0.7 0.85 1.0 1.2"}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-latency
die() { printf 'latency/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'latency/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION > 0 && DURATION <= 60)) || die "BENCH_DURATION must be 1..60 s"
need curl curl; need gnuplot gnuplot-nox; need taskset util-linux; need nginx nginx
need_oha
if [[ ${BENCH_BUILD:-1} != 0 ]]; then build_binaries release; else build_binaries none; fi

STARTED=()
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
if (($(getconf _NPROCESSORS_ONLN) >= 2)); then LOAD_PIN=(taskset -c 0) SRV_PIN=(taskset -c 1); else LOAD_PIN=() SRV_PIN=(); fi
pick_demo_ports
mkdir -p "$RAW"; rm -rf "${RAW:?}"/*
start_demo "$RAW/demo.log"
start_gateway bench/gateway.yaml "$RAW/gateway.log"
# The gRPC proxies: a second Switchyard passing gRPC through, and nginx.
REST_GW=$GW; pick_port PASS_PORT 8082; pick_port PASS_ADMIN 9092; pick_port NGINX_PORT 8081
GW_PORT=$PASS_PORT ADMIN_PORT=$PASS_ADMIN start_gateway bench/grpc/gateway.yaml "$RAW/gateway-grpc.log"
GW=$REST_GW
start_nginx_grpc "$RAW/nginx" "$NGINX_PORT" "$USERS_PORT"

REST=http://127.0.0.1:$GW_PORT/v1/users/1
GRPC_PATH=/demo.users.v1.UserService/GetUser
GRPC=http://127.0.0.1:$USERS_PORT$GRPC_PATH
printf '\x00\x00\x00\x00\x03\x0a\x011' >"$RAW/get-user.bin" # GetUserRequest{id: "1"}, one gRPC frame
curl -fsS "$REST" | grep -q '"id":"1"' || die "GET /v1/users/1 does not answer user 1"
curl -fsS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$RAW/get-user.bin" -D "$RAW/grpc.head" -o "$RAW/grpc.body" "$GRPC"
grep -aq 'Ada Lovelace' "$RAW/grpc.body" || die "the direct gRPC call does not answer user 1"
REST_LOAD=(oha --no-tui --output-format json -c 64 "$REST")
GRPC_LOAD=(oha --no-tui --output-format json -c 64 --http2 -m POST -H 'content-type: application/grpc'
           -H 'te: trailers' -D "$RAW/get-user.bin")
for port in "$PASS_PORT" "$NGINX_PORT"; do
    curl -fsS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary @"$RAW/get-user.bin" -o "$RAW/grpc-$port.body" "http://127.0.0.1:$port$GRPC_PATH"
    grep -aq 'Ada Lovelace' "$RAW/grpc-$port.body" || die "the gRPC call through port $port does not answer user 1"
done

say "saturation of the gateway (closed loop, 5 s)"
"${LOAD_PIN[@]}" "${REST_LOAD[@]}" -z 5s >"$RAW/saturation.json"
SAT=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$RAW/saturation.json")
((SAT > 0)) || die "no requests while finding saturation"

point() { # point NAME RATE: one fixed-rate run, a CSV line
    local name=$1 rate=$2 out=$RAW/$1-$2.json load
    case $name in
        gateway) load=("${REST_LOAD[@]}") ;;
        direct) load=("${GRPC_LOAD[@]}" "$GRPC") ;;
        switchyard-grpc) load=("${GRPC_LOAD[@]}" "http://127.0.0.1:$PASS_PORT$GRPC_PATH") ;;
        nginx-grpc) load=("${GRPC_LOAD[@]}" "http://127.0.0.1:$NGINX_PORT$GRPC_PATH") ;;
    esac
    "${LOAD_PIN[@]}" "${load[@]}" -q "$rate" --latency-correction -z "${DURATION}s" >"$out" || die "$name at $rate/s: oha failed"
    oha_csv_line "$out" "$name" "$rate"
}
CSV=$OUT/latency.csv
echo "target,offered,achieved,p50_ms,p90_ms,p99_ms,errors" >"$CSV"
for f in $FRACTIONS; do
    rate=$(awk -v s="$SAT" -v f="$f" 'BEGIN {printf "%d", s * f}')
    for name in gateway direct switchyard-grpc nginx-grpc; do
        line=$(point "$name" "$rate"); echo "$line" >>"$CSV"; say "$line"
    done
done

gnuplot <<EOF
set terminal pngcairo size 900,560 font "sans,10" noenhanced
set output "$OUT/latency.png"
set datafile separator ","
set title "GetUser: latency against offered load (open loop, 64 connections, $(nproc) CPUs)"
set xlabel "offered load, requests/s (gateway saturation: $SAT/s)"
set ylabel "latency, ms (log scale)"
set logscale y
set key top left
set grid
plot "< grep '^gateway' $CSV" using 2:6 with linespoints lw 2 title "Switchyard REST->gRPC p99", \
     "< grep '^gateway' $CSV" using 2:4 with linespoints lw 2 dt 2 title "Switchyard REST->gRPC p50", \
     "< grep '^direct' $CSV" using 2:6 with linespoints lw 2 title "direct gRPC p99", \
     "< grep '^direct' $CSV" using 2:4 with linespoints lw 2 dt 2 title "direct gRPC p50", \
     "< grep '^switchyard-grpc' $CSV" using 2:6 with linespoints lw 2 title "Switchyard gRPC passthrough p99", \
     "< grep '^switchyard-grpc' $CSV" using 2:4 with linespoints lw 2 dt 2 title "Switchyard gRPC passthrough p50", \
     "< grep '^nginx-grpc' $CSV" using 2:6 with linespoints lw 2 title "nginx grpc_pass p99", \
     "< grep '^nginx-grpc' $CSV" using 2:4 with linespoints lw 2 dt 2 title "nginx grpc_pass p50"
EOF
{
    echo "Latency against offered load, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs"
    echo "gateway saturation (oha -c64, closed loop): $SAT req/s; ${DURATION}s per point; oha on CPU 0, gateway and upstream on CPU 1"
    column -t -s, "$CSV"
    echo "plot: $OUT/latency.png"
    echo "Reproduce: BENCH_DURATION=$DURATION LAT_FRACTIONS=\"$FRACTIONS\" bench/latency/run.sh"
} | tee "$OUT/latency.txt"
