#!/usr/bin/env bash
# The official Python device SDK (azure-iot-device 2.14.0), with the Python service SDK
# (azure-iot-hub 2.7.0 + six) sending desired patches, against the emulator binary on the
# standard ports 8883 (MQTT) and 443 (MQTT over WebSockets, REST). Fails loudly if the packages
# cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
start_emulator pyDeviceMqtt pyDeviceWs
REQUESTS_CA_BUNDLE="$CA_FILE" "$PYTHON" "$COMPAT_DIR/python_device.py" "$READY_FILE"
