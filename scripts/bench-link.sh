#!/usr/bin/env bash
# Remote control over a poor link: udc-server, a desk and the page (udc-page-remote-bench --link)
# in a network namespace of their own, where UDP loses 2 % of its packets at random and is held
# to 2 Mbit/s (nftables: a policer, so the excess is dropped, not queued). Prints the bit rate and
# frame rate the desk's encoder settles at as the congestion controller reads the page's feedback.
# No added delay: this kernel has no netem (tc's `netem` qdisc is unknown here), and delay is
# what a policer cannot make. Needs root (ip netns, veth, nft).
# Usage (from scripts/bench.sh, after its release build): scripts/bench-link.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-40}
export BIN="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo puts binaries
export UDC_AGENT_BIN="$BIN/release/udc-agent"
ns="udc-link-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
# An interface besides loopback, with a default route: the agents' WebRTC stack binds every
# interface and fails (ENODEV) on a host with loopback alone.
in_ns ip link add udc0 type veth peer name udc1
in_ns ip addr add 10.99.0.1/24 dev udc0
in_ns ip addr add 10.99.0.2/24 dev udc1
in_ns ip link set udc0 up
in_ns ip link set udc1 up
in_ns ip route add default dev udc0
in_ns nft add table inet poor_link
in_ns nft add chain inet poor_link in '{ type filter hook input priority 0; }'
in_ns nft add rule inet poor_link in meta l4proto udp numgen random mod 100 '<' 2 drop
in_ns nft add rule inet poor_link in meta l4proto udp limit rate over 250 kbytes/second burst 32 kbytes drop
echo "link: UDP with 2 % loss, held to 2 Mbit/s:"
in_ns bash -c 'source scripts/hosts.sh; trap stop_hosts EXIT; start_server "$BIN/release/udc-server" >/dev/null
  "$BIN/release/udc-page-remote-bench" --link "$1"' _ "$seconds"
