#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail), on wrangler dev and on udc-server: an authenticated
# GET /devices and every other authenticated GET against a bare GET /health and the sign-in's
# server time (udc-bench); the hub's
# fan-out latency, throughput and (udc-server) memory per idle socket at 100 and 1000 sockets
# (udc-hub-bench); on udc-server, a file (1 GiB) sent and received by udc-agent against curl
# on the same presigned URLs, with the agent's peak memory (udc-files-bench); and the sizes
# of the Worker's wasm and the Spin component; GET /devices against /health on the Spin component
# in udc-spin-host; clipboard latency between two agents on two Xvfb displays, through wrangler
# dev and through udc-server, and to the Windows agent under Wine (udc-clip-bench), with that
# agent's capture + encode frames/s under Wine (capture-bench); remote control's capture frames/s and input latency
# on udc-server (udc-remote-bench); a remote session in the web app: click to first frame, glass
# to glass, the page's input to XTEST and keyframes on the page's request, and the bit rate a busy
# screen settles at on loopback and on a link with 2 % loss, an 80 ms round trip and 2 Mbit/s
# (udc-page-remote-bench, scripts/bench-link.sh); the web app in headless Chromium on udc-server: first-load
# bytes, time to interactive, sign-in (KDF in wasm) against the native KDF, and a file (1 GiB)
# sent from the page against the agent, with the browser's peak memory (udc-web-bench); on
# udc-server, requests per second under load (wrk -c32: /health against an authenticated
# GET /devices; GET /devices with JSON logs and metrics on against off) and clipboard storms (udc-storm-bench: one account of 501 devices with open
# sockets, 20 posts/s for 60 s; 200 accounts of 2 devices, each device posting once a second:
# answer and delivery times, deliveries lost, sockets closed); on wrangler dev and udc-server,
# authenticated GET /devices per second spread over 1, 10 and 100 accounts, and on wrangler dev
# each account's first request after a restart against the next (udc-accounts-bench).
# Usage: scripts/bench.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
source scripts/hosts.sh
BIN="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo puts binaries
# The hosts' storage holds gigabytes of benchmark files by the end: nothing there is kept.
trap 'stop_hosts; rm -rf "$UDC_RUN_DIR"' EXIT

ulimit -n 8192 2>/dev/null || true   # a thousand sockets on each side
scripts/build-web.sh >/dev/null
cargo build --release -p udc-server -p udc-agent -p udc-conformance --bin udc-server --bin udc-agent \
  --bin udc-bench --bin udc-hub-bench --bin udc-files-bench --bin udc-clip-bench --bin udc-remote-bench --bin udc-page-remote-bench --bin udc-web-bench \
  --bin udc-storm-bench --bin udc-accounts-bench --bin udc-fuzz-token --bin udc-slow-link
export UDC_AGENT_BIN="$BIN/release/udc-agent"
build_worker >/dev/null 2>&1
scripts/build-spin.sh >/dev/null
cargo build -p udc-spin-host

start_wrangler "$UDC_RUN_DIR/wrangler-state"
"$BIN/release/udc-bench" "$@"
for n in 100 1000; do "$BIN/release/udc-hub-bench" --sockets "$n"; done
"$BIN/release/udc-clip-bench" --copies 200
"$BIN/release/udc-accounts-bench" --accounts 1,10,100 --save "$UDC_RUN_DIR/accounts.json"
stop_hosts
# The same state again: each account's first request wakes its Durable Object.
start_wrangler "$UDC_RUN_DIR/wrangler-state"
"$BIN/release/udc-accounts-bench" --cold "$UDC_RUN_DIR/accounts.json"
stop_hosts

start_server "$BIN/release/udc-server"
"$BIN/release/udc-bench" "$@"
for n in 100 1000; do "$BIN/release/udc-hub-bench" --sockets "$n" --server-pid "${UDC_HOST_PIDS[0]}"; done
"$BIN/release/udc-clip-bench" --copies 200
"$BIN/release/udc-accounts-bench" --accounts 1,10,100
token=$("$BIN/release/udc-fuzz-token")
for path in /health /devices; do
  echo "wrk -c32 10 s GET $path: $(wrk -t2 -c32 -d10s --latency -H "Authorization: Bearer $token" "$UDC_BASE_URL$path" \
    | awk '/Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 } END { print rps " req/s, p99 " p99 }')"
done
stop_hosts

# What operating it costs: authenticated GET /devices with JSON request logs (to a file, as in
# production) and metrics on, against both off; same binary, alternating rounds.
devices_under_load() { # VAR=value settings for udc-server; prints "req/s p50_ms"
  (
    export "$@"
    start_server "$BIN/release/udc-server" >/dev/null
    token=$("$BIN/release/udc-fuzz-token")
    wrk -t2 -c32 -d10s --latency -H "Authorization: Bearer $token" "$UDC_BASE_URL/devices" \
      | awk '/Requests\/sec/ { rps = $2 } / 50%/ { p50 = $2; sub(/ms/, "", p50); if ($2 ~ /us$/) { sub(/us/, "", p50); p50 /= 1000 } } END { print rps, p50 }'
    stop_hosts
  )
}
# Ten-second runs here vary by 15 % between runs of one setting: five rounds, and the medians.
ratios=()
for round in 1 2 3 4 5; do
  read -r off_rps off_p50 <<<"$(devices_under_load UDC_LOG=off)"
  read -r on_rps on_p50 <<<"$(devices_under_load UDC_LOG=info UDC_LOG_FORMAT=json "UDC_METRICS_LISTEN=127.0.0.1:$(free_port)")"
  ratios+=("$(awk -v a="$off_rps" -v b="$on_rps" -v c="$off_p50" -v d="$on_p50" 'BEGIN { print b / a, d / c }')")
  echo "GET /devices, round $round: logs+metrics off $off_rps req/s p50 $off_p50 ms; on $on_rps req/s p50 $on_p50 ms"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "GET /devices with JSON logs and metrics on / off, medians of ${#ratios[@]} rounds:" \
  "$(printf '%s\n' "${ratios[@]}" | cut -d' ' -f1 | median) req/s," \
  "$(printf '%s\n' "${ratios[@]}" | cut -d' ' -f2 | median) p50"

start_server "$BIN/release/udc-server"
"$BIN/release/udc-storm-bench" --devices 501 --posts-per-sec 20 --seconds 60
"$BIN/release/udc-storm-bench" --accounts 200 --devices 2 --posts-per-sec 2 --seconds 60
"$BIN/release/udc-remote-bench"
"$BIN/release/udc-page-remote-bench"
echo "link: the same busy screen on loopback as it is:"
"$BIN/release/udc-page-remote-bench" --link 40
"$BIN/release/udc-files-bench" --mib "${UDC_BENCH_FILE_MIB:-1024}"
"$BIN/release/udc-web-bench" --mib "${UDC_BENCH_FILE_MIB:-1024}"
stop_hosts

# The Spin component in udc-spin-host: GET /devices against the bare /health of the same component.
start_spin "$UDC_RUN_DIR/spin-state"
"$BIN/release/udc-bench" "$@"
stop_hosts

# The Windows agent under Wine (figures for Wine on this machine, not for Windows): clipboard from
# a Linux desk to a Windows desk; the screen captured and encoded while it changes every frame.
cargo build --release -p udc-agent --target x86_64-pc-windows-gnu --bins --example capture-bench
(
  trap 'stop_hosts; stop_wine' EXIT
  start_wine >"$UDC_RUN_DIR/wine-start.log" 2>&1 || { tail -20 "$UDC_RUN_DIR/wine-start.log"; exit 1; }
  start_server "$BIN/release/udc-server"
  UDC_WINDOWS_AGENT_BIN="$BIN/x86_64-pc-windows-gnu/release/udc-agent.exe" \
    "$BIN/release/udc-clip-bench" --copies 100 --windows
  WINEDEBUG=-all /usr/lib/wine/wine64 "$UDC_WINE_CANVAS" moving >/dev/null 2>&1 &
  sleep 2
  echo "Windows agent under Wine (GDI, a screen changing every frame):"
  WINEDEBUG=-all /usr/lib/wine/wine64 "$BIN/x86_64-pc-windows-gnu/release/examples/capture-bench.exe" --seconds 5
)

# Remote control over a poor link (2 % loss, 80 ms round trip, 2 Mbit/s: udc-slow-link).
scripts/bench-link.sh 40

size() { printf '%8d bytes, %8d gzip -9' "$(wc -c <"$1")" "$(gzip -9c "$1" | wc -c)"; }
echo "Worker wasm      $(size functions/cloudflare/build/index_bg.wasm)   (target <= 600 KB gzip)"
echo "Spin API         $(size "$BIN/spin-components/udc_spin.wasm")   (target <= 1.2 MB)"
echo "Spin web app     $(size "$BIN/spin-components/udc_spin_web.wasm")"
