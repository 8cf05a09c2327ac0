#!/usr/bin/env bash
# Static analysis: clang-tidy with the checks chosen in .clang-tidy (argued there)
# over every C source of sdk/, hub/, agent/ and plugins/, with the flags of
# BUILD_DIR/compile_commands.json. Any finding fails; a justified exception is a
# NOLINT(check) with its reason at the line. Bounded: CN_TIDY_JOBS files at a
# time (default 2), CN_TIDY_FILE_SECONDS per file (default 300), CN_TIDY_SECONDS
# in all (default 900).
# usage: tidy.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: tidy.sh BUILD_DIR}
[ -f "$build/compile_commands.json" ] || { echo "tidy: $build/compile_commands.json absent" >&2; exit 1; }
tidy=$(command -v clang-tidy-14 || command -v clang-tidy) || { echo "tidy: clang-tidy not installed" >&2; exit 1; }
jobs=${CN_TIDY_JOBS:-2}
per_file=${CN_TIDY_FILE_SECONDS:-300}
total=${CN_TIDY_SECONDS:-900}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The configuration must be live: a known defect has to be reported, or a
# broken .clang-tidy (no check enabled) would pass everything, empty.
cat >"$out/canary.c" <<'C'
int canary(int *p);
int canary(int *p)
{
    if (p)
        return 0;
    return *p;
}
C
if "$tidy" --quiet --config-file=.clang-tidy "$out/canary.c" -- -std=c11 >"$out/canary.log" 2>&1 ||
    ! grep -q 'clang-analyzer-core.NullDereference' "$out/canary.log"; then
    cat "$out/canary.log" >&2
    echo "tidy: FAIL: .clang-tidy does not report a NULL dereference: the configuration is broken" >&2
    exit 1
fi

find sdk hub agent plugins -name '*.c' -print0 | sort -z >"$out/files"
n=$(tr -cd '\0' <"$out/files" | wc -c)
[ "$n" -gt 0 ] || { echo "tidy: FAIL: no source file found" >&2; exit 1; }
echo "-- clang-tidy: $n files, $jobs at a time"
start=$(date +%s)
rc=0
timeout "$total" xargs -0 -P"$jobs" -n1 timeout "$per_file" "$tidy" -p "$build" --quiet \
    <"$out/files" >"$out/tidy.log" 2>&1 || rc=$?
grep -E '(warning|error):' "$out/tidy.log" | sort -u >"$out/findings" || true
if [ -s "$out/findings" ]; then
    cat "$out/findings" >&2
    echo "tidy: FAIL: $(wc -l <"$out/findings") findings (fix them, or NOLINT(check) with a reason)" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    tail -40 "$out/tidy.log" >&2
    echo "tidy: FAIL: clang-tidy exited with status $rc (124: over the time bound)" >&2
    exit 1
fi
echo "-- clang-tidy: no finding in $n files ($(($(date +%s) - start)) s)"
