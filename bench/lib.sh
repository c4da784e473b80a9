# Shell functions shared by the benchmark scripts (bench/run.sh,
# bench/graphql/run.sh, bench/plugins.sh). Source it after defining `say` and
# `die` (each script prints its own prefix).

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
