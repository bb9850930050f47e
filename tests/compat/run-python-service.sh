#!/usr/bin/env bash
# The official Python service SDK (azure-iot-hub 2.7.0 + six) against the emulator binary on the
# standard ports. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
start_emulator
REQUESTS_CA_BUNDLE="$CA_FILE" "$PYTHON" "$COMPAT_DIR/python_service.py" "$READY_FILE"
