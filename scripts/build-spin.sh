#!/usr/bin/env bash
# Builds the Spin components into $CARGO_TARGET_DIR/spin-components (default target/): the API's
# (udc_spin.wasm) and the web app's (udc_spin_web.wasm; scripts/build-web.sh first). Each is
# Cargo.toml's [profile.spin] linked as a core module, shrunk by wasm-opt -Oz as the Worker is
# (a sixth of the API's bytes, which every request's instance pays for), then made a component
# by wasm-tools. Usage: scripts/build-spin.sh [CRATE...] (default: both).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CARGO_TARGET_DIR:-$ROOT/target}
out="$BIN/spin-components"
mkdir -p "$out"
crates=("$@")
[ ${#crates[@]} -gt 0 ] || crates=(udc-spin udc-spin-web)
for crate in "${crates[@]}"; do
  name=${crate//-/_}
  cargo rustc -p "$crate" --target wasm32-wasip2 --profile spin -- -C link-arg=--skip-wit-component
  # The features rustc's wasm32-wasip2 output uses (what wasmtime and Spin run).
  "$ROOT/node_modules/binaryen/bin/wasm-opt" -Oz --enable-bulk-memory --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types \
    --enable-multivalue "$BIN/wasm32-wasip2/spin/$name.wasm" -o "$out/$name.core.wasm"
  wasm-tools component new "$out/$name.core.wasm" -o "$out/$name.wasm"
  rm "$out/$name.core.wasm"
  echo "build-spin: $out/$name.wasm ($(wc -c <"$out/$name.wasm") bytes)"
done
