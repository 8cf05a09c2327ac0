#!/usr/bin/env bash
# The secrets grep must be able to fail: a token planted in a log (even
# without its prefix), a generated password planted in a database, and a
# token in a core file are each found; a clean directory passes; a summary
# of a run that collected no secret fails.
set -euo pipefail
PY=$(command -v /usr/bin/python3 || command -v python3)
GREP=$(cd "$(dirname "$0")" && pwd)/secrets_grep.py
dir=$(mktemp -d /tmp/cn-secrets-selftest.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
w=$dir/work reports=$dir/reports
mkdir -p "$w"
token=cnt_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
password=$(head -c 12 /dev/urandom | base64 | tr -d '=+/')
printf '{"hub":"http://127.0.0.1:1","token":"%s"}\n' "$token" >"$w/agent.json"
printf '{"id":"x","httpPassword":"%s"}\n' "$password" >"$w/expose.out"
echo "info agent connected" >"$w/hub.log"
printf 'SQLite format 3\0...hashes only...' >"$w/hub.db"

"$PY" "$GREP" check "$w" clean "$reports" || fail "a clean directory fails the grep"

check_leak() { # FILE CONTENT WHAT
    cp "$w/$1" "$dir/saved"
    printf '%s' "$2" >>"$w/$1"
    if out=$("$PY" "$GREP" check "$w" planted "$reports"); then
        fail "$3 was not found: $out"
    fi
    grep -q "SECRET LEAK: $1 " <<<"$out" || fail "$3: the hit does not name $1: $out"
    echo "found: $3"
    mv "$dir/saved" "$w/$1"
}
check_leak hub.log "authorization: Bearer $token" "a token in a log"
check_leak hub.log "token body ${token#cnt_}" "a token without its prefix in a log"
check_leak hub.db "$password" "a generated password in a database"
printf 'ELF core' >"$w/core"
check_leak core "...$token..." "a token in a core file"
rm "$w/core"

# The run's summary sums the reports: the planted runs count as hits.
if "$PY" "$GREP" summary "$reports" >"$dir/summary"; then
    fail "the summary of a run with leaks passed: $(cat "$dir/summary")"
fi
grep -q "tests with leaks: planted" "$dir/summary" || fail "summary: $(cat "$dir/summary")"
mkdir "$dir/empty"
if "$PY" "$GREP" summary "$dir/empty" >"$dir/summary"; then
    fail "a summary that checked no secret passed"
fi
grep -q "checked nothing" "$dir/summary" || fail "summary: $(cat "$dir/summary")"
echo "PASS secrets_selftest"
