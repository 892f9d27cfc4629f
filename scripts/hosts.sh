#!/usr/bin/env bash
# Sourced by test.sh and bench.sh: build and start udc-server or `wrangler dev` on a free
# loopback port, in test mode, with fresh state. Each start sets UDC_BASE_URL; stop_hosts
# (run on exit) ends every host started.

export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
UDC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UDC_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/udc-run.XXXXXX")
export UDC_RUN_DIR   # the tests keep what a person should look at here (screenshots)
UDC_HOST_PIDS=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_healthy() { # url log
  for _ in $(seq 1 240); do
    if curl -fs "$1/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "hosts: $1 did not become healthy; its log:" >&2
  cat "$2" >&2
  return 1
}

# Waits for them to be gone: a restart on the same storage must not meet the old process
# still holding its files and ports.
stop_hosts() {
  local pid
  for pid in "${UDC_HOST_PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${UDC_HOST_PIDS[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  UDC_HOST_PIDS=()
}

build_worker() { "$UDC_ROOT/scripts/build-worker.sh"; }

# Where the Windows agent runs here: Wine (Debian's 8.0, 64-bit only) in a prefix of the run's own,
# on an Xvfb display of its own — Wine's desktop, and so its clipboard bridge, takes the display of
# the process that starts it, so every Wine process gets this one (DISPLAY) — with the one DLL
# Wine 8.0 lacks and the tests' window (UDC_WINE_CANVAS) built from scripts/wine/. stop_wine
# takes it all away (the prefix is hundreds of MB).
start_wine() {
  local display
  export WINEPREFIX="$UDC_RUN_DIR/wine" WINEDEBUG=-all
  display=$(( 900 + RANDOM % 90 ))
  while [ -e "/tmp/.X11-unix/X$display" ]; do display=$(( 900 + RANDOM % 90 )); done
  Xvfb ":$display" -screen 0 1280x720x24 -noreset -nolisten tcp >/dev/null 2>&1 &
  UDC_WINE_XVFB=$!
  for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
  if ! kill -0 "$UDC_WINE_XVFB" 2>/dev/null || [ ! -e "/tmp/.X11-unix/X$display" ]; then
    echo "hosts: Xvfb :$display for Wine did not start"; return 1
  fi
  export DISPLAY=":$display"
  # Its user's Downloads, Documents... link to the home it is set up with: one of the run's own.
  mkdir -p "$UDC_RUN_DIR/wine-home"
  # Wine's server and desktop started here, to last until stop_wine: started by a test's first
  # Wine process they would outlive it holding its output. The desktop lasts while some Wine
  # program runs: cmd, reading a pipe nobody writes to.
  mkdir -p "$WINEPREFIX"
  /usr/lib/wine/wineserver -p
  HOME="$UDC_RUN_DIR/wine-home" /usr/lib/wine/wine64 wineboot --init
  mkfifo "$UDC_RUN_DIR/wine-idle"
  /usr/lib/wine/wine64 cmd <"$UDC_RUN_DIR/wine-idle" >/dev/null 2>&1 &
  exec {UDC_WINE_IDLE}>"$UDC_RUN_DIR/wine-idle"
  x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    "$UDC_ROOT/scripts/wine/bcryptprimitives.c" "$UDC_ROOT/scripts/wine/bcryptprimitives.def" -ladvapi32
  x86_64-w64-mingw32-gcc -O2 -o "$UDC_RUN_DIR/canvas.exe" "$UDC_ROOT/scripts/wine/canvas.c" -lgdi32
  export UDC_WINE_CANVAS="$UDC_RUN_DIR/canvas.exe"
}

stop_wine() {
  /usr/lib/wine/wineserver -k 2>/dev/null || true
  if [ -n "${UDC_WINE_IDLE:-}" ]; then exec {UDC_WINE_IDLE}>&-; fi
  if [ -n "${UDC_WINE_XVFB:-}" ]; then kill "$UDC_WINE_XVFB" 2>/dev/null || true; fi
  rm -rf "$UDC_RUN_DIR/wine" "$UDC_RUN_DIR/wine-home" "$UDC_RUN_DIR/wine-idle"
}

# wrangler.toml without [build]: wrangler 4.86 would otherwise build a second time at start.
dev_config() {
  awk '/^\[build\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$UDC_ROOT/wrangler.toml" >"$UDC_ROOT/.wrangler-dev.toml"
  echo "$UDC_ROOT/.wrangler-dev.toml"
}

# A TURN relay (Debian's coturn) on loopback, for remote control's relay path: udc-server hands
# devices short-lived credentials for it made with the secret they share (UDC_TURN_URLS and
# UDC_TURN_SECRET, exported for the host started next). Relaying between loopback addresses is
# what coturn refuses by default and what a one-machine test needs.
start_turn() {
  local port log
  port=$(free_port)
  log="$UDC_RUN_DIR/turn-$port.log"
  UDC_TURN_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  export UDC_TURN_URLS="turn:127.0.0.1:$port?transport=udp" UDC_TURN_SECRET
  setsid turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$port" \
    --use-auth-secret --static-auth-secret="$UDC_TURN_SECRET" --realm=udc.test \
    --no-tls --no-dtls --no-cli --allow-loopback-peers --no-software-attribute \
    --pidfile="$UDC_RUN_DIR/turn-$port.pid" --log-file=stdout --simple-log --verbose >"$log" 2>&1 &
  UDC_HOST_PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q "Total General servers" "$log" && return 0
    sleep 0.1
  done
  echo "hosts: the TURN relay did not start; its log ($log):"; tail -20 "$log"; return 1
}

start_server() { # binary
  start_turn
  run_server "$1"
}

# udc-server alone, handing out the TURN relay UDC_TURN_URLS names (start_server starts one).
run_server() { # binary
  local bin=$1 port log
  port=$(free_port)
  log="$UDC_RUN_DIR/udc-server.log"
  UDC_TEST_MODE=1 setsid "$bin" --listen "127.0.0.1:$port" --data-dir "$UDC_RUN_DIR/server-data" >>"$log" 2>&1 &
  UDC_HOST_PIDS+=($!)
  export UDC_BASE_URL="http://127.0.0.1:$port" UDC_TEST_STATE_DIR="$UDC_RUN_DIR/server-data"
  wait_healthy "$UDC_BASE_URL" "$log"
  echo "hosts: udc-server on $UDC_BASE_URL"
}

# A local S3-compatible store that checks signatures and expiry (SeaweedFS), for hosts
# without an embedded one. Its data lives in $1, so a restart on the same dir keeps the objects.
start_seaweed() { # data_dir; sets UDC_S3_PORT
  local dir=$1 log
  mkdir -p "$dir"
  UDC_S3_PORT=$(free_port)
  log="$UDC_RUN_DIR/seaweed-$UDC_S3_PORT.log"
  # Without credentials SeaweedFS accepts anything: they are what makes it check signatures.
  AWS_ACCESS_KEY_ID=$(dev_var UDC_S3_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(dev_var UDC_S3_SECRET_ACCESS_KEY) \
    setsid weed mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket=udc-files -webdav=false \
    -admin.ui=false -s3.port="$UDC_S3_PORT" -s3.port.iceberg=0 -s3.port.lance=0 >"$log" 2>&1 &
  UDC_HOST_PIDS+=($!)
  local up=false vol id
  for _ in $(seq 1 120); do
    # Anonymous requests are refused (403) once it is up.
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$UDC_S3_PORT/udc-files")" = 403 ]; then
      up=true
      break
    fi
    sleep 0.5
  done
  # Started again on its data, its volume server tells the master (weed mini's, on 9333) about
  # the volumes it holds a moment after the gateway answers; a read before that fails with 500
  # ("volume id 1 not found"). Wait until each volume on disk can be found.
  for vol in "$dir"/*.dat; do
    [ -e "$vol" ] && $up || continue
    id=$(basename "$vol" .dat)
    id=${id##*_}   # collection_id.dat, or id.dat
    up=false
    for _ in $(seq 1 120); do
      if curl -fs "http://127.0.0.1:9333/dir/lookup?volumeId=$id" | grep -q '"locations"'; then
        up=true
        break
      fi
      sleep 0.25
    done
  done
  $up && return 0
  echo "hosts: SeaweedFS did not start (or does not find its volumes); its log:" >&2
  cat "$log" >&2
  return 1
}

dev_var() { sed -n "s/^$1=//p" "$UDC_ROOT/.dev.vars"; }

# Secrets for the test deployment only, generated once, never committed (.gitignore).
ensure_dev_vars() {
  if ! grep -qs '^UDC_S3_SECRET_ACCESS_KEY=' "$UDC_ROOT/.dev.vars"; then
    for k in UDC_JWT_PRIVATE_KEY UDC_AUTH_PEPPER UDC_DECOY_KEY; do
      echo "$k=$(head -c 32 /dev/urandom | base64)"
    done >"$UDC_ROOT/.dev.vars"
    echo "UDC_S3_ACCESS_KEY_ID=udc-test" >>"$UDC_ROOT/.dev.vars"
    echo "UDC_S3_SECRET_ACCESS_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$UDC_ROOT/.dev.vars"
  fi
}

# persist_dir is kept by the caller to restart on the same state (D1, Durable Objects and the
# object store's files); fresh when new.
start_wrangler() { # persist_dir
  local persist=$1 port log config
  ensure_dev_vars
  start_seaweed "$persist-s3"
  port=$(free_port)
  log="$UDC_RUN_DIR/wrangler-$port.log"
  config=$(dev_config)
  cd "$UDC_ROOT"
  npx wrangler d1 migrations apply DB --local --persist-to "$persist" -c "$config" >"$log" 2>&1
  setsid npx wrangler dev -c "$config" --local --ip 127.0.0.1 --port "$port" \
    --persist-to "$persist" --var UDC_TEST_MODE:1 \
    --var "UDC_S3_ENDPOINT:http://127.0.0.1:$UDC_S3_PORT" --var UDC_S3_BUCKET:udc-files \
    --show-interactive-dev-session=false >>"$log" 2>&1 &
  UDC_HOST_PIDS+=($!)
  export UDC_BASE_URL="http://127.0.0.1:$port" UDC_TEST_STATE_DIR="$persist"
  wait_healthy "$UDC_BASE_URL" "$log"
  echo "hosts: wrangler dev on $UDC_BASE_URL (objects in SeaweedFS on $UDC_S3_PORT)"
}

# The Spin components (the API's and the web app's) under udc-spin-host (the Spin CLI cannot be
# installed here): the same
# secrets as wrangler dev's, SeaweedFS for files, state in $1 so a restart keeps it. The first
# requests arrive together, as they would at a fresh deployment: the component's migrations
# must hold under that.
start_spin() { # state_dir
  local state=$1 port log vars=() k
  ensure_dev_vars
  start_seaweed "$state-s3"
  port=$(free_port)
  log="$UDC_RUN_DIR/spin-$port.log"
  for k in UDC_JWT_PRIVATE_KEY UDC_AUTH_PEPPER UDC_DECOY_KEY UDC_S3_ACCESS_KEY_ID UDC_S3_SECRET_ACCESS_KEY; do
    vars+=(--variable "$(tr '[:upper:]' '[:lower:]' <<<"$k")=$(dev_var "$k")")
  done
  setsid "$BIN/debug/udc-spin-host" --manifest "$UDC_ROOT/spin.toml" \
    --component "udc=$BIN/spin-components/udc_spin.wasm" \
    --component "web=$BIN/spin-components/udc_spin_web.wasm" --listen "127.0.0.1:$port" \
    --data-dir "$state" "${vars[@]}" --variable udc_test_mode=1 \
    --variable "udc_s3_endpoint=http://127.0.0.1:$UDC_S3_PORT" --variable udc_s3_bucket=udc-files \
    >"$log" 2>&1 &
  UDC_HOST_PIDS+=($!)
  export UDC_BASE_URL="http://127.0.0.1:$port" UDC_TEST_STATE_DIR="$state"
  # Compiling the components takes a while in a debug build; then 16 first requests at once.
  for _ in $(seq 1 240); do grep -q "serving" "$log" && break; sleep 0.5; done
  local codes
  codes=$(seq 1 16 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$UDC_BASE_URL/health" | sort | uniq -c)
  if [ "$(tr -s ' ' <<<"$codes" | sed 's/^ //')" != "16 200" ]; then
    echo "hosts: concurrent first requests to the Spin component failed: $codes; its log:" >&2
    cat "$log" >&2
    return 1
  fi
  echo "hosts: Spin component (udc-spin-host) on $UDC_BASE_URL (objects in SeaweedFS on $UDC_S3_PORT)"
}
