#!/usr/bin/env bash
# Soak at twice saturation: GET /v1/users/1 through the gateway in front of
# the demo services, bounded in time. First a closed-loop burst (oha -c64)
# finds the rate the machine carries; then oha offers twice that, open loop,
# on up to SOAK_CONNECTIONS connections, for SOAK_SECONDS, while the gateway's RSS and
# open file descriptors are sampled every 5 s. Passes when:
#   - every answer is 200 or 503 (load shed), no connection error and no
#     other status;
#   - no collapse: it serves at least half the saturation rate with 200s;
#   - memory levels off: the RSS of the last third of the run is at most
#     10% + 8 MiB over the highest RSS of the middle third;
#   - no descriptor leak: 5 s after the load, the gateway holds at most 16
#     more descriptors than before it;
#   - the gateway still serves (200 right after) and is ready.
# Knobs: SOAK_SECONDS=600 SOAK_CONNECTIONS=512 SOAK_SHEDDING=true (false:
#        limits.load_shedding off) SOAK_BUILD=release|debug|none (none: use the
#        binaries already in target/release, or target/debug with
#        SOAK_PROFILE=debug) BENCH_OUT=bench/out
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); cd "$ROOT"
DURATION=${SOAK_SECONDS:-600} PROFILE=${SOAK_PROFILE:-release} CONNS=${SOAK_CONNECTIONS:-512}
export SOAK_SHEDDING=${SOAK_SHEDDING:-true} # read by bench/soak/gateway.yaml
BIN=$ROOT/target/$PROFILE OUT=${BENCH_OUT:-$ROOT/bench/out}; RAW=$OUT/raw-soak
die() { printf 'soak/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'soak/run.sh: %s\n' "$*" >&2; }
source "$ROOT/bench/lib.sh"
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 15 && DURATION <= 3600)) || die "SOAK_SECONDS must be 15..3600"
[[ $CONNS =~ ^[0-9]+$ ]] && ((CONNS >= 1 && CONNS <= 8192)) || die "SOAK_CONNECTIONS must be 1..8192"
[[ $SOAK_SHEDDING == true || $SOAK_SHEDDING == false ]] || die "SOAK_SHEDDING must be true or false"
need curl curl
need_oha

build_binaries "${SOAK_BUILD:-$PROFILE}"

STARTED=()
trap 'rc=$?; trap - EXIT; stop "${STARTED[@]}"; exit $rc' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM HUP
SRV_PIN=()
pick_demo_ports
mkdir -p "$RAW"; rm -f "$RAW"/*
URL=http://127.0.0.1:$GW_PORT/v1/users/1

start_demo "$RAW/demo.log"
start_gateway bench/soak/gateway.yaml "$RAW/gateway.log"
curl -fsS -o /dev/null "$URL" || die "the gateway does not serve $URL"

fds() { find "/proc/$GW/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

say "finding saturation (oha -c64, 5 s, closed loop)"
oha --no-tui --output-format json -c 64 -z 5s "$URL" >"$RAW/saturation.json"
SAT=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$RAW/saturation.json")
((SAT > 0)) || die "no requests served while finding saturation"
RATE=$((SAT * 2))
sleep 2
FD0=$(fds); RSS0=$(rss_kib $GW)
say "saturation $SAT req/s; offering $RATE req/s for ${DURATION}s (oha -c$CONNS, open loop; load shedding $SOAK_SHEDDING); fds $FD0, RSS ${RSS0} KiB"
LOAD=(oha --no-tui --output-format json -c "$CONNS" -q "$RATE" -z "${DURATION}s" "$URL")
"${LOAD[@]}" >"$RAW/soak.json" &
LOAD_PID=$!; STARTED+=("$LOAD_PID")
: >"$RAW/samples.txt"
start=$(date +%s)
while kill -0 $LOAD_PID 2>/dev/null; do
    kill -0 $GW 2>/dev/null || die "the gateway died under load: $(tail -5 "$RAW/gateway.log")"
    echo "$(($(date +%s) - start)) $(rss_kib $GW) $(fds)" >>"$RAW/samples.txt"
    sleep 5
done
wait $LOAD_PID || die "oha failed"
STARTED=("$DEMO_PID" "$GW")
sleep 5
FD1=$(fds); RSS1=$(rss_kib $GW)
code=$(curl -sS -o /dev/null -w '%{http_code}' "$URL")
ready=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz")

read -r SERVED SHED OTHER ERRORS RPS P50 P99 P999 < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
errors = {e: n for e, n in d.get("errorDistribution", {}).items() if e != "aborted due to deadline"}
other = sum(n for c, n in codes.items() if c not in ("200", "503"))
p = d["latencyPercentiles"]
print(codes.get("200", 0), codes.get("503", 0), other, sum(errors.values()), int(d["summary"]["requestsPerSec"]),
      "%.1f" % (p["p50"] * 1000), "%.1f" % (p["p99"] * 1000), "%.1f" % (p["p99.9"] * 1000))
' "$RAW/soak.json")
read -r MID_MAX LAST_MAX < <(awk -v d="$DURATION" '
    $1 >= d / 3 && $1 < 2 * d / 3 && $2 > mid {mid = $2}
    $1 >= 2 * d / 3 && $2 > last {last = $2}
    END {print mid + 0, last + 0}' "$RAW/samples.txt")
FD_MAX=$(awk '$3 > m {m = $3} END {print m + 0}' "$RAW/samples.txt")

{
    echo "Soak at 2x saturation, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, $PROFILE build"
    echo "saturation (oha -c64, closed loop):  $SAT req/s;  offered: $RATE req/s for ${DURATION}s on $CONNS connections, load shedding $SOAK_SHEDDING"
    echo "answered:   $SERVED x 200, $SHED x 503 (shed), $OTHER other, $ERRORS connection errors;  $RPS req/s"
    echo "goodput:    $((SERVED / DURATION)) x 200 per second, $(awk -v g=$((SERVED / DURATION)) -v s="$SAT" 'BEGIN {printf "%.2f", g / s}') of saturation"
    echo "latency:    p50 $P50 ms, p99 $P99 ms, p99.9 $P999 ms"
    echo "RSS:        start $RSS0 KiB, middle third max $MID_MAX KiB, last third max $LAST_MAX KiB, after $RSS1 KiB"
    echo "open fds:   before $FD0, max under load $FD_MAX, 5 s after $FD1"
    echo "after:      GET $code, /readyz $ready"
    echo "samples (s, RSS KiB, fds): $RAW/samples.txt"
    echo "Reproduce: SOAK_SECONDS=$DURATION SOAK_CONNECTIONS=$CONNS SOAK_SHEDDING=$SOAK_SHEDDING SOAK_PROFILE=$PROFILE bench/soak/run.sh"
} | tee "$OUT/soak.txt"

((OTHER == 0 && ERRORS == 0)) || die "answers other than 200/503, or connection errors (see $RAW/soak.json)"
GOODPUT=$((SERVED / DURATION))
((GOODPUT * 2 >= SAT)) || die "goodput collapsed: $GOODPUT x 200 per second against a saturation of $SAT"
((LAST_MAX <= MID_MAX * 110 / 100 + 8192)) || die "RSS kept growing: $MID_MAX KiB in the middle third, $LAST_MAX KiB in the last"
((FD1 <= FD0 + 16)) || die "descriptors leaked: $FD0 before, $FD1 after"
[[ $code == 200 && $ready == 200 ]] || die "the gateway does not serve after the soak (GET $code, /readyz $ready)"
say "passed"
