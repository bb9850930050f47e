#!/usr/bin/env bash
# The bulk registry (POST /devices) with the official Node SDK against the emulator binary on the
# standard ports: Registry.addDevices, updateDevices and removeDevices, each with a per-device
# error. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

node_with_sdks
start_emulator
run_node modules.js bulk
