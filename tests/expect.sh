#!/usr/bin/env bash
# Runs a command that is expected to pass or to fail, and checks that it did,
# for the reason given: its output (stdout and stderr) must match PATTERN (an
# extended regular expression). A crash (killed by a signal, or an abort from
# a sanitizer, exit status 128 and above) is never the expected failure.
#
# usage: expect.sh pass|fail PATTERN COMMAND [ARG...]
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: expect.sh pass|fail PATTERN COMMAND [ARG...]" >&2; exit 2; }
want=$1 pattern=$2
shift 2
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -ge 128 ]; then
  echo "expect.sh: '$*' crashed (exit status $rc)" >&2
  exit 1
fi
case $want in
  pass) [ $rc -eq 0 ] || { echo "expect.sh: '$*' failed (exit status $rc), expected to pass" >&2; exit 1; } ;;
  fail) [ $rc -ne 0 ] || { echo "expect.sh: '$*' passed, expected to fail" >&2; exit 1; } ;;
  *) echo "expect.sh: pass or fail, not '$want'" >&2; exit 2 ;;
esac
grep -Eq -- "$pattern" <<<"$out" || { echo "expect.sh: output does not match /$pattern/" >&2; exit 1; }
echo "expect.sh: ${want}ed as expected (exit status $rc, output matches /$pattern/)"
