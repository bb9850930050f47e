#!/usr/bin/env bash
# Cloud-to-device messages with the official device SDKs against the emulator binary on the
# standard ports: a message sent over REST (POST /devices/{id}/messages/deviceBound, properties in
# headers, as Azure IoT Explorer sends it) is received with its properties by Python's
# on_message_received and Node's client.on('message') + complete, over MQTT and WebSockets, and
# its feedback is read over REST. Fails loudly if the packages cannot be installed: never skips.
set -euo pipefail
source "$(dirname "$0")/common.sh"

python_with_sdks
node_with_sdks
start_emulator pyC2dMqtt pyC2dWs nodeC2dMqtt nodeC2dWs
run_python python_c2d.py
run_node c2d.js
