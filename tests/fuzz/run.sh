#!/usr/bin/env bash
# Runs every fuzz harness: a replay of its committed corpus, then a short bounded
# run from that corpus. usage: run.sh BUILD_DIR SECONDS
# Fails unless it finds every harness CMake declared (BUILD_DIR/tests/
# fuzz_harnesses.txt, written by a -DCN_FUZZ=ON configure): a build that
# lost its harnesses must not pass by running none.
set -euo pipefail
build=$(cd "$1" && pwd) # absolute: the fuzz run below changes directory
secs=${2:-20}
# Under CI the search is reproducible: a fixed seed walks the same inputs on
# every run, so a red CI names a bug a developer can replay, never a lucky
# draw; the same seed run longer here (CN_FUZZ_SEED=1, more seconds) covers
# what CI will try. Elsewhere each run explores from a fresh seed.
if [ -n "${CN_FUZZ_SEED:-}" ]; then seed=$CN_FUZZ_SEED
elif [ -n "${CI:-}" ]; then seed=1
else seed=0; fi # 0: libFuzzer picks one
echo "-- fuzz seed: $seed (0 = random)"
here=$(cd "$(dirname "$0")" && pwd)
artifacts="$here/artifacts" # crash/leak/timeout inputs land here (git-ignored)
list="$build/tests/fuzz_harnesses.txt"
[ -f "$list" ] || { echo "run.sh: FAIL: $list absent: not a -DCN_FUZZ=ON build" >&2; exit 1; }
declared=() found=()
while read -r name; do
  [ -n "$name" ] || continue
  declared+=("$name")
  if [ -x "$build/tests/$name" ]; then found+=("$name"); else echo "run.sh: $name declared, not built" >&2; fi
done <"$list"
echo "-- fuzz harnesses: ${#found[@]} found of ${#declared[@]} declared"
if [ ${#declared[@]} -eq 0 ] || [ ${#found[@]} -lt ${#declared[@]} ]; then
  echo "run.sh: FAIL: found ${#found[@]} harnesses, CMake declares ${#declared[@]}" >&2
  exit 1
fi
mkdir -p "$artifacts"
for name in "${found[@]}"; do
  bin="$build/tests/$name"
  corpus="$here/corpus/${name#fuzz_}"
  mkdir -p "$corpus"
  work=$(mktemp -d)
  echo "-- $name: replay $(ls "$corpus" | wc -l) corpus files"
  "$bin" -runs=0 -artifact_prefix="$artifacts/$name-" "$corpus" >"$work/replay.log" 2>&1 || { cat "$work/replay.log"; exit 1; }
  echo "-- $name: fuzz ${secs}s"
  (cd "$work" && "$bin" -seed="$seed" -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 \
     -artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$work" "$corpus" >"$work/fuzz.log" 2>&1) \
    || { tail -60 "$work/fuzz.log"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work/fuzz.log" || true
  rm -rf "$work"
done
