#!/usr/bin/env bash
# The Spin component must import only what a real Spin (3.x) provides, and export the HTTP
# handler: Spin's own interfaces and WASI 0.2. Anything else (wasi:nn, a stray host call) would
# fail only at `spin up` on someone's server, so CI fails it here.
# Usage: scripts/check-spin-imports.sh COMPONENT.wasm
set -euo pipefail
wit=$(wasm-tools component wit "$1")
imports=$(grep -E '^\s*import ' <<<"$wit" | sed -E 's/^\s*import ([^;]+);/\1/' | sort -u)
exports=$(grep -E '^\s*export ' <<<"$wit" | sed -E 's/^\s*export ([^;]+);/\1/' | sort -u)
allowed='^(fermyon:spin/|spin:|wasi:(cli|clocks|http|io|random|filesystem|sockets|config|keyvalue)/)'
bad=$(grep -Ev "$allowed" <<<"$imports" || true)
if [ -n "$bad" ]; then
  echo "check-spin-imports: $1 imports what Spin does not provide:" >&2
  echo "$bad" >&2
  exit 1
fi
if ! grep -q '^wasi:http/incoming-handler@0\.2\.' <<<"$exports"; then
  echo "check-spin-imports: $1 does not export wasi:http/incoming-handler@0.2" >&2
  exit 1
fi
echo "check-spin-imports: $(wc -l <<<"$imports") imports, all provided by Spin; exports: $(tr '\n' ' ' <<<"$exports")"
