#!/usr/bin/env bash
# The official Python service SDK (azure-iot-hub 2.7.0 + six) against the emulator binary on the
# standard ports. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

VENV="$COMPAT_DIR/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || fail "cannot create a Python venv in $VENV (install python3-venv)"
fi
"$VENV/bin/pip" install --disable-pip-version-check -q 'azure-iot-hub==2.7.0' six \
  || fail "pip install azure-iot-hub==2.7.0 six failed: cannot run the Python service SDK checks"

start_emulator
REQUESTS_CA_BUNDLE="$CA_FILE" "$VENV/bin/python" "$COMPAT_DIR/python_service.py" "$READY_FILE"
