#!/usr/bin/env bash
# The runnable guides (docs/guides/*.md, scripts in examples/guides/) run
# as a user would run them, against the binaries of this build and real
# peers: PostgreSQL with psql for team database access, curl for share
# links. A guide that stops working fails here.
source "$(dirname "$0")/lib.sh"
command -v psql >/dev/null || fail "psql not installed (scripts/install-deps.sh installs postgresql)"
[ -n "$PG_BIN" ] || fail "PostgreSQL server binaries not found"

guide() { # NAME [ENV=VALUE...]: runs examples/guides/NAME.sh, output in $WORK/guide-NAME.log
    local name=$1
    shift
    step "guide $name"
    # The state stays in $WORK, so the secrets grep reads its database and logs.
    if ! env "$@" CONNECT_BIN_DIR="$BUILD" TMPDIR="$WORK" GUIDE_KEEP=1 \
        timeout 180 bash "$SRC/examples/guides/$name.sh" >"$WORK/guide-$name.log" 2>&1; then
        cat "$WORK/guide-$name.log"
        fail "guide $name"
    fi
}

pg_start
guide team-database PGPORT="$PG_PORT" PGUSER=postgres PGDATABASE=postgres
grep -q "hello from postgres via Connect" "$WORK/guide-team-database.log" ||
    fail "the team-database guide did not reach PostgreSQL through the tunnel"

guide share-links
for want in "-> 200" "-> 405" "-> 403" "-> 429" "-> 410" "Retry-After: "; do
    grep -q -- "$want" "$WORK/guide-share-links.log" || fail "share-links guide: no '$want'"
done
echo PASS
