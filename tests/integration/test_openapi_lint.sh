#!/usr/bin/env bash
# User story: docs/openapi.json is a valid OpenAPI 3.1 document by a real
# validator, not only by our own checks: `redocly lint` (@redocly/cli at
# the version scripts/install-deps.sh pins, in the work tree's .tools/)
# with the rules of redocly.yaml reports zero errors and zero warnings. The
# validator is seen to be live: a doctored copy (a response without its
# description, a parameter "in" the body) draws errors. Without the
# validator this test fails under CI and elsewhere skips with one loud
# line.
set -euo pipefail
SRC=${CN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SPEC=$SRC/docs/openapi.json
# CN_REDOCLY: another validator binary (tests/CMakeLists.txt points it at
# nothing to check the missing-validator paths).
REDOCLY=${CN_REDOCLY:-$SRC/.tools/node_modules/.bin/redocly}
WORK=$(mktemp -d /tmp/cn-lint.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# No network but the package registry here: no telemetry, no update check.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

want=$(sed -n 's/^REDOCLY_VERSION=//p' "$SRC/scripts/install-deps.sh")
[ -n "$want" ] || fail "scripts/install-deps.sh pins no REDOCLY_VERSION"
if ! command -v node >/dev/null 2>&1 || [ ! -x "$REDOCLY" ]; then
    if [ -n "${CI:-}" ]; then fail "@redocly/cli $want missing ($REDOCLY; scripts/install-deps.sh installs it) and CI is set"; fi
    echo "SKIP test_openapi_lint: @redocly/cli $want missing ($REDOCLY; run scripts/install-deps.sh)"
    exit 77
fi
have=$("$REDOCLY" --version 2>/dev/null | head -1)
[ "$have" = "$want" ] || fail "@redocly/cli is $have in .tools/, scripts/install-deps.sh pins $want"

# lint FILE: the JSON report on stdout; problems counted by the caller.
lint() {
    (cd "$SRC" && "$REDOCLY" lint --config "$SRC/redocly.yaml" --format=json "$1" 2>"$WORK/lint.err") || true
}
totals() { # totals REPORT: "ERRORS WARNINGS"
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["totals"]; print(t["errors"], t["warnings"])' "$1"
}

echo "-- redocly lint docs/openapi.json (@redocly/cli $have)"
lint "$SPEC" >"$WORK/report.json"
read -r errors warnings < <(totals "$WORK/report.json") || fail "no report: $(tail -5 "$WORK/lint.err")"
if [ "$errors" != 0 ] || [ "$warnings" != 0 ]; then
    python3 -c 'import json,sys
for p in json.load(open(sys.argv[1]))["problems"]:
    loc = p["location"][0]["pointer"] if p.get("location") else ""
    print(p["severity"], p["ruleId"], loc, p["message"])' "$WORK/report.json" >&2
    fail "redocly lint: $errors errors, $warnings warnings"
fi
echo "   0 errors, 0 warnings"

echo "-- the validator is live: a doctored copy draws problems"
python3 - "$SPEC" "$WORK/doctored.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
# A response without its required description, a parameter "in" a place
# OpenAPI 3 does not have, and no operationId.
d["paths"]["/api/v1/doctored"] = {"get": {
    "summary": "doctored",
    "parameters": [{"name": "x", "in": "body", "schema": {"type": "string"}}],
    "responses": {"200": {}}}}
json.dump(d, open(sys.argv[2], "w"))
PY
lint "$WORK/doctored.json" >"$WORK/doctored-report.json"
read -r errors warnings < <(totals "$WORK/doctored-report.json") || fail "no report for the doctored copy"
[ "$errors" -gt 0 ] || fail "redocly lint found no error in a broken operation"
echo "   $errors errors, $warnings warnings"
echo "PASS test_openapi_lint"
