#!/usr/bin/env bash
# User story: an operator pauses, resumes, deletes and time-limits public TCP
# tunnels and the data path follows at once; the hub is killed with -9 and
# restarted and the agent comes back by itself on the same port; an agent
# dies and its tunnel leaves "active" within the ping timeout, then returns;
# garbage on every port leaves the hub healthy.
source "$(dirname "$0")/lib.sh"

hub_init
HUB_PORT=$(free_port)
hub_start
agent_enroll ops
SVC=$(free_port)
bg svc "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"

works() { "$PY" "$TCPTOOL" sink 127.0.0.1 "$1" 65536 9 >/dev/null; }
refused() { "$PY" "$TCPTOOL" refused 127.0.0.1 "$1"; }
not_active() { ! status_is "$1" active; }
port_closed() { ! "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null; }

step "pause refuses new connections at once, resume serves again"
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name paused-one
T1=$TUNNEL_ID P1=$TUNNEL_PORT E1=$EXPOSE_PID
works "$P1" || fail "tunnel does not serve before pause"
"$CLI_BIN" pause "$T1" --config "$WORK/ops.json" >/dev/null || fail "connect pause"
status_is "$T1" paused || fail "status after pause: $(tunnel_status "$T1")"
start=$(date +%s%N)
refused "$P1" || fail "a paused tunnel accepted and served a connection"
[ $((($(date +%s%N) - start) / 1000000)) -lt 2000 ] || fail "refusal was not immediate"
"$CLI_BIN" resume "$T1" --config "$WORK/ops.json" >/dev/null || fail "connect resume"
wait_for 5 "status active after resume" status_is "$T1" active
works "$P1" || fail "tunnel does not serve after resume"

step "TTL: the tunnel expires and its port closes"
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name short-lived --ttl 6 --keep
T2=$TUNNEL_ID P2=$TUNNEL_PORT
# Seen once in CI: a connection refused by the kernel right after expose
# reported ready, with no accept logged by the hub; retry briefly and name
# the port so a recurrence can be traced.
wait_for 4 "ttl tunnel $T2 serving on port $P2 before expiry" works "$P2"
wait_for 15 "status expired" status_is "$T2" expired
wait_for 5 "port $P2 closed after expiry" port_closed "$P2"

step "delete closes the port"
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name doomed --keep
T3=$TUNNEL_ID P3=$TUNNEL_PORT
works "$P3" || fail "tunnel does not serve before delete"
"$CLI_BIN" rm "$T3" --config "$WORK/ops.json" >/dev/null || fail "connect rm"
wait_for 5 "port $P3 closed after delete" port_closed "$P3"
api GET "/api/v1/tunnels/$T3"
[ "$HTTP_STATUS" = 404 ] || fail "deleted tunnel still answers $HTTP_STATUS"

step "a re-run of expose after a crash adopts its tunnel and port; another target is refused"
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name crashy
T4=$TUNNEL_ID P4=$TUNNEL_PORT
kill -9 "$EXPOSE_PID"
wait "$EXPOSE_PID" 2>/dev/null || true
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name crashy
[ "$TUNNEL_ID" = "$T4" ] || fail "re-run created tunnel $TUNNEL_ID instead of adopting $T4"
[ "$TUNNEL_PORT" = "$P4" ] || fail "re-run moved the hub port from $P4 to $TUNNEL_PORT"
wait_for 5 "adopted tunnel serving on its port $P4" works "$P4"
OTHER=$(free_port)
if "$CLI_BIN" expose "127.0.0.1:$OTHER" --public --protocol tcp --name crashy \
    --config "$WORK/ops.json" >/dev/null 2>"$WORK/adopt-refused.log"; then
    fail "expose of another target under a taken name succeeded"
fi
[ "$(wc -l <"$WORK/adopt-refused.log")" = 1 ] || fail "refusal is not one line: $(cat "$WORK/adopt-refused.log")"
grep -q "already exists.*its target differs" "$WORK/adopt-refused.log" ||
    fail "refusal does not say why: $(cat "$WORK/adopt-refused.log")"
stop_pid "$EXPOSE_PID"
wait_for 5 "port $P4 closed after the adopting expose exited" port_closed "$P4"

step "hub kill -9 and restart: the agent reconnects and the same port serves within 10 s"
kill -9 "$HUB_PID"
wait "$HUB_PID" 2>/dev/null || true
hub_start
start=$(date +%s)
wait_for 10 "the same port serving after the hub restart" works "$P1"
echo "served again $(($(date +%s) - start)) s after the restart"
status_is "$T1" active || fail "status after reconnect: $(tunnel_status "$T1")"

step "agent killed: status leaves active within the ping timeout, returns with the agent"
kill -9 "$E1"
wait "$E1" 2>/dev/null || true
start=$(date +%s)
wait_for 12 "status to leave active after the agent died" not_active "$T1"
echo "status left active $(($(date +%s) - start)) s after the agent died"
refused "$P1" || fail "an offline agent's port did not refuse at once"
bg daemon "$CLI_BIN" agent --config "$WORK/ops.json"
wait_for 10 "status active with the daemon" status_is "$T1" active
works "$P1" || fail "tunnel does not serve through the daemon"

step "garbage on the API port, the agent endpoint and a tunnel port"
for p in "$HUB_PORT" "$P1"; do
    for _ in 1 2 3; do "$PY" "$TCPTOOL" garbage 127.0.0.1 "$p" 65536; done
done
# A WebSocket upgrade to /agent followed by garbage instead of a handshake.
"$PY" - "$HUB_PORT" <<'EOF'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"GET /agent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Protocol: connect.v1\r\n\r\n")
s.recv(4096)
s.sendall(os.urandom(100000))
s.close()
EOF
curl -sf "$HUB_URL/api/v1/health" >/dev/null || fail "hub unhealthy after garbage"
kill -0 "$HUB_PID" || fail "hub died"
works "$P1" || fail "tunnel broken after garbage"

echo "test_tunnel_lifecycle: all checks passed"
