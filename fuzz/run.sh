#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time: first its
# regression inputs (fuzz/regressions/<target>, crashes found before, each
# must pass), then FUZZ_SECONDS of libFuzzer from its committed seeds
# (fuzz/seeds/<target>). New corpus entries go to target/fuzz-corpus, crash
# inputs to fuzz/artifacts/<target> (not committed): copy one into
# fuzz/regressions/<target> once it is fixed so it stays fixed.
# Not part of the main test run (it needs nightly and takes minutes).
#   fuzz/run.sh                 every target, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh json_message
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
[[ $SECONDS_EACH =~ ^[0-9]+$ ]] || { echo "FUZZ_SECONDS must be a whole number" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || { echo "needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
TARGETS=("$@")
((${#TARGETS[@]})) || mapfile -t TARGETS < <(cargo +nightly fuzz list)
cargo +nightly fuzz build
WORK=../target/fuzz-corpus
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t" "regressions/$t" "seeds/$t"
    if compgen -G "regressions/$t/*" >/dev/null; then
        echo "== $t: regressions"
        cargo +nightly fuzz run "$t" "regressions/$t"/* -- -runs=0 || { failed+=("$t (regression)"); continue; }
    fi
    echo "== $t: ${SECONDS_EACH}s from seeds/$t"
    if ! cargo +nightly fuzz run "$t" "$WORK/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no crash"
