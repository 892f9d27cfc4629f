#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs (scripts/setup.sh),
# checks format and lints, builds every host (udc-server, the Worker, the Spin component),
# runs the unit tests, then the black-box conformance suite against udc-server and against
# `wrangler dev` (workerd with local D1, migrations applied fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/hosts.sh
trap stop_hosts EXIT

step() { echo; echo "== $*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p udc-cloudflare --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p udc-spin --target wasm32-wasip2 -- -D warnings

step "build: udc-server, udc-agent, the Worker, the Spin component"
cargo build -p udc-server -p udc-agent
build_worker
cargo build -p udc-spin --target wasm32-wasip2 --release

step "unit tests"
cargo nextest run --lib --bins   # default members: the native crates

export UDC_AGENT_BIN="$PWD/target/debug/udc-agent"

step "conformance: udc-server"
start_server target/debug/udc-server
cargo nextest run -p udc-conformance --tests
stop_hosts

step "conformance: wrangler dev (workerd, local D1)"
start_wrangler "$UDC_RUN_DIR/wrangler-state"
cargo nextest run -p udc-conformance --tests
stop_hosts
