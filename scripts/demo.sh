#!/usr/bin/env bash
# The main job on its embedded defaults. Until the hub lands this builds the
# project and prints the binaries' help.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CN_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/install-deps.sh
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
./build/hub/connect-hub --help
./build/agent/connect --help
