#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs (scripts/setup.sh),
# checks format and lints, builds every host (udc-server, the Worker, the Spin component),
# runs the unit tests, then the black-box conformance suite against udc-server and against
# `wrangler dev` (workerd with local D1, migrations applied fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/hosts.sh
BIN="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo puts binaries
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
# Every native crate's own tests (the conformance suite needs a running host: below).
cargo nextest run --workspace --exclude udc-conformance --exclude udc-cloudflare --exclude udc-spin

export UDC_AGENT_BIN="$BIN/debug/udc-agent"

# Each host: the suite, then the restart check (same storage, new process).
step "conformance: udc-server"
start_server "$BIN/debug/udc-server"
cargo nextest run -p udc-conformance --test api --test cli
export UDC_RESTART_STATE="$UDC_RUN_DIR/restart-server.json"
UDC_RESTART_PHASE=before cargo nextest run -p udc-conformance --test restart
stop_hosts
start_server "$BIN/debug/udc-server"
UDC_RESTART_PHASE=after cargo nextest run -p udc-conformance --test restart
stop_hosts

step "conformance: wrangler dev (workerd, local D1 and Durable Objects)"
start_wrangler "$UDC_RUN_DIR/wrangler-state"
cargo nextest run -p udc-conformance --test api --test cli
export UDC_RESTART_STATE="$UDC_RUN_DIR/restart-wrangler.json"
UDC_RESTART_PHASE=before cargo nextest run -p udc-conformance --test restart
stop_hosts
start_wrangler "$UDC_RUN_DIR/wrangler-state"
UDC_RESTART_PHASE=after cargo nextest run -p udc-conformance --test restart
stop_hosts
