#!/usr/bin/env bash
# User story: an operator runs `connect-hub init --db PATH --json` once on a
# fresh machine and gets a workspace id and the operator token, shown once; the
# database and its key files are private, the token is stored only as a
# keyed hash, and running init again changes nothing and says why.
set -euo pipefail

build=${CN_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build-asan}
hub=$build/hub/connect-hub
[ -x "$hub" ] || { echo "test_hub_init: $hub not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cn-hub-init-XXXXXX")
# The secrets grep (tests/integration/secrets_grep.py, as lib.sh does) before
# the directory goes.
cleanup() {
  local rc=$?
  python3 "$(dirname "$0")/secrets_grep.py" check "$tmp" test_hub_init "$build/tests/secrets" \
    "${token:-}" || rc=1
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
db=$tmp/hub.db
fails=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

quiet() { "$@" >/dev/null; }

# --help works everywhere and exits 0.
check "connect-hub --help" quiet "$hub" --help
check "connect-hub init --help" quiet "$hub" init --help
init_help=$("$hub" init --help) # not piped into grep -q (SIGPIPE under pipefail)
grep -q -- '--db PATH' <<<"$init_help" || { echo "FAIL init --help text"; fails=$((fails + 1)); }

# Usage errors: non-zero, exactly one line on stderr.
set +e
"$hub" init >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
check "init without --db exits 2" test "$rc" -eq 2
check "init without --db says one line" test "$(wc -l <"$tmp/err")" -eq 1
check "init without --db created nothing" test ! -e "$db"

# First run.
(umask 022 && "$hub" init --db "$db" --json >"$tmp/out" 2>"$tmp/err")
check "first init prints nothing on stderr" test ! -s "$tmp/err"
check "first init prints one JSON line" test "$(wc -l <"$tmp/out")" -eq 1
read -r ws token < <(python3 - "$tmp/out" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
assert set(doc) == {"workspaceId", "token"}, doc
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", doc["workspaceId"]), doc
assert re.fullmatch(r"cnt_[A-Za-z0-9_-]{43}", doc["token"]), doc
print(doc["workspaceId"], doc["token"])
PY
)
check "JSON has a UUID workspaceId and a cnt_ token" test -n "$token"
if command -v jq >/dev/null; then
  check "jq reads the same workspaceId" test "$(jq -r .workspaceId "$tmp/out")" = "$ws"
fi

# Files: database, secret key and key pair, all 0600 despite umask 022.
for f in "$db" "$db.secret" "$db.key"; do
  check "$(basename "$f") is mode 600" test "$(stat -c %a "$f")" = 600
done
check "secret key is 32 bytes" test "$(stat -c %s "$db.secret")" -eq 32
check "key file is 32 bytes" test "$(stat -c %s "$db.key")" -eq 32

# The token is nowhere in plaintext; the database holds its keyed BLAKE2b.
body=${token#cnt_}
plain=0
for f in "$db" "$db-wal" "$db-shm"; do
  if [ -e "$f" ] && grep -qaF -- "$body" "$f"; then plain=1; fi
done
check "token not stored in plaintext" test "$plain" -eq 0
if command -v sqlite3 >/dev/null; then
  check "one workspace named default" \
    test "$(sqlite3 "$db" "SELECT id || ' ' || name FROM workspaces")" = "$ws default"
  check "journal is WAL" test "$(sqlite3 "$db" 'PRAGMA journal_mode')" = wal
  check "schema is versioned" test "$(sqlite3 "$db" 'PRAGMA user_version')" -ge 1
  stored=$(sqlite3 "$db" "SELECT lower(hex(token_hash)) FROM api_tokens WHERE scope = 'operator'")
  expected=$(python3 - "$db.secret" "$token" <<'PY'
import hashlib, sys
key = open(sys.argv[1], "rb").read()
print(hashlib.blake2b(sys.argv[2].encode(), key=key, digest_size=32).hexdigest())
PY
)
  check "stored hash is BLAKE2b keyed with the secret file" test "$stored" = "$expected"
  check "token column is not the token" \
    test "$(sqlite3 "$db" "SELECT count(*) FROM api_tokens WHERE CAST(token_hash AS TEXT) LIKE '%$body%'")" -eq 0
fi

# A second init fails cleanly and changes nothing.
sum_before=$(sha256sum "$db" "$db.secret" "$db.key" | awk '{print $1}')
set +e
"$hub" init --db "$db" --json >"$tmp/out2" 2>"$tmp/err2"; rc=$?
set -e
sum_after=$(sha256sum "$db" "$db.secret" "$db.key" | awk '{print $1}')
check "second init exits non-zero" test "$rc" -ne 0
check "second init prints no token" test ! -s "$tmp/out2"
check "second init says one line" test "$(wc -l <"$tmp/err2")" -eq 1
check "second init says why" grep -q "already initialised" "$tmp/err2"
check "second init changed no file" test "$sum_before" = "$sum_after"

# A secret file readable by others is refused.
chmod 644 "$db.secret"
set +e
"$hub" init --db "$db" >/dev/null 2>"$tmp/err3"; rc=$?
set -e
check "group/other-readable secret refused" test "$rc" -ne 0
check "refusal names chmod" grep -q "chmod 600" "$tmp/err3"
chmod 600 "$db.secret"

# Human output: the token appears exactly once.
"$hub" init --db "$tmp/text.db" >"$tmp/text" 2>&1
check "text output shows one token" test "$(grep -o 'cnt_[A-Za-z0-9_-]*' "$tmp/text" | wc -l)" -eq 1
check "text output warns it is shown once" grep -qi "shown only this once" "$tmp/text"

if [ "$fails" -ne 0 ]; then
  echo "test_hub_init: $fails check(s) failed" >&2
  exit 1
fi
echo "test_hub_init: all checks passed"
