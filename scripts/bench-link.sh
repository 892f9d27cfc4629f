#!/usr/bin/env bash
# Remote control over a poor link: 2 % of datagrams lost each way, 40 ms each way (an 80 ms round
# trip) and 2 Mbit/s, with a 200 ms queue. This kernel has no netem, so udc-slow-link makes the
# link in user space, in front of the TURN relay; the desk sends through the relay alone
# (UDC_RTC_RELAY_ONLY=1), so the session's video, input and feedback all cross the link. Prints
# the bit rate and frame rate the desk's encoder settles at as the congestion controller reads
# the page's feedback, and what the page's bar says (udc-page-remote-bench --link).
# Usage (from scripts/bench.sh, after its release build): scripts/bench-link.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-40}
export BIN="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo puts binaries
export UDC_AGENT_BIN="$BIN/release/udc-agent"
source scripts/hosts.sh
trap stop_hosts EXIT
start_turn
relay=${UDC_TURN_URLS#turn:}
relay=${relay%%\?*}
link_port=$(free_port)
"$BIN/release/udc-slow-link" "127.0.0.1:$link_port" "$relay" \
  --delay-ms 40 --loss 0.02 --kbps 2000 --queue-ms 200 &
UDC_HOST_PIDS+=($!)
export UDC_TURN_URLS="turn:127.0.0.1:$link_port?transport=udp"
run_server "$BIN/release/udc-server" >/dev/null
echo "link: through the relay alone, 2 % loss each way, 80 ms round trip, 2 Mbit/s:"
UDC_RTC_RELAY_ONLY=1 "$BIN/release/udc-page-remote-bench" --link "$seconds"
