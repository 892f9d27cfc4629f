#!/usr/bin/env bash
# Builds the web app into web/dist: the clients' shared crate for the browser (wasm32 through
# wasm-bindgen, shrunk by wasm-opt), then the UI (TypeScript checked, bundled by Vite).
# udc-server and the Spin component embed web/dist when they are built after this; `wrangler`
# serves it as Workers Static Assets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --web
BIN="${CARGO_TARGET_DIR:-$PWD/target}"

cargo build -p udc-client --target wasm32-unknown-unknown --release
rm -rf web/src/pkg
wasm-bindgen --target web --out-dir web/src/pkg "$BIN/wasm32-unknown-unknown/release/udc_client.wasm"
npx wasm-opt -O3 web/src/pkg/udc_client_bg.wasm -o web/src/pkg/udc_client_bg.wasm
npx tsc -p web
npx vite build web --logLevel warn
echo "build-web: web/dist ($(du -sh web/dist | cut -f1))"
