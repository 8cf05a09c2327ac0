#!/usr/bin/env bash
# User story: a developer exposes a web app, a tester hits it through the
# public URL and a share link, and the developer runs `connect inspect web`
# to see each request (method, path, status, time), looks at one in detail
# through the API (headers with Authorization, cookies and Set-Cookie
# masked; bodies up to the hub's cap), and replays one: the app sees it
# again, while a replay through a revoked share is refused by the edge
# (410) and never reaches the app. The hub keeps at most --inspect-keep
# records per tunnel, and `connect inspect --follow` shows new requests.
source "$(dirname "$0")/lib.sh"

KEEP=20
hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --inspect-body-max 64 --inspect-keep "$KEEP"
agent_enroll dev
CFG=(--config "$WORK/dev.json")

# The app: logs every request it sees (method, path, authorization, body)
# one line each, answers with a Set-Cookie and a short body.
cat >"$WORK/app.py" <<'EOF'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[2]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with open(LOG, "a") as f:
            f.write("%s %s auth=%s body=%s\n" % (self.command, self.path,
                    self.headers.get("Authorization", "-"), body.decode("latin-1")))
        out = ("ok %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Set-Cookie", "session=RESPSECRET42; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = any

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
APP_PORT=$(free_port)
APP_LOG=$WORK/app-requests.txt
: >"$APP_LOG"
bg app "$PY" "$WORK/app.py" "$APP_PORT" "$APP_LOG"
wait_port 127.0.0.1 "$APP_PORT"
expose dev "127.0.0.1:$APP_PORT" --public --protocol http --name web
TID=$TUNNEL_ID
HOST=web.localhost:$EDGE_PORT
URL=http://127.0.0.1:$EDGE_PORT

req() { # req PATH [curl args]: a request through the public URL
    local p=$1
    shift
    curl -s -o /dev/null -m 10 -w '%{http_code}' -H "Host: $HOST" "$@" "$URL$p"
}
seen() { grep -c " $1 " "$APP_LOG" || true; } # times the app saw PATH
listed() { # listed PATTERN: a record of the tunnel matches (grep -q)
    curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$HUB_URL/api/v1/tunnels/$TID/requests" |
        grep -q "$1"
}
kept() { curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$HUB_URL/api/v1/requests/$1"; }
newest_id() {
    api GET "/api/v1/tunnels/$TID/requests?limit=1"
    echo "$BODY" | json_get requests.0.id
}

step "a request with credentials and cookies is recorded, its secrets masked"
[ "$(req '/hello?x=1' -H 'Authorization: Bearer AUTHSECRET42' \
    -H 'Cookie: sid=COOKIESECRET42; theme=dark')" = 200 ] || fail "GET /hello"
wait_for 5 "the record" listed hello
RID=$(newest_id)
api GET "/api/v1/requests/$RID"
[ "$HTTP_STATUS" = 200 ] || fail "GET request: $HTTP_STATUS $BODY"
echo "$BODY" >"$WORK/record.json"
for s in AUTHSECRET42 COOKIESECRET42 RESPSECRET42 dark; do
    grep -q "$s" "$WORK/record.json" && fail "the record shows $s: $BODY"
done
"$PY" - "$WORK/record.json" <<'EOF' || fail "record: $BODY"
import json, sys
r = json.load(open(sys.argv[1]))
h = {x["name"].lower(): x["value"] for x in r["request"]["headers"]}
assert r["method"] == "GET" and r["path"] == "/hello?x=1", r
assert r["status"] == 200 and r["response"]["status"] == 200, r
assert h["authorization"] == "Bearer ***", h
assert h["cookie"] == "sid=***; theme=***", h
rh = {x["name"].lower(): x["value"] for x in r["response"]["headers"]}
assert rh["set-cookie"] == "session=***; Path=/; HttpOnly", rh
assert r["response"]["body"] == "ok /hello?x=1\n", r["response"]
assert r["durationMs"] >= 0 and r["firstByteMs"] >= 0 and r["client"].startswith("127.0.0.1:"), r
assert r["shareId"] is None and r["tunnelId"], r
EOF

step "bodies are kept up to --inspect-body-max; such a request cannot be replayed"
BIG=$(printf 'b%.0s' $(seq 1 200))
[ "$(req /upload -X POST --data "$BIG")" = 200 ] || fail "POST /upload"
wait_for 5 "the upload record" listed upload
BIG_RID=$(newest_id)
api GET "/api/v1/requests/$BIG_RID"
echo "$BODY" >"$WORK/big.json"
"$PY" - "$WORK/big.json" <<'EOF' || fail "capped record: $BODY"
import json, sys
q = json.load(open(sys.argv[1]))["request"]
assert len(q["body"]) == 64 and q["bodyBytes"] == 200 and q["bodyComplete"] is False, q
EOF
api POST "/api/v1/requests/$BIG_RID/replay"
[ "$HTTP_STATUS" = 409 ] || fail "replay of a cut body: $HTTP_STATUS $BODY"
echo "$BODY" | grep -q "not recorded whole" || fail "409 message: $BODY"

step "paging: limit, before, after; unknown arguments are refused"
for i in 1 2 3 4 5; do req "/page$i" >/dev/null; done
wait_for 5 "page5" listed page5
api GET "/api/v1/tunnels/$TID/requests?limit=2"
[ "$(echo "$BODY" | json_get requests.0.path)" = /page5 ] || fail "newest first: $BODY"
[ "$(echo "$BODY" | json_get requests.1.path)" = /page4 ] || fail "second: $BODY"
NB=$(echo "$BODY" | json_get nextBefore)
api GET "/api/v1/tunnels/$TID/requests?limit=2&before=$NB"
[ "$(echo "$BODY" | json_get requests.0.path)" = /page3 ] || fail "before: $BODY"
api GET "/api/v1/tunnels/$TID/requests?after=$NB&limit=1"
[ "$(echo "$BODY" | json_get requests.0.path)" = /page5 ] || fail "after: $BODY"
api GET "/api/v1/tunnels/$TID/requests?cursor=1"
[ "$HTTP_STATUS" = 422 ] || fail "unknown query argument: $HTTP_STATUS"
api GET "/api/v1/tunnels/$TID/requests?limit=0"
[ "$HTTP_STATUS" = 422 ] || fail "limit=0: $HTTP_STATUS"
api GET "/api/v1/requests/999999"
[ "$HTTP_STATUS" = 404 ] || fail "unknown request: $HTTP_STATUS"

step "replay: the app sees the request again, body included, credentials left out"
[ "$(req /echo -X POST -H 'Authorization: Bearer AUTHSECRET42' --data 'hello=world')" = 200 ] ||
    fail "POST /echo"
wait_for 5 "the echo record" listed echo
ECHO_RID=$(newest_id)
[ "$(seen /echo)" = 1 ] || fail "app saw /echo $(seen /echo) times"
api POST "/api/v1/requests/$ECHO_RID/replay"
[ "$HTTP_STATUS" = 202 ] || fail "replay: $HTTP_STATUS $BODY"
NEW=$(echo "$BODY" | json_get id)
wait_for 10 "the replay's record" kept "$NEW"
api GET "/api/v1/requests/$NEW"
[ "$(echo "$BODY" | json_get status)" = 200 ] || fail "replay status: $BODY"
[ "$(echo "$BODY" | json_get replayOf)" = "$ECHO_RID" ] || fail "replayOf: $BODY"
[ "$(seen /echo)" = 2 ] || fail "app saw /echo $(seen /echo) times after the replay"
tail -1 "$APP_LOG" | grep -q '^POST /echo auth=- body=hello=world$' ||
    fail "replayed request: $(tail -1 "$APP_LOG")"

step "connect replay RID prints the replay's line"
"$CLI_BIN" replay "$ECHO_RID" "${CFG[@]}" >"$WORK/replay.out" 2>"$WORK/replay.err" ||
    fail "connect replay: $(cat "$WORK/replay.err")"
grep -qE "POST +/echo +200 .*\(replay of #$ECHO_RID\)" "$WORK/replay.out" ||
    fail "connect replay output: $(cat "$WORK/replay.out")"
[ "$(seen /echo)" = 3 ] || fail "app saw /echo $(seen /echo) times after connect replay"

step "through a share: recorded with the share (its token masked), replayed, refused once revoked"
"$CLI_BIN" share web "${CFG[@]}" --expires 1h --methods GET,POST --auth tester --json \
    >"$WORK/share.json" || fail "connect share"
SHARE_URL=$(json_get shareUrl <"$WORK/share.json")
SHARE_ID=$(json_get id <"$WORK/share.json")
SHARE_PW=$(json_get httpPassword <"$WORK/share.json")
secret "$SHARE_PW"
TOKEN_PART=${SHARE_URL#http://share-}
TOKEN_PART=${TOKEN_PART%%.*}
secret "$TOKEN_PART"
SHOST=${SHARE_URL#http://}
SHOST=${SHOST%/}
[ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' -H "Host: $SHOST" -u "tester:$SHARE_PW" \
    "$URL/shared")" = 200 ] || fail "GET through the share"
wait_for 5 "the share record" listed shared
S_RID=$(newest_id)
api GET "/api/v1/requests/$S_RID"
[ "$(echo "$BODY" | json_get shareId)" = "$SHARE_ID" ] || fail "shareId: $BODY"
echo "$BODY" | grep -q "$TOKEN_PART" && fail "the record shows the share token"
echo "$BODY" | grep -q '"share-\*\*\*.localhost' || fail "masked Host: $BODY"
echo "$BODY" | grep -q '"Basic \*\*\*"' || fail "masked basic auth: $BODY"
api POST "/api/v1/requests/$S_RID/replay"
[ "$HTTP_STATUS" = 202 ] || fail "share replay: $HTTP_STATUS $BODY"
NEW=$(echo "$BODY" | json_get id)
wait_for 10 "the share replay's record" kept "$NEW"
api GET "/api/v1/requests/$NEW"
[ "$(echo "$BODY" | json_get status)" = 200 ] || fail "share replay status: $BODY"
[ "$(seen /shared)" = 2 ] || fail "app saw /shared $(seen /shared) times"
api DELETE "/api/v1/shares/$SHARE_ID"
[ "$HTTP_STATUS" = 200 ] || fail "revoke: $HTTP_STATUS"
api POST "/api/v1/requests/$S_RID/replay"
[ "$HTTP_STATUS" = 202 ] || fail "replay after revocation: $HTTP_STATUS $BODY"
NEW=$(echo "$BODY" | json_get id)
wait_for 10 "the refused replay's record" kept "$NEW"
api GET "/api/v1/requests/$NEW"
[ "$(echo "$BODY" | json_get status)" = 410 ] || fail "replay through a revoked share: $BODY"
[ "$(seen /shared)" = 2 ] || fail "a refused replay reached the app"

step "connect inspect lists requests; --follow shows a new one"
"$CLI_BIN" inspect web "${CFG[@]}" --limit 5 >"$WORK/inspect.out" 2>"$WORK/inspect.err" ||
    fail "connect inspect: $(cat "$WORK/inspect.err")"
[ "$(wc -l <"$WORK/inspect.out")" = 5 ] || fail "inspect --limit 5: $(cat "$WORK/inspect.out")"
grep -qE '^#[0-9]+ +[0-9TZ:.-]+ +GET +/shared +410 ' "$WORK/inspect.out" ||
    fail "inspect line: $(cat "$WORK/inspect.out")"
"$CLI_BIN" inspect web "${CFG[@]}" --follow --limit 1 >"$WORK/follow.out" 2>"$WORK/follow.err" &
PIDS+=($!)
FOLLOW_PID=$!
wait_for 10 "inspect --follow to start" test -s "$WORK/follow.out"
[ "$(req /followed-path)" = 200 ] || fail "GET /followed-path"
wait_for 10 "inspect --follow to show the new request" grep -q 'GET  *\/followed-path  *200' \
    "$WORK/follow.out"
stop_pid "$FOLLOW_PID"
forget_pid "$FOLLOW_PID"

step "retention: $KEEP+10 requests leave the newest $KEEP"
for i in $(seq 1 $((KEEP + 10))); do req "/bulk$i" >/dev/null; done
wait_for 10 "the last bulk record" listed "/bulk$((KEEP + 10))\""
api GET "/api/v1/tunnels/$TID/requests?limit=1000"
COUNT=$(echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["requests"]))')
[ "$COUNT" = "$KEEP" ] || fail "kept $COUNT records, want $KEEP"
[ "$(echo "$BODY" | json_get "requests.$((KEEP - 1)).path")" = /bulk11 ] ||
    fail "the oldest kept: $(echo "$BODY" | json_get "requests.$((KEEP - 1)).path")"

step "another workspace sees none of it"
api POST /api/v1/workspaces '{"name":"other"}'
OTHER_WS=$(echo "$BODY" | json_get id)
api POST "/api/v1/workspaces/$OTHER_WS/tokens" '{"name":"t","scope":"admin"}'
OTHER_TOKEN=$(echo "$BODY" | json_get token)
secret "$OTHER_TOKEN"
TOKEN=$OTHER_TOKEN api GET "/api/v1/requests/$RID"
[ "$HTTP_STATUS" = 404 ] || fail "another workspace reads a record: $HTTP_STATUS"
TOKEN=$OTHER_TOKEN api POST "/api/v1/requests/$ECHO_RID/replay"
[ "$HTTP_STATUS" = 404 ] || fail "another workspace replays: $HTTP_STATUS"
echo "PASS test_inspect"
