#!/usr/bin/env bash
# User story: a developer embeds a tunnel in a program with libconnect. The
# documented example (examples/expose.c), built with pkg-config alone against
# the installed library, exposes a local web server: curl through its public
# URL gets the server's answer, and when the program stops the tunnel is gone
# from GET /api/v1/tunnels. Around it, a check program built the same way
# proves the rest of the API against a real hub: status callbacks
# (connecting, active, reconnecting across a hub restart, active again), the
# getters (URL, id, generated basic-auth password), TTL (a killed process's
# tunnel expires), the API's errors with their field, a start that times out
# (and leaves nothing behind), the asynchronous start, and the REST client's
# typed calls (shares, reach, workspaces, tokens, webhooks).
source "$(dirname "$0")/lib.sh"

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"
agent_enroll dev
http_start
# The same credentials as the CLI: the config `connect enroll` wrote.
export CONNECT_CONFIG=$WORK/dev.json
unset CONNECT_HUB CONNECT_TOKEN CONNECT_CA_FILE

step "install; build examples/expose.c and the check program with pkg-config alone"
prefix=$WORK/prefix
cmake --install "$BUILD" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name connect.pc | head -1)
[ -n "$pc" ] || fail "connect.pc not installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
export LD_LIBRARY_PATH
LD_LIBRARY_PATH=$(pkg-config --variable=libdir connect)
[ -f "$prefix/include/connect/tunnel.h" ] || fail "<connect/tunnel.h> not installed"
san=""
grep -q '^CN_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt" && san="-fsanitize=address,undefined"
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Wextra -Werror $san "$SRC/examples/expose.c" -o "$WORK/expose" \
    $(pkg-config --cflags --libs connect) || fail "examples/expose.c does not build with pkg-config"
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Wextra -Werror $san "$SRC/tests/integration/sdk_tunnel_check.c" -o "$WORK/check" \
    $(pkg-config --cflags --libs connect) || fail "sdk_tunnel_check.c does not build with pkg-config"

# run_check NAME ARGS...: the check program in the background, its stdout
# (which holds the generated password) in $WORK/NAME.out, its log in
# $WORK/NAME.log; sets LAST_PID.
run_check() {
    local name=$1
    shift
    "$WORK/check" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
    LAST_PID=$!
}

# tunnels: the ids on the hub, one per line.
tunnels() {
    api GET /api/v1/tunnels
    [ "$HTTP_STATUS" = 200 ] || fail "list tunnels: $HTTP_STATUS $BODY"
    echo "$BODY" | "$PY" -c 'import json,sys; [print(t["id"]) for t in json.load(sys.stdin)["tunnels"]]'
}
# stop_check PID: SIGTERM, then its exit status must be 0.
stop_gracefully() {
    kill -TERM "$1"
    local rc=0
    wait "$1" || rc=$?
    forget_pid "$1"
    [ $rc = 0 ] || fail "$2 exited with $rc after SIGTERM"
}

step "examples/expose.c: curl through the tunnel's URL gets the local server's answer"
bg example "$WORK/expose" "$HTTP_PORT"
EX_PID=$LAST_PID
wait_for 20 "the example to print its URL" grep -q '^http://' "$WORK/example.log"
URL=$(grep -m1 '^http://' "$WORK/example.log")
case "$URL" in
http://*.localhost:"$EDGE_PORT"/) ;;
*) fail "the example printed '$URL', not a public URL of the edge" ;;
esac
[ "$(curl -s -m 10 "$URL")" = hello ] || fail "curl $URL did not get the local server's answer"
EX_ID=$(tunnels)
[ "$(echo "$EX_ID" | wc -l)" = 1 ] && [ -n "$EX_ID" ] || fail "want one tunnel on the hub, have: $EX_ID"
status_is "$EX_ID" active || fail "the example's tunnel is $(tunnel_status "$EX_ID")"
echo "$URL answers through tunnel $EX_ID"

step "the example stops on SIGTERM and the tunnel is gone from GET /api/v1/tunnels"
stop_gracefully "$EX_PID" "the example"
[ -z "$(tunnels)" ] || fail "the tunnel is still listed after the example stopped: $(tunnels)"
curl -s -o /dev/null -m 10 -w '%{http_code}' "$URL" | grep -q '^404$' || fail "the URL still answers"

step "status callbacks and getters: name, basic auth with the generated password, TTL"
run_check web "$HTTP_PORT" name=embedded user=alice ttl=600
WEB_PID=$LAST_PID
wait_for 20 "the check program to start its tunnel" grep -q '^{' "$WORK/web.out"
line=$(grep -m1 '^{' "$WORK/web.out")
WEB_ID=$(echo "$line" | json_get id)
WEB_URL=$(echo "$line" | json_get url)
PASS=$(echo "$line" | json_get httpPassword)
[ "$WEB_URL" = "http://embedded.localhost:$EDGE_PORT/" ] || fail "url: $line"
[ "$(echo "$line" | json_get status)" = active ] || fail "not active once started: $line"
[ "$(echo "$line" | json_get hubPort)" = 0 ] || fail "an http tunnel has no hub port: $line"
[ ${#PASS} -ge 8 ] || fail "no generated password: $line"
[ "$(grep '^status' "$WORK/web.out" | head -2 | tr '\n' ' ')" = "status connecting status active " ] \
    || fail "status callbacks: want connecting then active: $(grep '^status' "$WORK/web.out")"
[ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$WEB_URL")" = 401 ] || fail "no basic auth"
[ "$(curl -s -m 10 -u "alice:$PASS" "$WEB_URL")" = hello ] || fail "basic auth with the password"
api GET "/api/v1/tunnels/$WEB_ID"
[ -n "$(echo "$BODY" | json_get expiresAt)" ] || fail "ttl did not reach the hub: $BODY"
[ "$(echo "$BODY" | json_get name)" = embedded ] || fail "name: $BODY"

step "the hub restarts: reconnecting, then active again, and the URL answers"
stop_pid "$HUB_PID"
forget_pid "$HUB_PID"
wait_for 15 "status reconnecting" grep -q '^status reconnecting' "$WORK/web.out"
hub_start --http-port "$EDGE_PORT"
active_again() { [ "$(grep -c '^status active$' "$WORK/web.out")" -ge 2 ]; }
wait_for 30 "status active again" active_again
[ "$(curl -s -m 10 -u "alice:$PASS" "$WEB_URL")" = hello ] || fail "no answer after the reconnect"
grep '^status' "$WORK/web.out" | tr '\n' ' '
echo

step "stop deletes the tunnel on the hub"
stop_gracefully "$WEB_PID" "the check program"
grep -q '^stopped 0$' "$WORK/web.out" || fail "stop: $(tail -3 "$WORK/web.out")"
! tunnels | grep -q "$WEB_ID" || fail "tunnel $WEB_ID is still on the hub"

step "the REST client's typed share and reach calls on the started tunnel"
run_check shared "$HTTP_PORT" name=shared share
SH_PID=$LAST_PID
wait_for 20 "the share and the reach" grep -q '"localPort"' "$WORK/shared.out"
SHARE_URL=$(grep -m1 '"shareUrl"' "$WORK/shared.out" | json_get shareUrl)
case "$SHARE_URL" in
http://share-*.localhost:"$EDGE_PORT"/) ;;
*) fail "shareUrl: $(cat "$WORK/shared.out")" ;;
esac
[ "$(curl -s -m 10 "$SHARE_URL")" = hello ] || fail "GET through the share"
[ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' -X POST "$SHARE_URL")" = 405 ] || fail "POST through a GET share"
line=$(grep -m1 '"localPort"' "$WORK/shared.out")
SH_ID=$(grep -m1 '"id"' "$WORK/shared.out" | json_get id)
[ "$(echo "$line" | json_get tunnelId)" = "$SH_ID" ] && [ -n "$(echo "$line" | json_get peerKey)" ] \
    && [ -n "$(echo "$line" | json_get connectionString)" ] || fail "reach: $line"
stop_gracefully "$SH_PID" "the share check"
grep -Eq '^share-logs [1-9]' "$WORK/shared.out" || fail "share logs: $(cat "$WORK/shared.out")"
grep -q '^share-status revoked$' "$WORK/shared.out" || fail "revoke: $(cat "$WORK/shared.out")"
grep -q '^shares 1$' "$WORK/shared.out" || fail "share list: $(cat "$WORK/shared.out")"
grep -q '^stopped 0$' "$WORK/shared.out" || fail "stop: $(cat "$WORK/shared.out")"
[ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$SHARE_URL")" != 200 ] || fail "the share outlived its revocation"

step "the REST client's administration calls: workspaces, tokens, webhooks"
CONNECT_HUB=$HUB_URL CONNECT_TOKEN=$ADMIN_TOKEN "$WORK/check" admin >"$WORK/admin.out" 2>"$WORK/admin.log" \
    || fail "admin calls: $(grep -v '^ok' "$WORK/admin.out")"
[ "$(grep -c '^ok ' "$WORK/admin.out")" = 11 ] || fail "admin calls: $(cat "$WORK/admin.out")"

step "a killed process's tunnel expires by its TTL"
run_check crash "$HTTP_PORT" name=crashing ttl=2
CRASH_PID=$LAST_PID
wait_for 20 "the tunnel to start" grep -q '^{' "$WORK/crash.out"
CRASH_ID=$(grep -m1 '^{' "$WORK/crash.out" | json_get id)
kill -9 "$CRASH_PID"
wait "$CRASH_PID" 2>/dev/null || true
forget_pid "$CRASH_PID"
wait_for 20 "the hub to expire the orphaned tunnel" status_is "$CRASH_ID" expired
api DELETE "/api/v1/tunnels/$CRASH_ID"

step "the API's errors come back with their field; nothing is left behind"
rc=0
"$WORK/check" "$HTTP_PORT" protocol=carrier-pigeon >"$WORK/bad.out" 2>"$WORK/bad.log" || rc=$?
[ $rc = 2 ] || fail "a refused option: exit $rc, $(cat "$WORK/bad.out")"
grep -q '^start-failed invalid argument or malformed input: protocol: ' "$WORK/bad.out" \
    || fail "want the API's field in the error: $(cat "$WORK/bad.out")"
grep -q '^status-after-failure error$' "$WORK/bad.out" || fail "status: $(cat "$WORK/bad.out")"
NOHUB=http://127.0.0.1:$(free_port)
"$WORK/check" "$HTTP_PORT" hub="$NOHUB" >"$WORK/other.out" 2>"$WORK/other.log" \
    && fail "another hub than the config's: the start succeeded"
grep -q '^new-failed: no API token for .* is never sent to another hub' "$WORK/other.out" \
    || fail "the config's token must not go to another hub: $(cat "$WORK/other.out")"
CONNECT_TOKEN=$ADMIN_TOKEN "$WORK/check" "$HTTP_PORT" hub="$NOHUB" >"$WORK/down.out" \
    2>"$WORK/down.log" && fail "a hub that is not there: the start succeeded"
grep -q '^start-failed I/O error: cannot reach the hub' "$WORK/down.out" \
    || fail "no hub: $(cat "$WORK/down.out")"
[ -z "$(tunnels)" ] || fail "failed starts left tunnels: $(tunnels)"

step "a link that never comes up: the start times out with the reason, and deletes the tunnel"
# The same agent, but a pinned hub key that is not the hub's: the channel
# handshake fails on every attempt.
"$PY" - "$WORK/dev.json" "$WORK/wrongkey.json" <<'EOF'
import base64, json, os, sys
c = json.load(open(sys.argv[1]))
c["hubKey"] = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, json.dumps(c).encode())
os.close(fd)
EOF
rc=0
"$WORK/check" "$HTTP_PORT" config="$WORK/wrongkey.json" timeout=3000 >"$WORK/slow.out" \
    2>"$WORK/slow.log" || rc=$?
[ $rc = 2 ] || fail "want a failed start: exit $rc, $(cat "$WORK/slow.out")"
grep -q '^start-failed timed out: the tunnel was not active after 3000 ms: .\+' "$WORK/slow.out" \
    || fail "timeout: $(cat "$WORK/slow.out")"
[ -z "$(tunnels)" ] || fail "the timed-out start left its tunnel: $(tunnels)"

step "the asynchronous start: the ready callback, where stopping is refused"
run_check async "$HTTP_PORT" name=later async
ASYNC_PID=$LAST_PID
wait_for 20 "the ready callback" grep -q '^{' "$WORK/async.out"
grep -q '^ready 0$' "$WORK/async.out" || fail "ready: $(cat "$WORK/async.out")"
grep -q '^stop-in-callback invalid state$' "$WORK/async.out" \
    || fail "stop from the tunnel's own thread: $(grep stop-in "$WORK/async.out")"
A_URL=$(grep -m1 '^{' "$WORK/async.out" | json_get url)
[ "$(curl -s -m 10 "$A_URL")" = hello ] || fail "the async tunnel does not answer"
stop_gracefully "$ASYNC_PID" "the async check"
[ -z "$(tunnels)" ] || fail "the async tunnel is still on the hub"
echo "ok"
