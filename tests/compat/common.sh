# Shared by the compatibility runners: build the emulator binary and run it on the standard
# ports (443 HTTPS + WebSockets, 8883 MQTT), which the official SDKs insist on. Only these
# dedicated compat steps use fixed ports; `cargo test` never does.
# Source it, then: start_emulator DEVICE_ID...  (sets READY_FILE, CA_FILE; stops it on exit)

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$COMPAT_DIR/../.." && pwd)"

fail() { echo "compat: $*" >&2; exit 1; }

start_emulator() {
  (cd "$REPO_DIR" && cargo build --locked -q -p iothub-emulator) || fail "cannot build the emulator"
  local bin="${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/iothub-emulator"
  EMULATOR_DIR="$(mktemp -d)"
  READY_FILE="$EMULATOR_DIR/ready.json"
  local args=(--data-dir "$EMULATOR_DIR/data" --in-memory --https-port 443 --mqtt-port 8883 --ready-file "$READY_FILE")
  for device in "$@"; do args+=(--device "$device"); done
  "$bin" "${args[@]}" >"$EMULATOR_DIR/stdout" 2>"$EMULATOR_DIR/stderr" &
  EMULATOR_PID=$!
  trap stop_emulator EXIT
  for _ in $(seq 1 100); do
    [ -s "$READY_FILE" ] && break
    kill -0 "$EMULATOR_PID" 2>/dev/null || { cat "$EMULATOR_DIR/stderr" >&2; fail "the emulator exited before it was ready (are ports 443/8883 free?)"; }
    sleep 0.1
  done
  [ -s "$READY_FILE" ] || fail "the emulator did not write its ready file within 10 s"
  CA_FILE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca_file"])' "$READY_FILE")"
  export READY_FILE CA_FILE
}

stop_emulator() {
  if [ -n "${EMULATOR_PID:-}" ] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill -TERM "$EMULATOR_PID" 2>/dev/null
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  [ -n "${EMULATOR_DIR:-}" ] && rm -rf "$EMULATOR_DIR"
}

# One venv for every Python suite; pinned official SDKs. Sets PYTHON. Never skips: a failed
# install is a failed suite.
# run-all.sh installs once for every runner and sets COMPAT_SDKS_INSTALLED=1 (an install that
# failed there already failed the suite).
python_with_sdks() {
  local venv="$COMPAT_DIR/.venv"
  PYTHON="$venv/bin/python"
  [ "${COMPAT_SDKS_INSTALLED:-}" = 1 ] && return 0
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || fail "cannot create a Python venv in $venv (install python3-venv)"
  fi
  "$venv/bin/pip" install --disable-pip-version-check -q 'azure-iot-hub==2.7.0' 'azure-iot-device==2.14.0' six requests \
    || fail "pip install of the official Python SDKs (azure-iot-hub 2.7.0, azure-iot-device 2.14.0, six) failed"
  PYTHON="$venv/bin/python"
}

# The pinned official Node SDKs (tests/compat/node/package-lock.json). Never skips: a failed
# install is a failed suite.
node_with_sdks() {
  [ "${COMPAT_SDKS_INSTALLED:-}" = 1 ] && return 0
  command -v node >/dev/null || fail "node is not installed: install Node.js 18+ (apt-get install nodejs npm)"
  (cd "$COMPAT_DIR/node" && npm ci --no-audit --no-fund --loglevel=error) \
    || fail "npm ci failed: cannot install the official Node SDKs (tests/compat/node/package-lock.json)"
}

# run_python SCRIPT ARGS... / run_node SCRIPT ARGS...: one SDK script against the running
# emulator; a failure names the script (the script itself names the flow that failed).
run_python() {
  local script="$1"; shift
  REQUESTS_CA_BUNDLE="$CA_FILE" "$PYTHON" "$COMPAT_DIR/$script" "$READY_FILE" "$@" \
    || fail "$script $* failed (see 'compat flow FAILED' above)"
}

run_node() {
  local script="$1"; shift
  NODE_EXTRA_CA_CERTS="$CA_FILE" node "$COMPAT_DIR/node/$script" "$READY_FILE" "$@" \
    || fail "node/$script $* failed (see 'compat flow FAILED' above)"
}
