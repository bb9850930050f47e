#!/usr/bin/env bash
# The whole official-SDK compatibility suite, one runner after another (they share ports 443/8883).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
for runner in run-python-service.sh run-python-device.sh run-python-tutorial.sh run-node.sh; do
  echo "== compat: $runner"
  bash "$dir/$runner"
done
echo "== compat: all suites passed"
