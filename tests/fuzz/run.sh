#!/usr/bin/env bash
# Runs every fuzz harness: a replay of its committed corpus, then a short bounded
# run from that corpus. usage: run.sh BUILD_DIR SECONDS
set -euo pipefail
build=$(cd "$1" && pwd) # absolute: the fuzz run below changes directory
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
artifacts="$here/artifacts" # crash/leak/timeout inputs land here (git-ignored)
mkdir -p "$artifacts"
shopt -s nullglob
for bin in "$build"/tests/fuzz_*; do
  name=$(basename "$bin")
  corpus="$here/corpus/${name#fuzz_}"
  mkdir -p "$corpus"
  work=$(mktemp -d)
  echo "-- $name: replay $(ls "$corpus" | wc -l) corpus files"
  "$bin" -runs=0 -artifact_prefix="$artifacts/$name-" "$corpus" >"$work/replay.log" 2>&1 || { cat "$work/replay.log"; exit 1; }
  echo "-- $name: fuzz ${secs}s"
  (cd "$work" && "$bin" -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 \
     -artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$work" "$corpus" >"$work/fuzz.log" 2>&1) \
    || { tail -60 "$work/fuzz.log"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work/fuzz.log" || true
  rm -rf "$work"
done
