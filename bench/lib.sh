# Shell functions shared by the benchmark scripts (bench/run.sh,
# bench/graphql/run.sh, bench/plugins.sh, bench/events/run.sh, bench/soak,
# bench/memory, bench/latency). Source it after defining `say` and `die`
# (each script prints its own prefix).

APT_UPDATED=0
need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing $2 (for $1)"
        if ((APT_UPDATED == 0)); then apt-get update -qq >&2 || die "apt-get update failed"; APT_UPDATED=1; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 || die "apt-get install $2 failed"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install the Debian package $2"
}
listening_ports() {
    if command -v ss >/dev/null; then
        ss -Hltn | awk '{n = split($4, a, ":"); print a[n]}' | sort -un
    fi
}
port_busy() {
    [[ $BUSY == *" $1 "* ]] && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null # fallback when ss is missing
}
pick_port() { # pick_port VAR PREFERRED
    local p=$2
    if port_busy "$p"; then
        p=$((20000 + RANDOM % 20000))
        while port_busy "$p"; do p=$((20000 + RANDOM % 20000)); done
        say "port $2 is busy; using $p instead"
    fi
    BUSY+="$p "
    printf -v "$1" '%s' "$p"
}
machine_ticks() { # "busy total" over all CPUs from /proc/stat
    local _c u n s i w irq sirq st _rest
    read -r _c u n s i w irq sirq st _rest </proc/stat
    echo "$((u + n + s + irq + sirq + st)) $((u + n + s + i + w + irq + sirq + st))"
}
to_ms() { # wrk latency ("812.00us", "1.23ms", "1.02s") -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}
shell_words() { # print the arguments as one copy-pastable shell command line
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    echo "${out[*]}"
}
stop() { # stop PID...: TERM, wait up to 5 s each, then KILL
    local p; for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
rss_kib() { # rss_kib PID: the process's resident set, KiB
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
ticks() { # ticks PID: user + system CPU ticks of the process
    local s; s=$(<"/proc/$1/stat") || die "process $1 is gone"; s=${s##*) }; set -- $s; echo $((${12} + ${13}))
}
pick_demo_ports() { # GW_PORT ADMIN_PORT USERS_PORT ORDERS_PORT INV_PORT: the demo's, or free ones
    BUSY=" $(listening_ports | tr '\n' ' ') "
    pick_port GW_PORT 8080; pick_port ADMIN_PORT 9090; pick_port USERS_PORT 50051
    pick_port ORDERS_PORT 50052; pick_port INV_PORT 50053
}
build_binaries() { # build_binaries release|debug|none: switchyard and switchyard-demo
    case $1 in
        release) say "cargo build --release"; cargo build --release --locked -p switchyard -p switchyard-demo >&2 || die "cargo build failed" ;;
        debug) say "cargo build"; cargo build --locked -p switchyard -p switchyard-demo >&2 || die "cargo build failed" ;;
        none) ;;
        *) die "unknown build $1 (release, debug or none)" ;;
    esac
    [[ -x $BIN/switchyard && -x $BIN/switchyard-demo ]] || die "no binaries in $BIN"
}
start_gateway() { # start_gateway CONFIG LOG: $BIN/switchyard on $GW_PORT/$ADMIN_PORT in front of the demo's ports, under ${SRV_PIN[@]}; sets GW once /readyz answers
    ( export SWITCHYARD_LISTEN=127.0.0.1:$GW_PORT SWITCHYARD_ADMIN=127.0.0.1:$ADMIN_PORT \
        DEMO_USERS_ADDR=127.0.0.1:$USERS_PORT DEMO_ORDERS_ADDR=127.0.0.1:$ORDERS_PORT \
        DEMO_INVENTORY_ADDR=127.0.0.1:$INV_PORT
      exec "${SRV_PIN[@]}" "$BIN/switchyard" --log warn run --config "$1" >"$2" 2>&1 ) &
    GW=$!; STARTED+=("$GW")
    for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && return
        kill -0 $GW 2>/dev/null || die "switchyard exited: $(cat "$2")"; sleep 0.1; done
    die "switchyard did not get ready: $(tail -5 "$2")"
}
start_demo() { # start_demo LOG: switchyard-demo on $USERS_PORT/$ORDERS_PORT/$INV_PORT under ${SRV_PIN[@]}; sets DEMO_PID
    # 50051-50053 lie in Linux's ephemeral range: another process's outgoing
    # connection can hold one for a while (bind fails though nothing
    # listens). Then the demo moves to free ports below that range.
    local attempt
    for attempt in 1 2 3; do
        say "starting switchyard-demo (${SRV_PIN[*]:-unpinned})"
        "${SRV_PIN[@]}" "$BIN/switchyard-demo" --users 127.0.0.1:$USERS_PORT --orders 127.0.0.1:$ORDERS_PORT \
            --inventory 127.0.0.1:$INV_PORT >"$1" 2>&1 &
        DEMO_PID=$!; STARTED+=("$DEMO_PID")
        for _ in $(seq 100); do
            (($(grep -c 'listening on' "$1") >= 3)) && return
            kill -0 "$DEMO_PID" 2>/dev/null || break
            sleep 0.1
        done
        grep -q 'Address already in use' "$1" && ((attempt < 3)) || break
        say "switchyard-demo: $(grep -m1 'Address already in use' "$1"); moving to other ports"
        local p
        for var in USERS_PORT ORDERS_PORT INV_PORT; do
            p=$((20000 + RANDOM % 12000))
            while port_busy "$p"; do p=$((20000 + RANDOM % 12000)); done
            BUSY+="$p "; printf -v "$var" '%s' "$p"
        done
    done
    die "switchyard-demo not listening: $(cat "$1")"
}
# oha paces requests evenly (open loop, with latency correction) for the
# fixed-rate rows; wrk and h2load cannot (h2load's --rps fires in bursts).
OHA_VERSION=1.16.0
need_oha() { # installs oha with cargo when missing (once per machine)
    command -v oha >/dev/null 2>&1 || PATH="$HOME/.cargo/bin:$PATH"
    command -v oha >/dev/null 2>&1 && return 0
    say "installing oha $OHA_VERSION with cargo (about 4 minutes, once per machine)"
    cargo install --quiet --locked oha --version "$OHA_VERSION" >&2 || die "cargo install oha failed"
}
wrk_summary() { # wrk_summary FILE: "requests req/s p50-ms p99-ms errors" of a wrk --latency run
    local f=$1
    # wrk counts status > 399 as "Non-2xx or 3xx", plus socket errors.
    echo "$(awk '/ requests in / {print $1}' "$f") $(awk '/^Requests\/sec:/ {print $2}' "$f")" \
        "$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")") $(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")" \
        "$(awk '/^ *Non-2xx or 3xx responses:/ {e += $NF}
                /^ *Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
                END {print e + 0}' "$f")"
}
oha_summary() { # oha_summary FILE: the same from oha's --output-format json
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
ok = sum(n for c, n in codes.items() if c.startswith("2"))
# Requests still in flight when -z ends are "aborted due to deadline": not failures.
errors = {e: n for e, n in d.get("errorDistribution", {}).items() if e != "aborted due to deadline"}
bad = sum(n for c, n in codes.items() if not c.startswith("2")) + sum(errors.values())
p = d["latencyPercentiles"]
print(ok + bad, d["summary"]["requestsPerSec"], "%.3f" % (p["p50"] * 1000), "%.3f" % (p["p99"] * 1000), bad)
' "$1"
}
oha_csv_line() { # oha_csv_line FILE NAME RATE: "NAME,RATE,achieved,p50_ms,p90_ms,p99_ms,errors" of a fixed-rate oha run
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
errors = {e: n for e, n in d.get("errorDistribution", {}).items() if e != "aborted due to deadline"}
bad = sum(n for c, n in codes.items() if not c.startswith("2")) + sum(errors.values())
p = d["latencyPercentiles"]
print("%s,%s,%.0f,%.3f,%.3f,%.3f,%d" % (sys.argv[2], sys.argv[3], d["summary"]["requestsPerSec"],
      p["p50"] * 1000, p["p90"] * 1000, p["p99"] * 1000, bad))
' "$1" "$2" "$3"
}
start_nginx() { # start_nginx DIR LABEL HTTP-BLOCK: Debian's nginx, 1 worker, access log off, the given http { } contents, under ${SRV_PIN[@]}; sets NGINX_MASTER, NGINX_WORKER
    local dir=$1
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
$3
}
CONF
    say "starting nginx $(nginx -v 2>&1 | sed 's/.*\///') (1 worker, $2)"
    "${SRV_PIN[@]}" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    NGINX_MASTER=$!; STARTED+=("$NGINX_MASTER")
    NGINX_WORKER=
    for _ in $(seq 100); do NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1 || true); [[ -n $NGINX_WORKER ]] && break; sleep 0.1; done
    [[ -n $NGINX_WORKER ]] || die "nginx did not start: $(cat "$dir/logs/error.log" "$dir/stdout.log")"
}
start_nginx_grpc() { # start_nginx_grpc DIR PORT UPSTREAM-PORT: nginx with grpc_pass to the upstream on PORT (h2c)
    start_nginx "$1" "grpc_pass on port $2" "    upstream users { server 127.0.0.1:$3; keepalive 256; }
    server {
        listen 127.0.0.1:$2 http2;
        location / { grpc_pass grpc://users; }
    }"
}
