#!/usr/bin/env bash
# User story: an operator types `man connect` or `man 8 connect-hub` after
# `cmake --install` and reads what the binaries really do. The pages are
# installed to share/man/man1 and man8; groff renders them without a
# warning; every command and option `connect --help`, `connect CMD --help`,
# `connect-hub --help` and `connect-hub CMD --help` print is documented in
# the page, and the page documents no other (man_check.py). The check is
# seen to fail on a page that lost an option, kept a stale one, or lost a
# command.
source "$(dirname "$0")/lib.sh"
CHECK=$SRC/tests/integration/man_check.py

step "cmake --install puts the pages in share/man"
prefix=$WORK/prefix
cmake --install "$BUILD" --prefix "$prefix" >"$WORK/install.out" || fail "cmake --install failed"
mandir=$(find "$prefix" -type d -name man1 -path '*/man/*' | head -1)
[ -n "$mandir" ] || fail "no man1 directory installed under $prefix"
cmp "$mandir/connect.1" "$SRC/man/connect.1" || fail "connect.1 not installed as is"
cmp "$(dirname "$mandir")/man8/connect-hub.8" "$SRC/man/connect-hub.8" || fail "connect-hub.8 not installed as is"

step "groff renders them without a warning"
for page in "$SRC/man/connect.1" "$SRC/man/connect-hub.8"; do
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
    [ -z "$warnings" ] || fail "groff warns about $(basename "$page"): $warnings"
    man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "man -l $(basename "$page") shows no NAME"
done

step "the pages and --help agree, both ways"
"$PY" "$CHECK" "$SRC/man/connect.1" "$CLI_BIN" || fail "man/connect.1 and connect --help disagree (above)"
"$PY" "$CHECK" "$SRC/man/connect-hub.8" "$HUB_BIN" || fail "man/connect-hub.8 and connect-hub --help disagree (above)"

step "the check fails where it must"
# must_fail NAME PAGE BINARY PATTERN AWK-PROGRAM: a page doctored by the awk
# program is refused, for the reason PATTERN says.
must_fail() {
    local name=$1 page=$2 bin=$3 pattern=$4 out
    awk "$5" "$page" >"$WORK/$name"
    cmp -s "$page" "$WORK/$name" && fail "$name: the doctoring changed nothing"
    if out=$("$PY" "$CHECK" "$WORK/$name" "$bin"); then fail "$name: a doctored page passed"; fi
    grep -Eq -- "$pattern" <<<"$out" || fail "$name: refused for another reason: $out"
    echo "   $name: refused ($(head -1 <<<"$out"))"
}
# Drops the .TP entry whose tag line defines --keep (the .TP line before it too).
must_fail lost-option.1 "$SRC/man/connect.1" "$CLI_BIN" 'expose: option --keep .* is not documented' \
    '{ if (held != "") { if ($0 ~ /^\.B \\-\\-keep$/) { held = ""; skip = 1; next } print held; held = "" }
       if (skip) { skip = 0; next }
       if ($0 == ".TP") { held = $0; next } print }'
must_fail stale-option.8 "$SRC/man/connect-hub.8" "$HUB_BIN" 'serve: option --frobnicate is documented' \
    '{ print } /^\.SS "connect\\-hub serve"/ { print ".TP"; print ".B \\-\\-frobnicate"; print "a stale option" }'
must_fail lost-command.1 "$SRC/man/connect.1" "$CLI_BIN" 'command rm .* has no subsection' \
    '/^\.SS "connect rm"/ { $0 = ".SS \"connect remove\"" } { print }'
echo "PASS test_man_pages"
