#!/usr/bin/env bash
# Installs dependencies, checks the format, builds with ASan+UBSan and -Werror,
# runs the static analyser (clang-tidy, scripts/tidy.sh), builds the libFuzzer
# harnesses and runs each briefly plus a replay of the committed corpus, then
# runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc)

if [ "${CN_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/install-deps.sh
fi

echo "== format (clang-format, the project's .clang-format)"
find sdk hub agent plugins tests bench examples -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run --Werror

echo "== build (ASan+UBSan, -Werror)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCN_ASAN=ON -DCN_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== static analysis (clang-tidy, .clang-tidy; bounded in time)"
CN_TIDY_JOBS=$jobs bash scripts/tidy.sh build-asan

echo "== fuzz harnesses (clang + libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCN_FUZZ=ON -DCN_TESTS=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target all
bash tests/fuzz/run.sh build-fuzz "${CN_FUZZ_SECONDS:-20}"

echo "== tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -j"$jobs" --timeout 900
