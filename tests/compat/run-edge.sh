#!/usr/bin/env bash
# IoT Edge fields with the official SDKs against the emulator binary on the standard ports: an
# Edge device (capabilities.iotEdge) gets its deviceScope and a child device takes it, through
# both registries. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
node_with_sdks
start_emulator
run_python python_modules.py edge
run_node modules.js edge
