#!/usr/bin/env bash
# The whole tutorial with the official Python SDKs (azure-iot-hub as the back end,
# azure-iot-device as the device, over MQTT and WebSockets) against the emulator binary on the
# standard ports. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
start_emulator myDeviceId
REQUESTS_CA_BUNDLE="$CA_FILE" "$PYTHON" "$COMPAT_DIR/python_tutorial.py" "$READY_FILE"
