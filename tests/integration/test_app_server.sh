#!/usr/bin/env bash
# User story: a dev tool (an IDE, a test runner) drives `connect app-server`
# on loopback to open tunnels for the processes it starts, Portr-style: it
# creates an http and a tcp tunnel with curl, reaches both through their
# tunnel_url, lists them, follows their events, gets callbacks at a local
# receiver (which is down at first: the app-server retries and logs the
# failures), shuts one down and deletes another; every error answers with
# {"message": ...} and the right status (400, 401, 404, 405, 413, 500), and
# when the hub goes away the tunnels turn unhealthy and come back. On
# SIGTERM the app-server deletes its tunnels on the hub and exits 0. It
# refuses to listen off loopback without a token.
source "$(dirname "$0")/lib.sh"
HTTPTOOL=$SRC/tests/integration/httptool.py

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"
agent_enroll apps
export CONNECT_CONFIG=$WORK/apps.json
# The hub token comes from the config; the app-server's own token from the
# environment (never argv, never a file of $WORK).
APP_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
secret "$APP_TOKEN"

WEB_PORT=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB_PORT"
wait_port 127.0.0.1 "$WEB_PORT"
tcptool_start
SVC_PID=$LAST_PID

step "refuses to listen off loopback without a token"
set +e
"$CLI_BIN" app-server --host 0.0.0.0 --port "$(free_port)" >"$WORK/refuse.out" 2>"$WORK/refuse.err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "app-server --host 0.0.0.0 without a token exited $rc"
grep -q "refusing to listen on 0.0.0.0 without a token" "$WORK/refuse.err" ||
    fail "refusal message: $(cat "$WORK/refuse.err")"
[ "$(wc -l <"$WORK/refuse.err")" = 1 ] || fail "more than one line: $(cat "$WORK/refuse.err")"

step "starts on loopback with a token, prints one JSON line"
APP_PORT=$(free_port)
APP=http://127.0.0.1:$APP_PORT
CONNECT_APP_SERVER_TOKEN=$APP_TOKEN CONNECT_HEALTH_INTERVAL_MS=300 \
    bg app "$CLI_BIN" app-server --port "$APP_PORT" --json
APP_PID=$LAST_PID
wait_for 15 "the app-server's JSON line" grep -q '"url"' "$WORK/app.log"
[ "$(grep -m1 '^{' "$WORK/app.log" | json_get url)" = "$APP" ] || fail "ready line: $(cat "$WORK/app.log")"

step "it listens on 127.0.0.1 only"
"$PY" - "$APP_PORT" <<'EOF' || fail "listening sockets on port $APP_PORT"
import sys
port = int(sys.argv[1])
found = []
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(f).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":  # LISTEN
            found.append(addr)
assert found == ["0100007F"], found  # 127.0.0.1, and nothing else
EOF

step "a second app-server on the same port fails with one line"
set +e
"$CLI_BIN" app-server --port "$APP_PORT" >"$WORK/busy.out" 2>"$WORK/busy.err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "app-server on a busy port exited $rc: $(cat "$WORK/busy.err")"
grep -q "cannot listen on 127.0.0.1:$APP_PORT" "$WORK/busy.err" || fail "busy port: $(cat "$WORK/busy.err")"

# call METHOD PATH [BODY] [curl args]: sets CODE and RESP (the body), with the token.
call() {
    local method=$1 path=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    local args=(-s -m 30 -o "$WORK/resp" -w '%{http_code}' -X "$method")
    if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data "$body"); fi
    CODE=$(curl "${args[@]}" -H "Authorization: Bearer $APP_TOKEN" "$@" "$APP$path")
    RESP=$(cat "$WORK/resp")
}
expect() { # expect CODE: the last call answered CODE
    [ "$CODE" = "$1" ] || fail "want $1, got $CODE: $RESP"
}
message_is_json() {
    echo "$RESP" | "$PY" -c 'import json,sys; m=json.load(sys.stdin)["message"]; assert isinstance(m,str) and m' ||
        fail "not a {\"message\"} error: $RESP"
}

step "health answers without a token"
[ "$(curl -s -m 5 "$APP/api/v1/health" | json_get status)" = ok ] || fail "health"

step "401 without a token and with a wrong one"
CODE=$(curl -s -m 5 -o "$WORK/resp" -w '%{http_code}' "$APP/api/v1/tunnels")
RESP=$(cat "$WORK/resp")
expect 401
message_is_json
CODE=$(curl -s -m 5 -o "$WORK/resp" -w '%{http_code}' -H 'Authorization: Bearer wrong' "$APP/api/v1/tunnels")
RESP=$(cat "$WORK/resp")
expect 401
message_is_json

step "400: bad JSON, not an object, bad fields (every one named)"
call POST /api/v1/tunnels '{"type":'
expect 400
message_is_json
echo "$RESP" | grep -q 'invalid JSON' || fail "bad JSON message: $RESP"
call POST /api/v1/tunnels '[1]'
expect 400
call POST /api/v1/tunnels '{"type":"ftp","port":70000,"callback_url":"ftp://x","bogus":1}'
expect 400
for f in type port callback_url bogus; do
    echo "$RESP" | grep -q "$f" || fail "the 400 does not name $f: $RESP"
done
call POST /api/v1/tunnels '{"type":"tcp","port":80,"subdomain":"x"}'
expect 400

step "404 unknown id and route, 405 wrong method (with Allow)"
call GET /api/v1/tunnels/00000000-0000-4000-8000-000000000000
expect 404
message_is_json
call DELETE /api/v1/tunnels/nope
expect 404
call POST /api/v1/tunnels/00000000-0000-4000-8000-000000000000/shutdown
expect 404
call GET /api/v1/nothing
expect 404
call PUT /api/v1/tunnels '{}'
expect 405
message_is_json
curl -s -m 5 -o /dev/null -D "$WORK/hdr" -X PATCH -H "Authorization: Bearer $APP_TOKEN" "$APP/api/v1/tunnels" || true
grep -qi '^allow: GET, POST' "$WORK/hdr" || fail "405 without Allow: $(cat "$WORK/hdr")"
call GET /api/v1/tunnels/00000000-0000-4000-8000-000000000000/shutdown
expect 405
call POST /api/v1/events
expect 405

step "413 for a body over 64 KiB"
head -c 70000 /dev/zero | tr '\0' 'a' >"$WORK/big"
CODE=$(curl -s -m 10 -o "$WORK/resp" -w '%{http_code}' -H "Authorization: Bearer $APP_TOKEN" \
    -H 'Content-Type: application/json' --data-binary @"$WORK/big" "$APP/api/v1/tunnels")
RESP=$(cat "$WORK/resp")
expect 413

step "callbacks: the receiver is down at first"
CB_PORT=$(free_port)
CB_LOG=$WORK/callbacks.jsonl
cat >"$WORK/receiver.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
log = open(sys.argv[2], "a")
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        log.write(json.dumps({"path": self.path, "ctype": self.headers.get("Content-Type"),
                              "body": json.loads(body)}) + "\n")
        log.flush()
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF

step "create an http tunnel (with callbacks) and a tcp tunnel"
call POST /api/v1/tunnels "{\"type\":\"http\",\"port\":$WEB_PORT,\"host\":\"127.0.0.1\",\"subdomain\":\"appweb\",\"name\":\"web app\",\"callback_url\":\"http://127.0.0.1:$CB_PORT/hook\",\"callback_urls\":[\"http://localhost:$CB_PORT/second?x=1\"]}"
expect 201
HTTP_ID=$(echo "$RESP" | json_get id)
HTTP_URL=$(echo "$RESP" | json_get tunnel_url)
HTTP_HUB_ID=$(echo "$RESP" | json_get hub_tunnel_id)
[ "$HTTP_URL" = "http://appweb.localhost:$EDGE_PORT/" ] || fail "tunnel_url: $RESP"
for f in status started_at updated_at stopped_at last_error remote_port; do
    echo "$RESP" | grep -q "\"$f\"" || fail "the tunnel lacks $f: $RESP"
done
call POST /api/v1/tunnels "{\"type\":\"tcp\",\"port\":$SVC}"
expect 201
TCP_ID=$(echo "$RESP" | json_get id)
TCP_URL=$(echo "$RESP" | json_get tunnel_url)
TCP_PORT=$(echo "$RESP" | json_get remote_port)
[ "$TCP_URL" = "tcp://127.0.0.1:$TCP_PORT" ] || fail "tcp tunnel_url: $RESP"

status_of() { call GET "/api/v1/tunnels/$1" && echo "$RESP" | json_get status; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
wait_for 20 "the http tunnel running" is_status "$HTTP_ID" running
wait_for 20 "the tcp tunnel running" is_status "$TCP_ID" running

step "traffic through both tunnel_urls"
[ "$(curl -s -m 10 "${HTTP_URL}hello")" = "ok /hello" ] || fail "GET through $HTTP_URL"
serves "$TCP_PORT" || fail "64 KiB through $TCP_URL"

step "the failed callback deliveries are logged, then retried to a live receiver"
wait_for 10 "a failed delivery in the log" grep -q "callback to http://127.0.0.1:$CB_PORT/hook failed" "$WORK/app.log"
bg receiver "$PY" "$WORK/receiver.py" "$CB_PORT" "$CB_LOG"
wait_port 127.0.0.1 "$CB_PORT"
got_started() { grep -c '"event": "started"' "$CB_LOG" | grep -qx 2; }
wait_for 20 "the started event at both callback URLs" got_started
"$PY" - "$CB_LOG" "$HTTP_ID" <<'EOF' || fail "callbacks: $(cat "$CB_LOG")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
paths = sorted(r["path"] for r in rows if r["body"]["event"] == "started")
assert paths == ["/hook", "/second?x=1"], paths
for r in rows:
    assert r["ctype"] == "application/json", r
    assert r["body"]["tunnel_id"] == sys.argv[2], r
    assert r["body"]["tunnel"]["id"] == sys.argv[2], r
EOF

step "list, get and events filtered by ?tunnel_id="
call GET /api/v1/tunnels
expect 200
[ "$(echo "$RESP" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))')" = 2 ] ||
    fail "list: $RESP"
call GET "/api/v1/events?tunnel_id=$TCP_ID"
expect 200
echo "$RESP" | "$PY" -c '
import json, sys
ev = json.load(sys.stdin)["events"]
assert ev and all(e["tunnel_id"] == sys.argv[1] for e in ev), ev
assert [e["type"] for e in ev] == ["started"], ev' "$TCP_ID" || fail "events of the tcp tunnel: $RESP"
call GET /api/v1/events
[ "$(echo "$RESP" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')" = 2 ] ||
    fail "all events: $RESP"

step "the hub goes away: unhealthy, 500 for a create; it comes back: reconnected"
stop_pid "$HUB_PID"
forget_pid "$HUB_PID"
wait_for 20 "the http tunnel unhealthy" is_status "$HTTP_ID" unhealthy
call GET "/api/v1/tunnels/$HTTP_ID"
[ -n "$(echo "$RESP" | json_get last_error)" ] || fail "unhealthy without last_error: $RESP"
call POST /api/v1/tunnels "{\"type\":\"tcp\",\"port\":$SVC}"
expect 500
message_is_json
call GET /api/v1/tunnels
[ "$(echo "$RESP" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))')" = 2 ] ||
    fail "a failed create left a tunnel behind: $RESP"
hub_start --http-port "$EDGE_PORT"
wait_for 30 "the http tunnel running again" is_status "$HTTP_ID" running
wait_for 30 "the tcp tunnel running again" is_status "$TCP_ID" running
call GET "/api/v1/events?tunnel_id=$HTTP_ID"
echo "$RESP" | "$PY" -c '
import json, sys
t = [e["type"] for e in json.load(sys.stdin)["events"]]
assert t == ["started", "unhealthy", "reconnected"], t' || fail "events after the hub restart: $RESP"
got_reconnected() { grep -c '"event": "reconnected"' "$CB_LOG" | grep -qx 2; }
wait_for 20 "the reconnected callbacks" got_reconnected
[ "$(curl -s -m 10 "${HTTP_URL}again")" = "ok /again" ] || fail "GET after the hub restart"

step "the tcp target stops answering its probe: unhealthy; back: reconnected"
stop_pid "$SVC_PID"
forget_pid "$SVC_PID"
wait_for 20 "the tcp tunnel unhealthy" is_status "$TCP_ID" unhealthy
call GET "/api/v1/tunnels/$TCP_ID"
echo "$RESP" | json_get last_error | grep -q "target" || fail "unhealthy target, last_error: $RESP"
bg svc2 "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"
wait_for 20 "the tcp tunnel running again" is_status "$TCP_ID" running
serves "$TCP_PORT" || fail "64 KiB through $TCP_URL after the target came back"
call GET "/api/v1/events?tunnel_id=$TCP_ID"
echo "$RESP" | "$PY" -c '
import json, sys
t = [e["type"] for e in json.load(sys.stdin)["events"]]
assert t == ["started", "unhealthy", "reconnected", "unhealthy", "reconnected"], t' ||
    fail "events of the tcp tunnel: $RESP"

step "a tunnel deleted on the hub behind the app-server's back: failed"
call POST /api/v1/tunnels "{\"type\":\"tcp\",\"port\":$SVC}"
expect 201
DOOMED_ID=$(echo "$RESP" | json_get id)
wait_for 20 "the tunnel running" is_status "$DOOMED_ID" running
api DELETE "/api/v1/tunnels/$(echo "$RESP" | json_get hub_tunnel_id)"
[ "$HTTP_STATUS" = 204 ] || [ "$HTTP_STATUS" = 200 ] || fail "hub delete: $HTTP_STATUS $BODY"
wait_for 20 "the tunnel failed" is_status "$DOOMED_ID" failed
call GET "/api/v1/events?tunnel_id=$DOOMED_ID"
echo "$RESP" | "$PY" -c '
import json, sys
ev = json.load(sys.stdin)["events"]
assert [e["type"] for e in ev] == ["started", "failed"], ev
assert "deleted on the hub" in ev[-1]["message"], ev' || fail "events of the doomed tunnel: $RESP"
call DELETE "/api/v1/tunnels/$DOOMED_ID"
expect 200

step "shutdown keeps the record (stopped), and the hub tunnel is deleted"
call POST "/api/v1/tunnels/$HTTP_ID/shutdown"
expect 200
[ "$(echo "$RESP" | json_get status)" = stopped ] || fail "shutdown: $RESP"
[ -n "$(echo "$RESP" | json_get stopped_at)" ] || fail "no stopped_at: $RESP"
hub_gone() { api GET "/api/v1/tunnels/$1" && [ "$HTTP_STATUS" = 404 ]; }
wait_for 20 "the http tunnel deleted on the hub" hub_gone "$HTTP_HUB_ID"
got_stopped() { grep -c '"event": "stopped"' "$CB_LOG" | grep -qx 2; }
wait_for 20 "the stopped callbacks" got_stopped
is_status "$HTTP_ID" stopped || fail "the stopped tunnel is not listed as stopped"

step "DELETE forgets a tunnel"
call POST /api/v1/tunnels "{\"type\":\"tcp\",\"port\":$SVC,\"name\":\"short-lived\"}"
expect 201
SHORT_ID=$(echo "$RESP" | json_get id)
SHORT_HUB_ID=$(echo "$RESP" | json_get hub_tunnel_id)
call DELETE "/api/v1/tunnels/$SHORT_ID"
expect 200
call GET "/api/v1/tunnels/$SHORT_ID"
expect 404
wait_for 20 "the deleted tunnel gone from the hub" hub_gone "$SHORT_HUB_ID"

step "SIGTERM: the remaining tunnel is deleted on the hub, exit 0"
hub_count() { # the agent's tunnels on the hub
    api GET "/api/v1/tunnels?agentId=$AGENT_ID"
    echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))'
}
[ "$(hub_count)" = 1 ] || fail "the hub's tunnels before SIGTERM: $BODY"
kill -TERM "$APP_PID"
set +e
wait "$APP_PID"
rc=$?
set -e
forget_pid "$APP_PID"
[ "$rc" = 0 ] || fail "app-server exited $rc after SIGTERM"
[ "$(hub_count)" = 0 ] || fail "tunnels left on the hub after SIGTERM: $BODY"

step "SIGINT does the same"
CONNECT_APP_SERVER_TOKEN=$APP_TOKEN bg app2 "$CLI_BIN" app-server --port "$APP_PORT" --json
APP_PID=$LAST_PID
wait_for 15 "the second app-server's JSON line" grep -q '"url"' "$WORK/app2.log"
call POST /api/v1/tunnels "{\"type\":\"tcp\",\"port\":$SVC}"
expect 201
wait_for 20 "the tunnel running" is_status "$(echo "$RESP" | json_get id)" running
kill -INT "$APP_PID"
set +e
wait "$APP_PID"
rc=$?
set -e
forget_pid "$APP_PID"
[ "$rc" = 0 ] || fail "app-server exited $rc after SIGINT"
[ "$(hub_count)" = 0 ] || fail "tunnels left on the hub after SIGINT: $BODY"
echo "OK"
