#!/usr/bin/env bash
# Plain HTTP proxying: GET of a BENCH_BODY_BYTES body from an nginx origin
#   direct       straight to the origin (the baseline)
#   switchyard   through Switchyard (proxies: at /, 1 worker)
#   nginx        through Debian's nginx, proxy_pass with keepalive, 1 worker
# in one run, same origin, same load (wrk -t1 -c CONNS, keep-alive). Each
# row: warm-up, then BENCH_DURATION s; CPU per request of the proxy and of
# the origin from /proc/PID/stat. wrk on CPU 0; proxy and origin on CPU 1.
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=32
#        BENCH_BODY_BYTES=512 BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-3} CONNS=${BENCH_CONNECTIONS:-32}
BODY_BYTES=${BENCH_BODY_BYTES:-512}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-http
die() { printf 'http/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'http/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS BODY_BYTES; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
((BODY_BYTES <= 1048576)) || die "BENCH_BODY_BYTES must be at most 1 MiB"
need curl curl; need taskset util-linux; need wrk wrk; need nginx nginx

STARTED=() # only the processes started here are killed
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
if (($(getconf _NPROCESSORS_ONLN) >= 2)); then LOAD_PIN=(taskset -c 0) SRV_PIN=(taskset -c 1); else LOAD_PIN=() SRV_PIN=(); fi

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    say "cargo build --release --locked -p switchyard"
    cargo build --release --locked -p switchyard >&2 || die "cargo build failed"
fi
[[ -x $BIN/switchyard ]] || die "no binary in $BIN (run with BENCH_BUILD=1)"

BUSY=" $(listening_ports | tr '\n' ' ') "
pick_port GW_PORT 8080; pick_port NGINX_PORT 8081; pick_port ADMIN_PORT 9090; pick_port ORIGIN_PORT 8000
mkdir -p "$RAW"; rm -rf "${RAW:?}"/*

# The origin: nginx answering every GET with the same body from memory.
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$RAW/body.txt"
start_nginx "$RAW/origin" "origin on port $ORIGIN_PORT" "    server {
        listen 127.0.0.1:$ORIGIN_PORT;
        location / { root $RAW; try_files /body.txt =404; }
    }"
ORIGIN=$NGINX_WORKER
start_nginx "$RAW/nginx" "proxy_pass on port $NGINX_PORT" "    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }"
PROXY_NGINX=$NGINX_WORKER

say "starting switchyard with bench/http/gateway.yaml"
( export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT ORIGIN_ADDR=127.0.0.1:$ORIGIN_PORT
  exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config bench/http/gateway.yaml >"$RAW/gateway.log" 2>&1 ) &
GW=$!; STARTED+=("$GW")
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
    kill -0 $GW 2>/dev/null || die "switchyard exited: $(cat "$RAW/gateway.log")"; sleep 0.1; done

check_ok() { # check_ok PORT NAME: one GET answers 200 with the whole body
    local size
    size=$(curl -fsS -o /dev/null -w '%{size_download}' "http://127.0.0.1:$1/item") || die "$2: curl failed"
    [[ $size == "$BODY_BYTES" ]] || die "$2: $size bytes, not $BODY_BYTES"
}
check_ok "$ORIGIN_PORT" direct; check_ok "$GW_PORT" switchyard; check_ok "$NGINX_PORT" nginx

HZ=$(getconf CLK_TCK)
declare -A ROW LOADCMD; ORDER=()
run_row() { # run_row ID PORT PROXY-PID ("" for none)
    local id=$1 port=$2 proxy=$3
    local load=(wrk -t1 -c"$CONNS" --latency "http://127.0.0.1:$port/item")
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${load[@]}" -d "${WARMUP}s" >"$RAW/$id.warmup.txt" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.3
    local p0=0 o0 p1=0 o1 out=$RAW/$id.txt
    [[ -n $proxy ]] && p0=$(ticks "$proxy"); o0=$(ticks "$ORIGIN")
    "${LOAD_PIN[@]}" "${load[@]}" -d "${DURATION}s" >"$out" 2>&1 || die "$id: wrk failed: $(tail -3 "$out")"
    sleep 0.3
    [[ -n $proxy ]] && p1=$(ticks "$proxy"); o1=$(ticks "$ORIGIN")
    local n rps p50 p99 e
    read -r n rps p50 p99 e <<<"$(wrk_summary "$out")"
    [[ -n $n && $n -gt 0 ]] || die "$id: no requests (see $out)"
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v p=$((p1 - p0)) -v o=$((o1 - o0)) -v hz="$HZ" -v rps="$rps" \
        -v p50="$p50" -v p99="$p99" -v e="$e" -v proxied="${proxy:+1}" \
        'BEGIN {printf "%-12s %8.0f %8.3f %8.3f %7d %12s %12.1f", id, rps, p50, p99, e,
                (proxied ? sprintf("%.1f", p / hz * 1e6 / n) : "-"), o / hz * 1e6 / n}')
    ORDER+=("$id"); say "${ROW[$id]}"
    LOADCMD[$id]="${LOAD_PIN[*]} $(shell_words "${load[@]}") -d ${DURATION}s"
}
run_row direct "$ORIGIN_PORT" ""
run_row switchyard "$GW_PORT" "$GW"
run_row nginx "$NGINX_PORT" "$PROXY_NGINX"

col() { awk -v c="$2" '{print $c}' <<<"${ROW[$1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
    echo "Plain HTTP proxying, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "GET of a $BODY_BYTES-byte body, wrk -t1 -c$CONNS (keep-alive), ${WARMUP}s warm-up + ${DURATION}s per row, wrk on CPU 0, proxy + origin on CPU 1"
    echo
    printf '%-12s %8s %8s %8s %7s %12s %12s\n' row req/s "p50 ms" "p99 ms" errors "proxy us/req" "origin us/req"
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "switchyard / nginx: req/s $(ratio "$(col switchyard 2)" "$(col nginx 2)"), proxy CPU per request $(ratio "$(col switchyard 6)" "$(col nginx 6)")"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_BODY_BYTES=$BODY_BYTES bench/http/run.sh"
    for id in "${ORDER[@]}"; do echo "  $id: ${LOADCMD[$id]}"; done
} | tee "$OUT/http.txt"
