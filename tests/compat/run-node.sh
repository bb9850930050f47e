#!/usr/bin/env bash
# The tutorial with the official Node SDKs (azure-iothub, azure-iot-device-mqtt) against the
# emulator binary. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

node_with_sdks

start_emulator myDeviceId
NODE_EXTRA_CA_CERTS="$CA_FILE" node "$COMPAT_DIR/node/tutorial.js" "$READY_FILE"
