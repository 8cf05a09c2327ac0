#!/usr/bin/env bash
# User story: a reader of docs/api.md finds every endpoint the hub's OpenAPI
# document describes, and no other: the headings' "METHOD /path" name
# exactly the document's operations, both ways, and a heading's
# "[?a=..&b=..]" exactly its query arguments (openapi_tool.py apimd). The
# check is seen to fail on a page that lost a heading, gained one, or shows
# other query arguments. No hub is needed.
set -euo pipefail
SRC=${CN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TOOL=$SRC/tests/integration/openapi_tool.py
SPEC=$SRC/docs/openapi.json
MD=$SRC/docs/api.md
WORK=$(mktemp -d /tmp/cn-apidocs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

echo "-- docs/api.md and docs/openapi.json name the same operations"
python3 "$TOOL" apimd "$SPEC" "$MD" || fail "docs/api.md and docs/openapi.json disagree (above)"

# must_fail NAME SED-EXPRESSION PATTERN: the check refuses a doctored page,
# saying PATTERN.
must_fail() {
    sed -e "$2" "$MD" >"$WORK/$1.md"
    cmp -s "$MD" "$WORK/$1.md" && fail "$1: the sed expression changed nothing"
    local out
    if out=$(python3 "$TOOL" apimd "$SPEC" "$WORK/$1.md"); then
        fail "$1: a doctored api.md passed"
    fi
    grep -Eq -- "$3" <<<"$out" || fail "$1: the check failed for another reason: $out"
    echo "   $1: refused ($(head -1 <<<"$out"))"
}
echo "-- the check fails where it must"
must_fail lost-heading '/^#### `DELETE \/api\/v1\/tokens\/{id}`/d' 'no heading for DELETE /api/v1/tokens/\{id\}'
must_fail extra-heading 's/^#### `GET \/api\/v1\/tokens`/#### `GET \/api\/v1\/tokens` · `PUT \/api\/v1\/tokens`/' \
    'PUT /api/v1/tokens is not in the OpenAPI document'
must_fail other-query 's/\[?tunnelId=ID&since=TIME&after=EVENT_ID&limit=N\]/[?tunnelId=ID\&since=TIME]/' \
    'GET /api/v1/events shows query arguments'
echo "PASS test_api_docs"
