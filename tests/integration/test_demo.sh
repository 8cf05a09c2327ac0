#!/usr/bin/env bash
# User story: a new user runs the README's main command and reaches the demo
# service through the tunnel it prints.
set -euo pipefail
dir=$(mktemp -d /tmp/cn-demo.XXXXXX)
# The secrets grep (tests/integration/secrets_grep.py, as lib.sh does) before
# the directory goes.
cleanup() {
  local rc=$?
  python3 "$(dirname "$0")/secrets_grep.py" check "$dir" test_demo "$CN_BUILD_DIR/tests/secrets" || rc=1
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT
CN_DEMO_DIR=$dir CN_DEMO_CHECK=1 CN_BUILD_DIR=${CN_BUILD_DIR:?} \
    timeout 120 bash "$(dirname "$0")/../../scripts/demo.sh"
