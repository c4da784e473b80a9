# Sourced by bench/graphql/run.sh: the aggregated query's latency against
# offered load, for Hive Gateway and Switchyard at the same fixed rates
# (fractions of Hive's closed-loop rate for that query, the lower of the
# two), open loop with latency correction (oha -q), CONNS connections.
# Writes $OUT/graphql-latency.csv and, with gnuplot, graphql-latency.png.
# Knobs: BENCH_SWEEP="0.25 0.5 0.75 1.0 1.25" (empty: skip), BENCH_SWEEP_DURATION=8
SWEEP=${BENCH_SWEEP-"0.25 0.5 0.75 1.0 1.25"} SWEEP_DURATION=${BENCH_SWEEP_DURATION:-8}
SWEEP_CSV=$OUT/graphql-latency.csv

sweep() { # sweep NAME URL BODY: one fixed-rate row per fraction (needs RPS[hive-agg])
    [[ -n $SWEEP && -n ${RPS[hive-agg]:-} ]] || return 0
    [[ -f $SWEEP_CSV && $1 != hive ]] || echo "target,offered,achieved,p50_ms,p90_ms,p99_ms,errors" >"$SWEEP_CSV"
    local f rate out
    for f in $SWEEP; do
        rate=$(awk -v s="${RPS[hive-agg]}" -v f="$f" 'BEGIN {printf "%d", s * f}')
        ((rate > 0)) || continue
        out=$RAW/sweep-$1-$rate.json
        "${LOAD_PIN[@]}" oha --no-tui --output-format json -c "$CONNS" -q "$rate" --latency-correction \
            -z "${SWEEP_DURATION}s" -m POST -H 'content-type: application/json' -D "$3" "$2" >"$out" ||
            die "sweep $1 at $rate/s: oha failed"
        oha_csv_line "$out" "$1" "$rate" | tee -a "$SWEEP_CSV" >&2
    done
}

sweep_plot() { # the plot, when gnuplot is there and both curves are
    [[ -f $SWEEP_CSV ]] && grep -q '^hive' "$SWEEP_CSV" && grep -q '^switchyard' "$SWEEP_CSV" || return 0
    command -v gnuplot >/dev/null || { say "gnuplot not found: no graphql-latency.png"; return 0; }
    gnuplot <<PLOT
set terminal pngcairo size 900,560 font "sans,10" noenhanced
set output "$OUT/graphql-latency.png"
set datafile separator ","
set title "GraphQL aggregated query (1 order + user + stock = 4 gRPC calls): latency against offered load"
set xlabel "offered load, requests/s (open loop, $CONNS connections; Hive's closed-loop rate: ${RPS[hive-agg]}/s)"
set ylabel "latency, ms (log scale)"
set logscale y
set key top left
set grid
plot "< grep '^switchyard' $SWEEP_CSV" using 2:6 with linespoints lw 2 title "Switchyard p99", \
     "< grep '^switchyard' $SWEEP_CSV" using 2:4 with linespoints lw 2 dt 2 title "Switchyard p50", \
     "< grep '^hive' $SWEEP_CSV" using 2:6 with linespoints lw 2 title "Hive Gateway p99", \
     "< grep '^hive' $SWEEP_CSV" using 2:4 with linespoints lw 2 dt 2 title "Hive Gateway p50"
PLOT
}
