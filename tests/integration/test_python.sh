#!/usr/bin/env bash
# User story: a Python developer installs the binding with pip (offline, the
# system's setuptools) over the installed libconnect and, with Debian's own
# python3 and pytest, exposes a real `python3 -m http.server` through a real
# hub: Tunnel with `with` and `async with`, its getters, basic auth, TTL,
# status callbacks, API errors with their field, and the Hub client's
# tunnels, shares, events and reach (sdk/python/tests). Then the documented
# CI example (examples/ci_tunnel.py) runs its job: server, tunnel, checks
# through the public URL and a share, and everything closed afterwards.
source "$(dirname "$0")/lib.sh"
# Debian's python3 with python3-pytest (scripts/install-deps.sh), not
# whatever python3 comes first in PATH.
SYSPY=/usr/bin/python3
"$SYSPY" -m pytest --version >/dev/null 2>&1 || fail "python3-pytest is not installed (scripts/install-deps.sh)"

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"
agent_enroll dev
HTTP_PORT=$(free_port)
mkdir -p "$WORK/www" && echo hello >"$WORK/www/index.html"
bg http "$SYSPY" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www"
wait_port 127.0.0.1 "$HTTP_PORT"

step "install libconnect, then the binding with pip (no network, no build isolation)"
prefix=$WORK/prefix
cmake --install "$BUILD" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name connect.pc | head -1)
export LD_LIBRARY_PATH
LD_LIBRARY_PATH=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=libdir connect)
# pip builds in the source tree: build from a copy so the checkout stays clean.
cp -r "$SRC/sdk/python" "$WORK/pysrc"
rm -rf "$WORK/pysrc/build" "$WORK/pysrc"/*.egg-info
"$SYSPY" -m pip install --quiet --no-build-isolation --no-deps --no-index --target "$WORK/site" \
    "$WORK/pysrc" >"$WORK/pip.log" 2>&1 || fail "pip install: $(tail -5 "$WORK/pip.log")"
[ -f "$WORK/site/connect/tunnel.py" ] || fail "pip did not install the package"
export PYTHONPATH=$WORK/site PYTHONDONTWRITEBYTECODE=1
# pyrun ARGS...: Debian's python3 with the binding. An ASan build of
# libconnect needs the sanitizer runtimes loaded first (into python3 only:
# curl hangs with them preloaded); Python is not built to be leak-checked.
PRELOAD=""
if grep -q '^CN_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
fi
pyrun() {
    if [ -n "$PRELOAD" ]; then
        LD_PRELOAD=$PRELOAD ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$SYSPY" "$@"
    else
        "$SYSPY" "$@"
    fi
}
cd "$WORK" || fail "cd $WORK" # so that `import connect` finds the installed copy, not the source
[ "$(pyrun -m connect --version)" = "connect 0.1.0" ] || fail "python3 -m connect --version"

step "pytest (sdk/python/tests) against the hub and python3 -m http.server"
export CONNECT_CONFIG=$WORK/dev.json CN_TEST_HTTP_PORT=$HTTP_PORT CN_TEST_EDGE_PORT=$EDGE_PORT
unset CONNECT_HUB CONNECT_TOKEN CONNECT_CA_FILE
pyrun -m pytest -q -p no:cacheprovider "$SRC/sdk/python/tests" >"$WORK/pytest.out" 2>"$WORK/pytest.log" \
    || fail "pytest: $(tail -40 "$WORK/pytest.out")"
tail -1 "$WORK/pytest.out"
grep -Eq '^[0-9]+ passed' <(tail -1 "$WORK/pytest.out") || fail "pytest: $(tail -1 "$WORK/pytest.out")"
grep -Eq 'skipped|xfail|deselected' <(tail -1 "$WORK/pytest.out") && fail "pytest skipped tests"

step "the CI example: server, tunnel, checks through the URL and a share, all closed"
mkdir -p "$WORK/app" && echo "ci build 42" >"$WORK/app/index.html"
CI_APP_DIR=$WORK/app CI_TUNNEL_TTL=300 pyrun "$SRC/examples/ci_tunnel.py" >"$WORK/ci.out" 2>"$WORK/ci.log" \
    || fail "examples/ci_tunnel.py: $(cat "$WORK/ci.out") $(tail -5 "$WORK/ci.log")"
cat "$WORK/ci.out"
[ "$(grep -c '^ok ' "$WORK/ci.out")" = 4 ] || fail "the CI example ran $(grep -c '^ok ' "$WORK/ci.out") of 4 checks"
api GET /api/v1/tunnels
[ "$(echo "$BODY" | json_get tunnels)" = "[]" ] || fail "tunnels left on the hub: $BODY"
api GET /api/v1/shares
"$PY" -c 'import json,sys; s=json.load(sys.stdin)["shares"]; sys.exit(any(x["status"]=="active" for x in s))' <<<"$BODY" \
    || fail "an active share is left: $BODY"
echo "ok"
