#!/usr/bin/env bash
# Module identities with the official SDKs against the emulator binary on the standard ports:
# create/get/list/delete through both registries (Python IoTHubRegistryManager, Node Registry),
# module twin get and patch, module clients (Python IoTHubModuleClient, Node ModuleClient)
# connecting with their connection strings, and `SELECT * FROM devices.modules`. Fails loudly if
# the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
node_with_sdks
start_emulator pyModulesHost nodeModulesHost
run_python python_modules.py modules
run_node modules.js modules
