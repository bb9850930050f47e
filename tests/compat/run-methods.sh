#!/usr/bin/env bash
# Direct methods on devices with the official SDKs against the emulator binary on the standard
# ports: Python IoTHubRegistryManager.invoke_device_method answered by azure-iot-device's
# on_method_request_received, Node Client.invokeDeviceMethod answered by onDeviceMethod, each
# over MQTT and MQTT over WebSockets; a 504 timeout and a 404 DeviceNotOnline. Fails loudly if
# the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
node_with_sdks
start_emulator pyMethodsMqtt pyMethodsWs pyMethodsOffline nodeMethodsMqtt nodeMethodsWs nodeMethodsOffline
run_python python_methods.py device
run_node methods.js device
