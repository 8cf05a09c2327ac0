#!/usr/bin/env bash
# User story: a hub shared by two teams exposes public TCP tunnels on their
# own address (--public-bind), apart from the API. One client address cannot
# take a tunnel's connections, one team cannot fill the hub-wide cap, a
# paused or deleted tunnel drops its clients at once (RST, without waiting
# for the agent), and an idle connection is closed after --tcp-idle-timeout
# or the tunnel's own idleTimeout (which an open connection follows too).
source "$(dirname "$0")/lib.sh"
AT=$SRC/tests/integration/abusetool.py
PUB=127.0.0.2 # public listeners; the API stays on 127.0.0.1

hub_init
hub_start --public-bind "$PUB" --tcp-idle-timeout 0 --max-conns-per-client 3 \
    --max-conns-per-workspace 5
SVC=$(free_port)
bg svc "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"

step "public listeners bind to --public-bind, the API to --listen"
agent_enroll team1
expose team1 "127.0.0.1:$SVC" --public --protocol tcp --name one
T1=$TUNNEL_ID
P1=$TUNNEL_PORT
listening() { # ADDR PORT: whether something listens exactly there
    "$PY" - "$1" "$2" <<'EOF'
import socket, struct, sys
want = (socket.inet_aton(sys.argv[1]), int(sys.argv[2]))
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    addr, port = f[1].split(":")
    if f[3] == "0A" and struct.pack("<I", int(addr, 16)) == want[0] and int(port, 16) == want[1]:
        sys.exit(0)
sys.exit(1)
EOF
}
listening "$PUB" "$P1" || fail "tunnel port $P1 does not listen on $PUB"
listening 127.0.0.1 "$P1" && fail "tunnel port $P1 also listens on the API's address"
listening 127.0.0.1 "$HUB_PORT" || fail "the API left --listen"
listening "$PUB" "$HUB_PORT" && fail "the API listens on the public address"
"$PY" "$TCPTOOL" echo "$PUB" "$P1" 100000 5 >/dev/null || fail "the tunnel does not serve on $PUB"

step "one client address gets at most 3 connections to a tunnel"
bg c1 "$PY" "$AT" conns "$PUB" "$P1" 5 127.0.0.11
wait_for 15 "client 1" grep -q "^ready" "$WORK/c1.log"
[ "$(cat "$WORK/c1.log")" = "ready 3 2" ] || fail "per-client cap: $(cat "$WORK/c1.log")"
C1=$LAST_PID

step "one workspace gets at most 5 connections; another workspace is not affected"
expose team1 "127.0.0.1:$SVC" --public --protocol tcp --name two
T2=$TUNNEL_ID
P2=$TUNNEL_PORT
bg c2 "$PY" "$AT" conns "$PUB" "$P2" 3 127.0.0.12
wait_for 15 "client 2" grep -q "^ready" "$WORK/c2.log"
[ "$(cat "$WORK/c2.log")" = "ready 2 1" ] || fail "per-workspace cap: $(cat "$WORK/c2.log")"
api POST /api/v1/workspaces '{"name":"team2"}'
[ "$HTTP_STATUS" = 201 ] || fail "create workspace: $HTTP_STATUS $BODY"
WS2=$(echo "$BODY" | json_get id)
api POST "/api/v1/workspaces/$WS2/tokens" '{"scope":"admin"}'
[ "$HTTP_STATUS" = 201 ] || fail "mint: $HTTP_STATUS $BODY"
TOKEN=$(echo "$BODY" | json_get token) agent_enroll team2
expose team2 "127.0.0.1:$SVC" --public --protocol tcp --name three
P3=$TUNNEL_PORT
bg c3 "$PY" "$AT" conns "$PUB" "$P3" 3 127.0.0.13
wait_for 15 "client 3" grep -q "^ready" "$WORK/c3.log"
[ "$(cat "$WORK/c3.log")" = "ready 3 0" ] || fail "the other workspace was capped: $(cat "$WORK/c3.log")"
grep -q "refused: workspace connection limit" "$WORK/hub.log" || fail "workspace refusal not logged"
grep -q "refused: client address limit" "$WORK/hub.log" || fail "client refusal not logged"
stop_pid "$C1"

# drops_live NAME METHOD BODY: a live connection to $P1 ends with a reset at
# once when the API call is made.
drops_live() {
    bg "$1" "$PY" "$AT" watch "$PUB" "$P1" 10
    wait_for 10 "the watcher's connection" grep -q "^open" "$WORK/$1.log"
    sleep 0.5
    api "$2" "/api/v1/tunnels/$T1" "$3"
    [ "$HTTP_STATUS" = 200 ] || fail "$1: $HTTP_STATUS $BODY"
    wait_for 5 "the watcher ends" grep -q " " "$WORK/$1.log"
    read -r MS HOW < <(grep " " "$WORK/$1.log")
    echo "   $1: the live connection ended ($HOW) $MS ms into the watch, the call ~0.5 s in"
    [ "$HOW" = reset ] && [ "$MS" -lt 2000 ] || fail "$1 left the connection: $MS $HOW"
}

step "pausing a tunnel drops its live connections at once"
drops_live paused PATCH '{"status":"paused"}'

step "deleting a tunnel drops its live connections at once"
api PATCH "/api/v1/tunnels/$T1" '{"status":"active"}'
wait_for 15 "active again" status_is "$T1" active
drops_live deleted DELETE ""

step "an idle public connection is closed after --tcp-idle-timeout"
stop_pid "$HUB_PID"
hub_start --public-bind "$PUB" --tcp-idle-timeout 2
wait_for 15 "tunnel two active again" status_is "$T2" active
read -r MS HOW < <("$PY" "$AT" idle "$PUB" "$P2" 10)
echo "   idle: closed after $MS ms ($HOW)"
[ "$MS" -ge 1900 ] && [ "$MS" -le 3500 ] && [ "$HOW" = reset ] || fail "idle timeout: $MS $HOW"
"$PY" "$TCPTOOL" echo "$PUB" "$P2" 1000000 7 >/dev/null || fail "a busy connection was cut"

step "a tunnel's own idleTimeout overrides the hub's, on open connections too"
api PATCH "/api/v1/tunnels/$T2" '{"idleTimeout":0}'
[ "$HTTP_STATUS" = 200 ] && [ "$(echo "$BODY" | json_get idleTimeout)" = 0 ] ||
    fail "patch idleTimeout 0: $HTTP_STATUS $BODY"
bg idle_never "$PY" "$AT" watch "$PUB" "$P2" 10
wait_for 10 "the watcher's connection" grep -q "^open" "$WORK/idle_never.log"
sleep 3.5 # past the hub's 2 s: the tunnel's "never" holds
grep -q " " "$WORK/idle_never.log" && fail "idleTimeout 0 still closed: $(cat "$WORK/idle_never.log")"
api PATCH "/api/v1/tunnels/$T2" '{"idleTimeout":1}'
[ "$HTTP_STATUS" = 200 ] || fail "patch idleTimeout 1: $HTTP_STATUS $BODY"
wait_for 5 "the idle watcher ends" grep -q " " "$WORK/idle_never.log"
read -r MS HOW < <(grep " " "$WORK/idle_never.log")
echo "   idleTimeout 0 then 1: the open connection ended ($HOW) $MS ms into the watch, the patch ~3.5 s in"
[ "$HOW" = reset ] && [ "$MS" -ge 3000 ] && [ "$MS" -le 5500 ] || fail "live idle change: $MS $HOW"

step "connect expose --idle-timeout sets it at creation; null goes back to the hub's"
expose team1 "127.0.0.1:$SVC" --public --protocol tcp --name four --idle-timeout 1
T4=$TUNNEL_ID
P4=$TUNNEL_PORT
api GET "/api/v1/tunnels/$T4"
[ "$(echo "$BODY" | json_get idleTimeout)" = 1 ] || fail "expose --idle-timeout: $BODY"
read -r MS HOW < <("$PY" "$AT" idle "$PUB" "$P4" 10)
echo "   expose --idle-timeout 1: closed after $MS ms ($HOW)"
[ "$MS" -ge 900 ] && [ "$MS" -le 2000 ] && [ "$HOW" = reset ] || fail "tunnel idle timeout: $MS $HOW"
api PATCH "/api/v1/tunnels/$T4" '{"idleTimeout":null}'
[ "$HTTP_STATUS" = 200 ] && [ -z "$(echo "$BODY" | json_get idleTimeout)" ] ||
    fail "patch idleTimeout null: $HTTP_STATUS $BODY"
read -r MS HOW < <("$PY" "$AT" idle "$PUB" "$P4" 10)
echo "   back to the hub's 2 s: closed after $MS ms ($HOW)"
[ "$MS" -ge 1900 ] && [ "$MS" -le 3500 ] && [ "$HOW" = reset ] || fail "hub default again: $MS $HOW"
echo PASS
