#!/usr/bin/env bash
# The project's test command — what CI runs (.ci/run) and what a developer
# runs before pushing. On a fresh machine it installs what the tests need:
#   - a Python virtualenv (.venv) with grpcio, for the end-to-end test against
#     a gRPC server we did not write in Rust;
#   - Debian's chromium and playwright-core (npm, gateway/tests/browser), for
#     the GraphiQL and API docs pages run in a headless browser;
#   - graphql-ws and ws (npm, gateway/tests/ws_clients), a real
#     graphql-transport-ws client for the GraphQL WebSocket endpoint;
#   - a Redis on 127.0.0.1:6379, for the shared rate limit tests (started if
#     none answers; apt-get installed if redis-server is missing);
#   - NATS with JetStream on 127.0.0.1:4222 and the nats-server binary, and
#     RabbitMQ on 127.0.0.1:5672, for the event sink and outbox tests
#     (started / installed the same way);
#   - tansu, a Kafka-protocol broker, on 127.0.0.1:19092, for the Kafka sink
#     tests (cargo-installed once per machine, 18-30 min; started if none
#     answers);
#   - oha (cargo-installed once per machine), the load of the closing soak;
# then checks formatting and lints, runs every test in the workspace, and
# (without arguments) a 60 s soak at twice saturation (bench/soak/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# A CI run builds a clean clone once: incremental compilation data would only
# cost time and disk (it was 19 GB of a 63 GB debug target here).
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi

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

# --- Node test peers ---------------------------------------------------------
# npm_ci DIR WHAT: (re)install DIR's node_modules with `npm ci` when its
# package-lock.json changes (a sha256 stamp kept in node_modules).
npm_ci() {
  local dir=$1 what=$2
  local stamp=$dir/node_modules/.package-lock.sha256
  local want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the $what's node packages (npm ci)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
    echo "$want" > "$stamp"
  fi
}

# --- Headless Chromium (gateway/tests/graphiql_browser.rs) ------------------
# Debian's chromium, driven by playwright-core from gateway/tests/browser.
browser_dir=gateway/tests/browser
if [ -f "$browser_dir/package-lock.json" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  npm_ci "$browser_dir" "browser test"
  export SWITCHYARD_CHROMIUM=/usr/bin/chromium
  export SWITCHYARD_BROWSER_DIR="$PWD/$browser_dir"
fi

# --- Node WebSocket clients (GraphQL WebSocket endpoint, method calls) -----
# gateway/tests/ws_clients: graphql_subscribe.mjs, a real graphql-ws client;
# method_call.mjs, a call over the `ws` package.
ws_clients_dir=gateway/tests/ws_clients
if [ -f "$ws_clients_dir/package-lock.json" ]; then
  npm_ci "$ws_clients_dir" "WebSocket clients"
  export SWITCHYARD_WS_CLIENTS_DIR="$PWD/$ws_clients_dir"
fi

# --- An AssemblyScript proxy-wasm filter (gateway/tests/wasm_plugins.rs) ----
# plugins/examples/assemblyscript: a filter written with an existing SDK
# (@solo-io/proxy-runtime), compiled from source by the test with asc.
assemblyscript_dir=plugins/examples/assemblyscript
if [ -f "$assemblyscript_dir/package-lock.json" ]; then
  npm_ci "$assemblyscript_dir" "AssemblyScript filter"
fi

# --- Redis (plugins rate_limit::redis tests, gateway/tests/rate_limit_redis.rs)
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return
  fi
  if ! command -v redis-server >/dev/null; then
    say "installing redis-server"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  fi
  say "starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  local dir=/var/lib/redis log=/var/log/redis/ci.log
  if [ ! -w "$dir" ] || ! touch "$log" 2>/dev/null; then
    dir=$(mktemp -d); log="$dir/redis.log"
  fi
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir "$dir" --logfile "$log"
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "redis-server did not start; see $log" >&2
  exit 1
}
ensure_redis

# --- NATS with JetStream (gateway/tests/events_nats.rs, events::sinks::nats)
# The tests use the server on 127.0.0.1:4222 and start their own
# nats-server on spare ports to play outages.
ensure_nats() {
  if ! command -v nats-server >/dev/null; then
    say "installing nats-server"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    return
  fi
  say "starting nats-server -js on 127.0.0.1:4222"
  local dir=/var/lib/nats-server log=/var/log/nats-server.log
  mkdir -p "$dir" 2>/dev/null || true
  if [ ! -w "$dir" ] || ! touch "$log" 2>/dev/null; then
    dir=$(mktemp -d); log="$dir/nats.log"
  fi
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd "$dir" -l "$log"
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && return
    sleep 0.1
  done
  echo "nats-server did not start; see $log" >&2
  exit 1
}
ensure_nats

# --- RabbitMQ (events::sinks::rabbitmq) --------------------------------------
ensure_rabbitmq() {
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    return
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    say "installing rabbitmq-server"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  say "starting rabbitmq-server on 127.0.0.1:5672 (guest/guest)"
  rabbitmq-server -detached
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && return
    sleep 0.2
  done
  echo "rabbitmq-server did not start" >&2
  exit 1
}
ensure_rabbitmq

# --- tansu, a Kafka-protocol broker (gateway/tests/events_kafka.rs) ---------
# The tests use the broker on 127.0.0.1:19092 and start their own tansu on
# spare ports to play outages. Not packaged: built from crates.io once per
# machine (18-30 minutes on 2 cores); the binary stays in ~/.cargo/bin.
ensure_tansu() {
  if ! command -v tansu >/dev/null && [ -x "$HOME/.cargo/bin/tansu" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v tansu >/dev/null; then
    say "installing tansu (cargo install: 18-30 min, once per machine)"
    cargo install tansu --locked --features dynostore
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null; then
    return
  fi
  say "starting tansu broker on 127.0.0.1:19092 (in-memory storage)"
  local log=target/tansu.log
  mkdir -p target
  setsid nohup tansu broker --listener-url tcp://127.0.0.1:19092 \
    --advertised-listener-url tcp://127.0.0.1:19092 \
    --storage-engine memory://tansu/ >"$log" 2>&1 &
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null && return
    sleep 0.1
  done
  echo "tansu did not start; see $log" >&2
  exit 1
}
ensure_tansu

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
[ "$status" = 0 ] || exit "$status"

# A short soak at twice saturation (bench/soak/run.sh; 10 minutes there by
# default): memory levels off, no descriptor leak, overload answered 200 or
# 503. The debug build the tests used, to stay quick. SWITCHYARD_SOAK_SECONDS=0 skips it.
soak=${SWITCHYARD_SOAK_SECONDS:-60}
if [ "$soak" != 0 ] && [ $# = 0 ]; then
  say "soak: ${soak}s at twice saturation (bench/soak/run.sh)"
  SOAK_SECONDS=$soak SOAK_BUILD=debug SOAK_PROFILE=debug bash bench/soak/run.sh
fi
