#!/usr/bin/env bash
# Runs udc on this machine with its web app: builds the web app (installing what that needs:
# scripts/setup.sh --web), then udc-server, which embeds it. Arguments go to udc-server
# (--listen, --data-dir, --public-url).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-web.sh
exec cargo run --release -p udc-server -- "$@"
