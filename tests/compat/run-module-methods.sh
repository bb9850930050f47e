#!/usr/bin/env bash
# Direct methods on module identities with the official SDKs against the emulator binary on the
# standard ports: Python invoke_device_module_method answered by IoTHubModuleClient, Node
# Client.invokeDeviceMethod(deviceId, moduleId, ...) answered by ModuleClient.onMethod. Fails
# loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
node_with_sdks
start_emulator pyMethodsModuleHost nodeMethodsModuleHost
run_python python_methods.py module
run_node methods.js module
