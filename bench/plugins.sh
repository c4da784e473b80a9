#!/usr/bin/env bash
# Plugin cost: GET /v1/users/1 through the gateway with JWT auth (RS256) plus a
# local rate limit on the route, against the same route with no plugins, in one
# run. Rows: plain (bench/gateway-plain.yaml), plugins (bench/gateway-plugins.yaml,
# verified-token cache on), plugins-nocache (same, cache off: one RS256
# verification per request). Each row: its own gateway process, warm-up, then wrk
# -c64 for BENCH_DURATION s; CPU per request of gateway and upstream from
# /proc/PID/stat. Same pinning as bench/run.sh (wrk on CPU 0, servers on CPU 1).
# Knobs: BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=64 BENCH_BUILD=1 BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); cd "$ROOT"
DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-3} CONNS=${BENCH_CONNECTIONS:-64}
BIN=$ROOT/target/release OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-plugins
KEY=plugins/tests/fixtures/jwt/rsa_a.key # test-only key
die() { printf 'plugins.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'plugins.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
for v in DURATION WARMUP CONNS; do [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"; done
((DURATION > 0 && DURATION + WARMUP <= 120)) || die "BENCH_DURATION must be 1..120 s (shared machine)"
for c in wrk curl openssl taskset; do command -v $c >/dev/null || die "$c not found"; done

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
pick_port GW_PORT 8080; pick_port ADMIN_PORT 9090; pick_port USERS_PORT 50051
pick_port ORDERS_PORT 50052; pick_port INV_PORT 50053
mkdir -p "$RAW"; rm -f "$RAW"/*

# RS256 token signed with the test key: header.claims.signature, base64url, no padding.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '=\n'; }
SIGNING_INPUT="$(printf '%s' '{"alg":"RS256","typ":"JWT"}' | b64url).$(printf '{"iss":"bench","aud":"bench","sub":"bench-client","exp":%d}' $(($(date +%s) + 3600)) | b64url)"
TOKEN="$SIGNING_INPUT.$(printf '%s' "$SIGNING_INPUT" | openssl dgst -sha256 -sign "$KEY" -binary | b64url)"
URL=http://127.0.0.1:$GW_PORT/v1/users/1

start_demo "$RAW/demo.log"

HZ=$(getconf CLK_TCK)
WRK=(wrk -t1 -c"$CONNS" --latency -H "Authorization: Bearer $TOKEN" "$URL")
declare -A ROW; ORDER=()

run_row() { # run_row ID CONFIG [ENV=VALUE...]
    local id=$1 cfg=$2; shift 2
    say "$id: starting switchyard with $cfg $*"
    ( cd bench; export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT \
        DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT "$@"
      exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config "$cfg" >"$RAW/$id.gateway.log" 2>&1 ) &
    local gw=$!; STARTED+=("$gw")
    for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
        kill -0 $gw 2>/dev/null || die "switchyard exited: $(cat "$RAW/$id.gateway.log")"; sleep 0.1; done
    local ok none
    ok=$(curl -sS -D "$RAW/$id.headers" -o "$RAW/$id.body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL")
    [[ $ok == 200 ]] && grep -q 'Ada Lovelace' "$RAW/$id.body" || die "$id: GET with token answered $ok: $(head -c 300 "$RAW/$id.body")"
    none=$(curl -sS -o /dev/null -w '%{http_code}' "$URL")
    if [[ $cfg == gateway-plugins.yaml ]]; then [[ $none == 401 ]] || die "$id: GET without token answered $none, not 401"
        grep -qi '^ratelimit:' "$RAW/$id.headers" || die "$id: no RateLimit header: the rate limit is not applied"
    else [[ $none == 200 ]] || die "$id: plain gateway without token answered $none"; fi
    say "$id: sanity ok (with token $ok, without $none)"
    ((WARMUP > 0)) && { "${LOAD_PIN[@]}" "${WRK[@]}" -d "${WARMUP}s" >"$RAW/$id.warmup.txt" 2>&1 || die "$id: warm-up failed"; }
    sleep 0.5
    local g0 u0 g1 u1 out=$RAW/$id.wrk.txt
    g0=$(ticks $gw); u0=$(ticks $DEMO_PID)
    "${LOAD_PIN[@]}" "${WRK[@]}" -d "${DURATION}s" >"$out" 2>&1 || die "$id: wrk failed: $(tail -3 "$out")"
    sleep 0.3
    g1=$(ticks $gw); u1=$(ticks $DEMO_PID)
    local n; n=$(awk '/ requests in / {print $1}' "$out"); ((n > 0)) || die "$id: no requests (see $out)"
    ROW[$id]=$(awk -v id="$id" -v n="$n" -v g=$((g1 - g0)) -v u=$((u1 - u0)) -v hz="$HZ" \
        -v rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
        -v p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")" -v p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")" \
        -v e="$(awk '/Non-2xx or 3xx/ {e += $NF} /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} END {print e + 0}' "$out")" \
        'BEGIN {printf "%-16s %8.0f %8s %8s %7d %10.1f %10.1f", id, rps, p50, p99, e, g / hz * 1e6 / n, u / hz * 1e6 / n}')
    ORDER+=("$id"); say "${ROW[$id]}"
    stop "$gw"; STARTED=("$DEMO_PID")
}

run_row plain gateway-plain.yaml
run_row plugins gateway-plugins.yaml
run_row plugins-nocache gateway-plugins.yaml BENCH_JWT_CACHE_ENTRIES=0

gw_us() { awk '{print $6}' <<<"${ROW[$1]}"; }
DIFF=$(awk -v a="$(gw_us plugins)" -v b="$(gw_us plain)" 'BEGIN {printf "%+.1f", a - b}')
DIFF_NC=$(awk -v a="$(gw_us plugins-nocache)" -v b="$(gw_us plain)" 'BEGIN {printf "%+.1f", a - b}')
VERDICT=$(awk -v d="$DIFF" 'BEGIN {print (d < 10 ? "MET" : "NOT MET")}')
{
    echo "Plugin cost, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
    echo "wrk -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per row, wrk on CPU 0, gateway + upstream on CPU 1"
    echo
    printf '%-16s %8s %8s %8s %7s %10s %10s\n' config req/s "p50 ms" "p99 ms" errors "gw us/req" "up us/req"
    for id in "${ORDER[@]}"; do echo "${ROW[$id]}"; done
    echo
    echo "plain           = bench/gateway-plain.yaml (users route, no plugins)"
    echo "plugins         = bench/gateway-plugins.yaml (jwt RS256 + rate_limit 1000000/s by consumer), token cache on"
    echo "plugins-nocache = the same with BENCH_JWT_CACHE_ENTRIES=0 (cache.max_entries: 0)"
    echo "All rows send the same Authorization: Bearer header."
    echo
    echo "gateway CPU added by the plugin stack (plugins - plain):  $DIFF us/req  (target < 10 us: $VERDICT)"
    echo "the same without the token cache (nocache - plain):       $DIFF_NC us/req (RS256 verify on every request)"
    echo
    echo "Reproduce: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS bench/plugins.sh"
    echo "Load command (token elided): ${LOAD_PIN[*]} wrk -t1 -c$CONNS --latency -H 'Authorization: Bearer <token>' -d ${DURATION}s $URL"
} | tee "$OUT/plugins.txt"
