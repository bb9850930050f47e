#!/usr/bin/env bash
# The tutorial with the official Node SDKs (azure-iothub, azure-iot-device-mqtt) against the
# emulator binary. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

command -v node >/dev/null || fail "node is not installed: install Node.js 18+ (apt-get install nodejs npm)"
(cd "$COMPAT_DIR/node" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed: cannot install the official Node SDKs"

start_emulator myDeviceId
NODE_EXTRA_CA_CERTS="$CA_FILE" node "$COMPAT_DIR/node/tutorial.js" "$READY_FILE"
