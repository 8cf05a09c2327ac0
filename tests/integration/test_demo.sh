#!/usr/bin/env bash
# User story: a new user runs the README's main command and reaches the demo
# service through the tunnel it prints.
set -euo pipefail
dir=$(mktemp -d /tmp/cn-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
CN_DEMO_DIR=$dir CN_DEMO_CHECK=1 CN_BUILD_DIR=${CN_BUILD_DIR:?} \
    timeout 120 bash "$(dirname "$0")/../../scripts/demo.sh"
