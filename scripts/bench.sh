#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail): on wrangler dev and on udc-server, an authenticated
# GET /devices against a bare GET /health and the sign-in's server time; and the sizes of the
# Worker's wasm and the Spin component. Usage: scripts/bench.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
source scripts/hosts.sh
trap stop_hosts EXIT

cargo build --release -p udc-server -p udc-conformance --bin udc-server --bin udc-bench
build_worker >/dev/null 2>&1
cargo build -p udc-spin --target wasm32-wasip2 --release

start_wrangler "$UDC_RUN_DIR/wrangler-state"
target/release/udc-bench "$@"
stop_hosts

start_server target/release/udc-server
target/release/udc-bench "$@"
stop_hosts

size() { printf '%8d bytes, %8d gzip -9' "$(wc -c <"$1")" "$(gzip -9c "$1" | wc -c)"; }
echo "Worker wasm      $(size functions/cloudflare/build/index_bg.wasm)   (target <= 600 KB gzip)"
echo "Spin component   $(size target/wasm32-wasip2/release/udc_spin.wasm)"
