#!/usr/bin/env bash
# User story: a developer shares the staging Redis (a TCP tunnel) with an
# outside contractor: `connect share redis-staging --rate-limit 3`. The
# contractor, with no enrollment, config or workspace token, runs `connect
# reach SHARE_URL` and uses redis-cli on a local port, end-to-end encrypted
# to the exposing agent. The share's limit counts new connections per minute
# (the 4th is refused); revoking it or its expiry closes an open connection
# within seconds and refuses new ones; the share token opens nothing else:
# the REST API answers 401 and the hub refuses streams to any other tunnel.
source "$(dirname "$0")/lib.sh"
ABUSE=$BUILD/tests/abuse_agent
[ -x "$ABUSE" ] || fail "build tests/tools/abuse_agent first"

hub_init
hub_start
agent_enroll dev
redis_start
expose dev "127.0.0.1:$REDIS_PORT" --protocol redis --name redis-staging
REDIS_TUNNEL=$TUNNEL_ID
OTHER_PORT=$(free_port)
expose dev "127.0.0.1:$OTHER_PORT" --protocol tcp --name other-tcp
OTHER_TUNNEL=$TUNNEL_ID
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET greeting shared-hello | grep -q OK || fail "SET direct"

# A redeemer's environment: no config file, no hub or token variables.
NOHOME=$WORK/nohome
mkdir -p "$NOHOME"
REDEEMS=0
# redeem URL [args]: `connect reach URL` with nothing but the URL; sets
# REACH_PID, REACH_PORT, REACH_LOG.
redeem() {
    local url=$1 out
    shift
    REDEEMS=$((REDEEMS + 1))
    out=$WORK/redeem-$REDEEMS.out
    REACH_LOG=$WORK/redeem-$REDEEMS.log
    env -u CONNECT_HUB -u CONNECT_TOKEN -u CONNECT_CONFIG HOME="$NOHOME" \
        "$CLI_BIN" reach "$url" --json "$@" >"$out" 2>"$REACH_LOG" &
    PIDS+=($!)
    REACH_PID=$!
    wait_for 15 "reach SHARE_URL to print its JSON line" grep -q '"localPort"' "$out"
    REACH_PORT=$(grep -m1 '^{' "$out" | json_get localPort)
}
# share TUNNEL JSON: creates a share; sets SHARE_URL, SHARE_ID, SHARE_TOKEN.
share() {
    api POST "/api/v1/tunnels/$1/shares" "$2"
    [ "$HTTP_STATUS" = 201 ] || fail "create share: $HTTP_STATUS $BODY"
    SHARE_URL=$(echo "$BODY" | json_get shareUrl)
    SHARE_ID=$(echo "$BODY" | json_get id)
    SHARE_TOKEN=${SHARE_URL##*/share/}
    secret "$SHARE_TOKEN"
}
# eof_within PORT SECS: holds a redis connection open (PING answered) and
# prints how it ended: "eof|reset SECONDS" or "open" after SECS.
hold_redis() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), 5)
s.sendall(b"PING\r\n")
s.settimeout(5)
assert s.recv(64).startswith(b"+PONG"), "no PONG"
print("ready", flush=True)
s.settimeout(secs)
t0 = time.time()
try:
    how = "eof" if s.recv(64) == b"" else "data"
except ConnectionResetError:
    how = "reset"
except socket.timeout:
    how = "open"
print(f"{how} {time.time() - t0:.2f}", flush=True)
EOF
}

step "a TCP share: its URL names the hub, methods/paths/auth are refused"
api POST "/api/v1/tunnels/$REDIS_TUNNEL/shares" '{"allowedMethods":["GET"],"allowedPaths":["/a"]}'
[ "$HTTP_STATUS" = 422 ] || fail "HTTP rules on a TCP share: $HTTP_STATUS $BODY"
echo "$BODY" | grep -q allowedMethods && echo "$BODY" | grep -q allowedPaths ||
    fail "the 422 names every HTTP-only field: $BODY"
"$CLI_BIN" share redis-staging --config "$WORK/dev.json" --rate-limit 3 --expires 1h --json \
    >"$WORK/share.json" || fail "connect share of a TCP tunnel"
SHARE_URL=$(json_get shareUrl <"$WORK/share.json")
SHARE_ID=$(json_get id <"$WORK/share.json")
SHARE_TOKEN=${SHARE_URL##*/share/}
secret "$SHARE_TOKEN"
case $SHARE_URL in "$HUB_URL/share/"?*) ;; *) fail "shareUrl '$SHARE_URL'" ;; esac
[ "${#SHARE_TOKEN}" -ge 22 ] || fail "share token too short: ${#SHARE_TOKEN} characters"

step "connect reach SHARE_URL with no config: redis-cli works (connection 1 of 3)"
redeem "$SHARE_URL"
LIMITED_PORT=$REACH_PORT
LIMITED_LOG=$REACH_LOG
[ "$(redis-cli -h 127.0.0.1 -p "$LIMITED_PORT" GET greeting)" = shared-hello ] ||
    fail "GET through the share: $(cat "$REACH_LOG")"
grep -q '"connectionString":"redis://127.0.0.1:'"$LIMITED_PORT" "$WORK/redeem-1.out" ||
    fail "connection string: $(cat "$WORK/redeem-1.out")"

step "the limit counts new connections: 3 per minute, the 4th is refused"
[ "$(redis-cli -h 127.0.0.1 -p "$LIMITED_PORT" PING)" = PONG ] || fail "connection 2"
[ "$(redis-cli -h 127.0.0.1 -p "$LIMITED_PORT" PING)" = PONG ] || fail "connection 3"
OUT=$("$PY" "$TCPTOOL" rst 127.0.0.1 "$LIMITED_PORT" 5) ||
    fail "the 4th connection within the minute was not refused at once: $OUT"
wait_for 5 "the hub's refusal logged" grep -q "share rate limit" "$WORK/hub.log"
echo "3 connections served, the 4th refused ($OUT)"

step "the share token does nothing else: REST 401, other tunnels refused"
TOKEN=$SHARE_TOKEN api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 401 ] || fail "REST with the share token: $HTTP_STATUS"
TOKEN=$SHARE_TOKEN api POST "/api/v1/tunnels/$REDIS_TUNNEL/connect" '{}'
[ "$HTTP_STATUS" = 401 ] || fail "reach API with the share token: $HTTP_STATUS"
HUB_KEY=$(curl -sf "$HUB_URL/api/v1/health" | json_get hubPublicKey)
share "$REDIS_TUNNEL" '{"name":"probe","rateLimitPerMinute":100}'
PROBE_TOKEN=$SHARE_TOKEN
"$ABUSE" share-open 127.0.0.1 "$HUB_PORT" "$PROBE_TOKEN" "$HUB_KEY" "$OTHER_TUNNEL" \
    "$REDIS_TUNNEL" "00000000-0000-4000-8000-000000000000" >"$WORK/probe.out" 2>&1 ||
    fail "share-open: $(cat "$WORK/probe.out")"
grep -q "^$OTHER_TUNNEL rst 1$" "$WORK/probe.out" || fail "another tunnel: $(cat "$WORK/probe.out")"
grep -q "^$REDIS_TUNNEL open$" "$WORK/probe.out" || fail "the shared tunnel: $(cat "$WORK/probe.out")"
grep -q "^00000000-0000-4000-8000-000000000000 rst 1$" "$WORK/probe.out" ||
    fail "an unknown tunnel: $(cat "$WORK/probe.out")"
if "$ABUSE" share-open 127.0.0.1 "$HUB_PORT" "not-a-share-token-at-all-xxxx" "$HUB_KEY" \
    "$REDIS_TUNNEL" >"$WORK/probe2.out" 2>&1; then
    fail "a link with a wrong share token was admitted: $(cat "$WORK/probe2.out")"
fi
# An HTTP tunnel's share admits no link: it is redeemed on the HTTP edge.
WEB_PORT=$(free_port)
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name web
share "$TUNNEL_ID" '{"name":"web-share"}'
case $SHARE_URL in http://share-*) ;; *) fail "an HTTP share's URL: $SHARE_URL" ;; esac
HTTP_SHARE_TOKEN=${SHARE_URL#http://share-}
HTTP_SHARE_TOKEN=${HTTP_SHARE_TOKEN%%.*}
if "$ABUSE" share-open 127.0.0.1 "$HUB_PORT" "$HTTP_SHARE_TOKEN" "$HUB_KEY" "$TUNNEL_ID" \
    >"$WORK/probe3.out" 2>&1; then
    fail "an HTTP share's token admitted a link: $(cat "$WORK/probe3.out")"
fi
api POST /api/v1/share-redemptions "{\"token\":\"$HTTP_SHARE_TOKEN\"}"
[ "$HTTP_STATUS" = 404 ] || fail "redeeming an HTTP share as TCP: $HTTP_STATUS $BODY"
echo "REST 401; other and unknown tunnels RST refused; wrong or HTTP share tokens: no link"

# ends_open WHAT ACTION: a fresh share redeemed, one redis connection held
# open through it, then ACTION (a function, given the share's id) ends the
# share: the held connection must end (EOF or reset) within 3 s and a new
# one be refused at once.
ends_open() {
    local what=$1 action=$2 n=$REDEEMS how secs out port hold
    share "$REDIS_TUNNEL" "{\"name\":\"$what\",\"expiresIn\":\"1h\",\"rateLimitPerMinute\":100}"
    redeem "$SHARE_URL"
    port=$REACH_PORT
    hold_redis "$port" 10 >"$WORK/hold-$n.out" &
    hold=$!
    PIDS+=($hold)
    wait_for 10 "the held connection" grep -q ready "$WORK/hold-$n.out"
    "$action" "$SHARE_ID"
    wait "$hold" || fail "$what: hold: $(cat "$WORK/hold-$n.out")"
    read -r how secs < <(tail -1 "$WORK/hold-$n.out")
    case $how in eof | reset) ;; *) fail "$what: the open connection: $(cat "$WORK/hold-$n.out")" ;; esac
    "$PY" -c "import sys; sys.exit(0 if float('$secs') <= 3 else 1)" ||
        fail "$what: the open connection ended only after ${secs}s"
    out=$("$PY" "$TCPTOOL" rst 127.0.0.1 "$port" 5) || fail "$what: a new connection: $out"
    echo "$what: the open connection ended ($how after ${secs}s), a new one was refused"
}
revoke() {
    api DELETE "/api/v1/shares/$1"
    [ "$HTTP_STATUS" = 200 ] || fail "revoke: $HTTP_STATUS $BODY"
}
expire() { expire_in_db shares "$1"; }

# reach_exits WORD: the `connect reach` of the share just ended (REACH_PID)
# stops by itself within 10 s, non-zero, with one line naming WORD, instead
# of reconnecting forever.
reach_exits() {
    local pid=$REACH_PID rc=0
    wait_for 10 "connect reach to stop once its share is $1" \
        sh -c "! kill -0 $pid 2>/dev/null"
    wait "$pid" || rc=$?
    forget_pid "$pid"
    [ "$rc" -ne 0 ] || fail "connect reach exited 0 after its share was $1"
    grep -q "^connect: the share is no longer valid: .*$1" "$REACH_LOG" ||
        fail "connect reach's message: $(tail -3 "$REACH_LOG")"
    echo "connect reach stopped (exit $rc): $(grep '^connect: ' "$REACH_LOG")"
}

step "revoke closes an open connection at once and refuses new ones"
ends_open revoke-me revoke
REVOKE_ID=$SHARE_ID
api POST /api/v1/share-redemptions "{\"token\":\"$SHARE_TOKEN\"}"
[ "$HTTP_STATUS" = 410 ] || fail "redeeming a revoked share: $HTTP_STATUS $BODY"
reach_exits revoked

step "expiry closes an open connection at once and refuses new ones"
ends_open expire-me expire
api POST /api/v1/share-redemptions "{\"token\":\"$SHARE_TOKEN\"}"
[ "$HTTP_STATUS" = 410 ] || fail "redeeming an expired share: $HTTP_STATUS $BODY"
reach_exits expired

step "a lost link is not the end of a live share: connect reach retries through a hub restart"
share "$REDIS_TUNNEL" '{"name":"survivor","expiresIn":"1h","rateLimitPerMinute":100}'
redeem "$SHARE_URL"
stop_pid "$HUB_PID"
forget_pid "$HUB_PID"
sleep 2
kill -0 "$REACH_PID" 2>/dev/null || fail "connect reach gave up while the hub was down: $(tail -3 "$REACH_LOG")"
mv "$WORK/hub.log" "$WORK/hub-before-restart.log"
hub_start
redis_through() { [ "$(redis-cli -h 127.0.0.1 -p "$REACH_PORT" GET greeting 2>/dev/null)" = shared-hello ]; }
wait_for 40 "a GET through the share after the hub restart" redis_through
kill -0 "$REACH_PID" 2>/dev/null || fail "connect reach is gone: $(tail -3 "$REACH_LOG")"
echo "connect reach survived the hub restart and serves again"

step "the exposing agent served the redeemers; the share tokens are in no log (cleanup's grep)"
grep -q "client share $REVOKE_ID (reach)" "$WORK"/expose-dev-1.log || fail "the exposing agent's log"
echo "ok"
