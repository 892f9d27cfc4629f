#!/usr/bin/env bash
# Builds the Worker into functions/cloudflare/build (what `wrangler dev` and `wrangler deploy`
# load): Cargo.toml's [profile.worker] through worker-build, then the wasm's name section
# dropped. worker-build keeps names for stack traces; nothing in udc's Worker panics, and they
# were 45 KB of its gzip (the upload limit and every cold start pay for size).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
(cd functions/cloudflare &&
  WASM_BINDGEN_BIN=$(command -v wasm-bindgen) \
  WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt" \
  ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild" \
  worker-build --profile worker)
# The features worker-build itself enables for wasm-opt (what workerd runs).
wasm=functions/cloudflare/build/index_bg.wasm
"$ROOT/node_modules/binaryen/bin/wasm-opt" --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling \
  "$wasm" -o "$wasm"
