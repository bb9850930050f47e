#!/usr/bin/env bash
# The whole official-SDK compatibility suite, one runner after another (they share ports 443/8883).
# The pinned SDKs are installed once here; a failed install fails the suite (never skipped).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
source "$dir/common.sh"
python_with_sdks
node_with_sdks
export COMPAT_SDKS_INSTALLED=1

# One runner per feature; its scripts name the flow that failed.
runners=(
  run-python-service.sh
  run-python-device.sh
  run-python-tutorial.sh
  run-node.sh
  run-modules.sh
  run-edge.sh
  run-bulk.sh
  run-methods.sh
  run-module-methods.sh
  run-c2d.sh
)
for runner in "${runners[@]}"; do
  echo "== compat: $runner"
  started=$SECONDS
  bash "$dir/$runner" || fail "runner $runner failed"
  echo "== compat: $runner passed in $((SECONDS - started)) s"
done
echo "== compat: all suites passed"
