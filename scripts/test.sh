#!/usr/bin/env bash
# The project's test command — what CI runs (.ci/run) and what a developer
# runs before pushing. On a fresh machine it installs what the tests need:
#   - a Python virtualenv (.venv) with grpcio, for the end-to-end test against
#     a gRPC server we did not write in Rust;
# then checks formatting and lints, and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# --- Python peer (gateway/tests/python_peer.rs) -----------------------------
requirements=gateway/tests/peers/python/requirements.txt
if [ -f "$requirements" ]; then
  stamp=.venv/.requirements.sha256
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the Python test peer's packages into .venv"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
  export SWITCHYARD_PYTHON="$PWD/.venv/bin/python"
fi

# --- Rust -------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary,
# and the last is often a crate's empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nworkspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
