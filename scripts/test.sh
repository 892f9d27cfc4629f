#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs (scripts/setup.sh),
# checks format and lints, builds every host (udc-server, the Worker, the Spin component),
# runs the unit tests, then the black-box conformance suite against udc-server and against
# `wrangler dev` (workerd with local D1, migrations applied fresh) and against the Spin component
# in udc-spin-host (without the tests that need a WebSocket: Spin devices poll). The desktop
# tests run agents on their own Xvfb displays; the web app's tests drive headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/hosts.sh
BIN="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo puts binaries
# One build from scratch gains nothing from incremental state, and it took gigabytes of disk.
export CARGO_INCREMENTAL=0
trap stop_hosts EXIT

step() { echo; echo "== $*"; }

step "web app: scripts/build-web.sh (udc-server and Spin embed it, wrangler serves it)"
scripts/build-web.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p udc-cloudflare --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p udc-spin -p udc-spin-web --target wasm32-wasip2 -- -D warnings
# The clients' shared crate must keep building for the browser.
cargo clippy -p udc-client --target wasm32-unknown-unknown -- -D warnings
# The agent must keep building for Windows (cross-built with mingw-w64: .cargo/config.toml).
cargo clippy -p udc-agent --target x86_64-pc-windows-gnu -- -D warnings

step "build: udc-server, udc-agent (for Linux and Windows), the Worker, the Spin components"
cargo build -p udc-server -p udc-agent -p udc-spin-host
cargo build -p udc-agent --target x86_64-pc-windows-gnu
cargo build -p udc-conformance --bin udc-fuzz-token --bin udc-d1-account
build_worker
scripts/build-spin.sh
scripts/check-spin-imports.sh "$BIN/spin-components/udc_spin.wasm"
scripts/check-spin-imports.sh "$BIN/spin-components/udc_spin_web.wasm"

step "unit tests"
# Every native crate's own tests (the conformance suite needs a running host: below).
cargo nextest run --workspace --exclude udc-conformance --exclude udc-cloudflare --exclude udc-spin \
  --exclude udc-spin-web
# The clients' shared crate as the browser runs it (wasm32 through wasm-bindgen, here in Node;
# build-web.sh built it) seals, opens and derives exactly as the native build does.
wasm-bindgen --target nodejs --out-dir "$UDC_RUN_DIR/udc-client-node" \
  "$BIN/wasm32-unknown-unknown/release/udc_client.wasm"
UDC_CLIENT_WASM_PKG="$UDC_RUN_DIR/udc-client-node" cargo nextest run -p udc-client --run-ignored only

export UDC_AGENT_BIN="$BIN/debug/udc-agent"
# Every token, ticket and key the suite's clients send or receive (conformance/src/secrets_seen.rs).
export UDC_SECRETS_SEEN="$UDC_RUN_DIR/secrets-seen.txt"

# No log a host wrote may hold one of them.
no_secrets_in_logs() {
  if [ ! -s "$UDC_SECRETS_SEEN" ]; then
    echo "no secret was recorded: the log check would pass for nothing"; exit 1
  fi
  sort -u -o "$UDC_SECRETS_SEEN" "$UDC_SECRETS_SEEN"
  if grep -F -l -f "$UDC_SECRETS_SEEN" "$UDC_RUN_DIR"/*.log; then
    echo "a token or key the suite used is in the logs above"; exit 1
  fi
  echo "no log holds any of the $(wc -l < "$UDC_SECRETS_SEEN") secrets the suite used"
}

# A host: the suite, then the restart check (a new process on the same storage).
# SUITE_FILTER (a nextest filter expression) leaves out what a host cannot do.
conformance_on() { # name, then the command that starts the host
  local name=$1 filter=()
  shift
  [ -n "${SUITE_FILTER:-}" ] && filter=(-E "$SUITE_FILTER")
  step "conformance: $name"
  export UDC_SCREENSHOT_DIR="$UDC_RUN_DIR/screenshots/$name"
  "$@"
  cargo nextest run -p udc-conformance --test api --test cli --test desktop --test web "${filter[@]}"
  export UDC_RESTART_STATE="$UDC_RUN_DIR/restart-$name.json"
  UDC_RESTART_PHASE=before cargo nextest run -p udc-conformance --test restart "${filter[@]}"
  stop_hosts
  "$@"
  UDC_RESTART_PHASE=after cargo nextest run -p udc-conformance --test restart "${filter[@]}"
  stop_hosts
  requests_logged "$name"
  no_secrets_in_logs
}

# The host wrote a JSON line per request (core's access_log), its route a template, with the
# caller's account and device where a device called, and the error code where one was answered.
requests_logged() { # host name
  local logs
  case $1 in
    udc-server) logs=("$UDC_RUN_DIR/udc-server.log") ;;
    wrangler-dev) logs=("$UDC_RUN_DIR"/wrangler-*.log) ;;
    spin) logs=("$UDC_RUN_DIR"/spin-*.log) ;;
  esac
  if ! grep -q '"route":"/devices/{id}"' "${logs[@]}"; then
    echo "$1 logged no request line (in ${logs[*]})"; exit 1
  fi
  # (No `grep -q` after a pipe: it stops reading, and pipefail counts the writer's SIGPIPE.)
  if ! grep -h '"route":"/devices/{id}"' "${logs[@]}" | grep '"account_id":"' | grep '"device_id":"' >/dev/null; then
    echo "$1 logged no device's request with its caller (in ${logs[*]})"; exit 1
  fi
  if ! grep -h '"request_id":' "${logs[@]}" | grep '"error":"session_revoked"' >/dev/null; then
    echo "$1 logged no request line with its error code (in ${logs[*]})"; exit 1
  fi
  # workers-rs logs a line for each SQL integer it would round to a JavaScript number (and a
  # line each cost a read ~1 ms): the Worker binds only exact ones (`js_number`).
  if grep -q -F 'outside the JavaScript safe-integer range' "${logs[@]}"; then
    echo "$1 bound an integer a JavaScript number does not hold exactly (in ${logs[*]})"; exit 1
  fi
  echo "$1 logged its requests: $(grep -c '"request_id":' "${logs[@]}" | awk -F: '{ n += $NF } END { print n }') lines"
}

conformance_on udc-server start_server "$BIN/debug/udc-server"
# Faults and backups: each test runs its own udc-server (killed mid-request, on a disk that
# fills, with a store it cannot reach, backed up and restored).
step "faults and backups: udc-server killed mid-request, on a full disk, without its store; backed up under writes and restored"
UDC_SERVER_BIN="$BIN/debug/udc-server" cargo nextest run -p udc-conformance --test faults --test operations

# The Windows agent under Wine (hosts.sh: start_wine), in a subshell: Wine's variables stay in it,
# and the prefix, Wine's server and its display go with it however it ends.
# One test at a time: they share one Wine desktop, its clipboard and its Run key.
step "Windows agent: udc-agent.exe under Wine beside the Linux agent, against udc-server"
(
  trap 'stop_hosts; stop_wine' EXIT
  start_wine
  start_server "$BIN/debug/udc-server"
  UDC_WINDOWS_AGENT_BIN="$BIN/x86_64-pc-windows-gnu/debug/udc-agent.exe" \
    cargo nextest run -p udc-conformance --test windows --test-threads 1
)

step "deploy: deploy/udc-server.service passes systemd's verifier (no warning either)"
mkdir -p "$UDC_RUN_DIR/unit"
sed "s|^ExecStart=/usr/local/bin/udc-server|ExecStart=$BIN/debug/udc-server|" \
  deploy/udc-server.service > "$UDC_RUN_DIR/unit/udc-server.service"
unit_said=$(systemd-analyze verify "$UDC_RUN_DIR/unit/udc-server.service" 2>&1) || true
if [ -n "$unit_said" ]; then echo "$unit_said"; exit 1; fi

# Requests generated from the contract (valid and invalid, deterministic, so every run sends the
# same ones) as a signed-in device: no answer may be a 5xx or outside the schema, and no request
# the schema accepts may be refused as bad input (schema/fuzz.toml). Signing out and
# removing a device are left out: the fuzzer would end its own session (it finds its device's id
# in GET /devices) and meet only 401 after.
step "fuzz: requests generated from schema/openapi.yaml against udc-server"
start_server "$BIN/debug/udc-server"
# Its own line, so a failure stops the run (inside an argument it would not: every answer 401).
fuzz_token=$("$BIN/debug/udc-fuzz-token")
schemathesis --config-file schema/fuzz.toml run schema/openapi.yaml --url "$UDC_BASE_URL" \
  -H "Authorization: Bearer $fuzz_token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,positive_data_acceptance \
  --exclude-name 'POST /auth/logout' --exclude-name 'DELETE /devices/{id}' \
  --max-examples 50 --generation-deterministic
stop_hosts
# workerd, like any front server, answers requests its HTTP layer refuses itself. The TURN relay
# is udc-server's stage's (hosts.sh starts it with udc-server; core makes the credentials alike
# on every host).
SUITE_FILTER='not (test(protocol_level_errors) | test(through_a_turn_relay))' \
  conformance_on "wrangler-dev" start_wrangler "$UDC_RUN_DIR/wrangler-state"
# An account made the way the Worker made them before each account had its own object (core
# over D1 itself, wrangler stopped), then wrangler dev on the same state: the account moves into
# its object on first use, with nothing lost.
step "upgrade: an account D1 held moves into its Durable Object (wrangler dev)"
upgrade_state="$UDC_RUN_DIR/upgrade-state"
ensure_dev_vars
npx wrangler d1 migrations apply DB --local --persist-to "$upgrade_state" -c "$(dev_config)" \
  >"$UDC_RUN_DIR/upgrade-migrations.log" 2>&1
upgrade_d1=$(ls "$upgrade_state"/v3/d1/miniflare-D1DatabaseObject/*.sqlite | grep -v metadata)
"$BIN/debug/udc-d1-account" "$upgrade_d1" "$UDC_ROOT/.dev.vars" "$UDC_RUN_DIR/upgrade.json"
start_wrangler "$upgrade_state"
UDC_UPGRADE_STATE="$UDC_RUN_DIR/upgrade.json" UDC_UPGRADE_D1="$upgrade_d1" \
  cargo nextest run -p udc-conformance --test upgrade
stop_hosts
# Spin holds no sockets: the tests that open one are left out — remote control (it needs an
# online target) and the desktop tests (every agent daemon there keeps a socket); devices poll
# GET /events there, which the rest (polling, files' events) exercise.
SUITE_FILTER='not (test(registration_and_presence) | test(a_reconnecting_device) | test(signals_reach)
  | test(removing_a_device_closes) | test(sockets_need) | test(malformed_frames) | test(watch_prints)
  | test(events_missed_before_a_restart) | test(ended_sessions_close) | test(tickets_open_one)
  | binary(desktop) | test(remote::) | test(protocol_level_errors)
  | test(sees_its_agents_live) | test(clipboard_goes) | test(signing_sessions_out_closes) | test(deleting_the_account_closes))' \
  conformance_on "spin" start_spin "$UDC_RUN_DIR/spin-state"

echo
echo "== done; the web app's screenshots, per host: $UDC_RUN_DIR/screenshots"
