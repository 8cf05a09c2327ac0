#!/usr/bin/env bash
# User story: a developer runs `connect share web --expires 24h --methods
# GET,POST --paths '/api/*' --rate-limit 5` and sends the link to a tester.
# Every request the tester makes is checked in the data path, each request
# of a keep-alive connection too: 405 with Allow for other methods, 403 for
# other paths (a traversal matrix never slips through), exactly N per minute
# then 429 with Retry-After, 401 with WWW-Authenticate without the share's
# password, 410 once revoked or expired (with a share.expired event), an
# access log served with paging, and large bodies both ways intact.
source "$(dirname "$0")/lib.sh"
HTTPTOOL=$SRC/tests/integration/httptool.py
BIG_MIB=${CN_BIG_MIB:-1024}

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"
agent_enroll dev
WEB_PORT=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB_PORT"
wait_port 127.0.0.1 "$WEB_PORT"
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name web
CFG=(--config "$WORK/dev.json")

code() { # code URL [curl args]
    local url=$1
    shift
    curl -s -o "$WORK/resp" -m 10 -w '%{http_code}' "$@" "$url"
}

step "connect share: the link, shown once"
"$CLI_BIN" share web "${CFG[@]}" --expires 24h --methods GET,POST --paths '/api/*,/health' \
    --rate-limit 1000 --name tester --description "for the tester" --json >"$WORK/share.json" ||
    fail "connect share"
SHARE_URL=$(json_get shareUrl <"$WORK/share.json")
SHARE_ID=$(json_get id <"$WORK/share.json")
case "$SHARE_URL" in
http://share-*.localhost:$EDGE_PORT/) ;;
*) fail "shareUrl '$SHARE_URL'" ;;
esac
TOKEN_PART=${SHARE_URL#http://share-}
TOKEN_PART=${TOKEN_PART%%.*}
[ ${#TOKEN_PART} -ge 26 ] || fail "share token too short for 128 bits: $TOKEN_PART"
"$CLI_BIN" link web "${CFG[@]}" >"$WORK/link.txt" || fail "connect link (alias)"
grep -q '^share link  http://share-' "$WORK/link.txt" || fail "link output: $(cat "$WORK/link.txt")"
HOSTHDR=${SHARE_URL#http://}
HOSTHDR=${HOSTHDR%/}
api GET /api/v1/shares
echo "$BODY" | grep -q "$TOKEN_PART" && fail "the share list shows the token"
[ "$(code "${SHARE_URL}api/users")" = 200 ] || fail "allowed GET"
grep -q '^ok /api/users$' "$WORK/resp" || fail "body $(cat "$WORK/resp")"

step "the path-traversal matrix (curl --path-as-is)"
# path -> expected status. Allowed: /api/* and /health. Traversals are
# normalised first and never reach what the rules do not allow.
MATRIX="
/api 200
/api/ 200
/api/users 200
/api//users 200
/api/./users 200
/x/../api/users 200
/ap%69/users 200
/health 200
/health/x 200
/apiX 403
/apix/users 403
/api.json 403
/admin 403
/ 403
/api/../admin 403
/api/%2e%2e/admin 403
/api/%2E%2E/admin 403
/api/.%2e/admin 403
/api/%2e./admin 403
/api%2f..%2fadmin 403
/api%2F..%2Fadmin 403
/api/..%2fadmin 403
/api%5c..%5cadmin 403
/api/x/../../admin 403
/api/./../admin 403
//admin 403
/./admin 403
/%2e%2e/api/../admin 403
/api/%2e%2e%2fadmin 403
/healthX 403
/health/../admin 403
/api/%00 400
/api/%zz 400
/api/..;/admin 400
"
n=0
while read -r path want; do
    [ -n "$path" ] || continue
    got=$(curl -s -o /dev/null -m 10 -w '%{http_code}' --path-as-is "http://$HOSTHDR$path")
    [ "$got" = "$want" ] || fail "path $path: got $got, want $want"
    n=$((n + 1))
done <<<"$MATRIX"
# Backslashes, which curl would not send raw.
"$PY" - "$EDGE_PORT" "$HOSTHDR" <<'EOF' || fail "backslash traversal"
import socket, sys
for path, want in ((b"/api\\..\\admin", b" 403 "), (b"\\api\\users", b" 400 ")):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: " + sys.argv[2].encode() + b"\r\nConnection: close\r\n\r\n")
    line = s.makefile("rb").readline()
    assert want in line, (path, line)
EOF
echo "path matrix: $((n + 2)) cases"

step "what the target sees is what was checked"
code "${SHARE_URL}api/a%20b/./c" >/dev/null
grep -q '^ok /api/a%20b/c$' "$WORK/resp" || fail "forwarded path: $(cat "$WORK/resp")"

step "method and path on one keep-alive connection"
"$PY" "$HTTPTOOL" keepalive "$EDGE_PORT" "$HOSTHDR" "GET /api/a 200" "DELETE /api/a 405:Allow" \
    "GET /admin 403" "POST /api/b 200" "PUT /api/c 405:Allow" "HEAD /api/d 200" "GET /health 200" ||
    fail "policy on a keep-alive connection"
curl -s -o /dev/null -D "$WORK/hdr" -X DELETE "${SHARE_URL}api/a"
grep -qi '^Allow: GET, HEAD, POST' "$WORK/hdr" || fail "Allow header: $(cat "$WORK/hdr")"

step "the per-minute limit: exactly N, then 429 with Retry-After"
"$CLI_BIN" share web "${CFG[@]}" --rate-limit 5 --json >"$WORK/limited.json" || fail "share --rate-limit 5"
LHOST=$(json_get shareUrl <"$WORK/limited.json")
LHOST=${LHOST#http://}
LHOST=${LHOST%/}
"$PY" "$HTTPTOOL" keepalive "$EDGE_PORT" "$LHOST" "GET /a 200" "GET /b 200" "GET /c 200" \
    "GET /d 200" "GET /e 200" "GET /f 429:Retry-After" "GET /g 429" || fail "exactly 5 a minute"
curl -s -o /dev/null -D "$WORK/hdr" "http://$LHOST/"
ra=$(grep -i '^Retry-After:' "$WORK/hdr" | tr -dc 0-9)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] || fail "Retry-After '$ra'"

step "basic auth on a share"
"$CLI_BIN" share web "${CFG[@]}" --auth tester --json >"$WORK/auth.json" || fail "share --auth"
AURL=$(json_get shareUrl <"$WORK/auth.json")
APASS=$(json_get httpPassword <"$WORK/auth.json")
[ ${#APASS} -ge 20 ] || fail "share password '$APASS'"
curl -s -o /dev/null -D "$WORK/hdr" "$AURL"
grep -q '^HTTP/1.1 401' "$WORK/hdr" || fail "no 401"
grep -qi '^WWW-Authenticate: Basic realm=' "$WORK/hdr" || fail "no WWW-Authenticate"
[ "$(code "$AURL" -u tester:nope)" = 401 ] || fail "wrong password accepted"
[ "$(code "${AURL}echo" -u "tester:$APASS")" = 200 ] || fail "right password refused"
if grep -qi authorization "$WORK/resp"; then fail "the share's credentials reached the target"; fi

step "revocation takes effect at once, on an open keep-alive connection too"
"$PY" - "$EDGE_PORT" "$HOSTHDR" "$HUB_URL" "$ADMIN_TOKEN" "$SHARE_ID" <<'EOF' || fail "revocation on keep-alive"
import http.client, sys, urllib.request
port, host, hub, token, sid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/api/x", headers={"Host": host}); r = c.getresponse(); r.read()
assert r.status == 200, r.status
sock = c.sock
req = urllib.request.Request(hub + "/api/v1/shares/" + sid, method="DELETE",
                             headers={"Authorization": "Bearer " + token})
assert urllib.request.urlopen(req).status == 200
# The next request on the same connection is refused: 410 when it beats the
# hub's once-a-second sweep, else the sweep has closed the idle connection.
try:
    c.request("GET", "/api/x", headers={"Host": host}); r = c.getresponse(); body = r.read()
    assert c.sock is sock, "reconnected"
    assert r.status == 410 and b"revoked" in body, (r.status, body)
    print("revoked: 410 on the same connection")
except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
    print("revoked: the idle keep-alive connection was closed")
EOF
"$CLI_BIN" share web "${CFG[@]}" --expires 1h --json >"$WORK/idle.json" || fail "share for the idle test"
IURL=$(json_get shareUrl <"$WORK/idle.json")
IID=$(json_get id <"$WORK/idle.json")
IHOST=${IURL#http://}
"$PY" - "$EDGE_PORT" "${IHOST%%:*}" "$HUB_URL" "$ADMIN_TOKEN" "$IID" <<'EOF' || fail "revocation closes idle keep-alive"
import socket, sys, time, urllib.request
port, host, hub, token, sid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.create_connection(("127.0.0.1", port), 10)
s.sendall(("GET /api/x HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
s.settimeout(10)
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(65536)
    assert d, "closed before the answer"
    head += d
assert head.startswith(b"HTTP/1.1 200"), head[:60]
req = urllib.request.Request(hub + "/api/v1/shares/" + sid, method="DELETE",
                             headers={"Authorization": "Bearer " + token})
assert urllib.request.urlopen(req).status == 200
t0 = time.monotonic()
try:
    while s.recv(65536):
        pass  # the rest of the 200's body
except ConnectionResetError:
    pass
ms = int((time.monotonic() - t0) * 1000)
print("   revoked: an idle keep-alive connection closed by the hub after %d ms" % ms)
assert ms < 3000, ms
EOF
[ "$(code "${SHARE_URL}api/x")" = 410 ] || fail "revoked share on a new connection"
api GET "/api/v1/events?limit=100"
echo "$BODY" | grep -q '"share.revoked"' || fail "no share.revoked event"
echo "$BODY" | grep -q '"share.created"' || fail "no share.created event"

step "revocation cuts a download in flight: the client sees a reset, not a clean end"
"$CLI_BIN" share web "${CFG[@]}" --expires 1h --json >"$WORK/cut.json" || fail "share for the cut"
CHOST=$(json_get shareUrl <"$WORK/cut.json")
CHOST=${CHOST#http://}
CHOST=${CHOST%/}
CID=$(json_get id <"$WORK/cut.json")
"$PY" - "$SRC/tests/integration" "$EDGE_PORT" "${CHOST%%:*}" "$HUB_URL" "$ADMIN_TOKEN" "$CID" <<'EOF' || fail "revocation of a download in flight"
import sys, time, urllib.request
sys.path.insert(0, sys.argv[1])
from httptool import download_started
port, host, hub, token, sid = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
total = 4 << 30  # far more than a slow reader takes in the test's time
s, got = download_started(port, host, total)
req = urllib.request.Request(hub + "/api/v1/shares/" + sid, method="DELETE",
                             headers={"Authorization": "Bearer " + token})
assert urllib.request.urlopen(req).status == 200
t0 = time.monotonic()
s.settimeout(10)
how = "open"
try:
    while time.monotonic() - t0 < 10:
        d = s.recv(65536)
        if not d:
            how = "eof"
            break
        got += len(d)
        time.sleep(0.01)  # a slow reader: the response is still far from done
except ConnectionResetError:
    how = "reset"
ms = int((time.monotonic() - t0) * 1000)
print("   revoked mid-download: %s after %d ms, %d of %d bytes read" % (how, ms, got, total))
assert how == "reset" and got < total, how
EOF

step "expiry: 410 in the data path, then swept into a share.expired event"
"$CLI_BIN" share web "${CFG[@]}" --expires 1h --json >"$WORK/exp.json" || fail "share --expires 1h"
EHOST=$(json_get shareUrl <"$WORK/exp.json")
EHOST=${EHOST#http://}
EHOST=${EHOST%/}
EID=$(json_get id <"$WORK/exp.json")
# Move its expiry into the past behind the hub's back (another writer on the
# WAL database, as a second hub would be).
"$PY" "$HTTPTOOL" keepalive "$EDGE_PORT" "$EHOST" "GET /a 200" || fail "fresh share"
"$PY" - "$EDGE_PORT" "$EHOST" "$WORK/hub.db" "$EID" <<'EOF' || fail "expiry on keep-alive"
import http.client, sqlite3, sys, time
port, host, db, sid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/a", headers={"Host": host}); r = c.getresponse(); r.read()
assert r.status == 200, r.status
con = sqlite3.connect(db, timeout=10)
con.execute("UPDATE shares SET expires_at = ? WHERE id = ?", (int(time.time() * 1000) - 1000, sid))
con.commit(); con.close()
c.request("GET", "/a", headers={"Host": host}); r = c.getresponse(); body = r.read()
assert r.status == 410 and b"expired" in body, (r.status, body)
EOF
expired_event() {
    api GET "/api/v1/events?limit=100"
    echo "$BODY" | grep -q '"share.expired"'
}
wait_for 10 "a share.expired event" expired_event
api GET "/api/v1/shares/$EID"
[ "$(echo "$BODY" | json_get status)" = expired ] || fail "status of the expired share: $BODY"

step "the access log, with paging"
api GET "/api/v1/shares/$SHARE_ID/logs?limit=5"
[ "$HTTP_STATUS" = 200 ] || fail "logs: $HTTP_STATUS $BODY"
"$PY" - "$BODY" <<'EOF' || fail "log page: $BODY"
import json, sys
d = json.loads(sys.argv[1])
logs = d["logs"]
assert len(logs) == 5 and d["nextBefore"] == logs[-1]["id"], d
assert logs[0]["status"] == 410, logs[0]        # newest first: the revoked request
for e in logs:
    assert set(e) >= {"time", "method", "path", "status", "latencyMs", "client"}, e
    assert e["client"].startswith("127.0.0.1:"), e
EOF
NEXT=$(echo "$BODY" | json_get nextBefore)
api GET "/api/v1/shares/$SHARE_ID/logs?limit=1000&before=$NEXT"
"$PY" - "$BODY" "$NEXT" <<'EOF' || fail "second log page"
import json, sys
d = json.loads(sys.argv[1])
assert d["logs"] and all(e["id"] < int(sys.argv[2]) for e in d["logs"]), d
statuses = {e["status"] for e in d["logs"]}
assert {200, 403, 405, 400} <= statuses, statuses
EOF
api GET "/api/v1/shares/$SHARE_ID/logs?limit=0"
[ "$HTTP_STATUS" = 422 ] || fail "limit=0: $HTTP_STATUS"

step "a burst larger than one access-log transaction: every request logged once, in order"
"$CLI_BIN" share web "${CFG[@]}" --rate-limit 1000 --json >"$WORK/burst.json" ||
    fail "share for the burst"
BURST_ID=$(json_get id <"$WORK/burst.json")
BURST_HOST=$(json_get shareUrl <"$WORK/burst.json")
BURST_HOST=${BURST_HOST#http://}
BURST_HOST=${BURST_HOST%%:*}
# 1,000 pipelined requests (the most a share takes a minute) on one connection: the edge answers them one by
# one in well under a second, so the writer gets them in one or two batches
# (about a second each), and the list right after has it commit them first.
"$PY" - "$EDGE_PORT" "$BURST_HOST" <<'EOF' || fail "the pipelined burst"
import socket, sys, threading
port, host = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
reqs = b"".join(b"GET /burst/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host.encode()) for i in range(1000))
# Sent from a thread while answers are read: the edge stops reading a
# client that does not take its answers.
threading.Thread(target=s.sendall, args=(reqs,), daemon=True).start()
buf, n = b"", 0
while n < 1000:
    try:
        d = s.recv(1 << 16)
    except socket.timeout:
        sys.exit("after %d answers: %r" % (n, buf[-400:]))
    assert d, "closed after %d answers: %r" % (n, buf[-300:])
    buf += d
    n = buf.count(b"HTTP/1.1 ")  # whatever the target answers: each is logged
EOF
burst_logged() {
    "$PY" - "$HUB_URL" "$ADMIN_TOKEN" "$BURST_ID" <<'EOF'
import json, sys, urllib.request
url, token, sid = sys.argv[1:4]
rows, before = [], ""
while True:
    req = urllib.request.Request("%s/api/v1/shares/%s/logs?limit=1000%s" % (url, sid, before),
                                 headers={"Authorization": "Bearer " + token})
    d = json.load(urllib.request.urlopen(req))
    rows += d["logs"]
    if not d.get("nextBefore"):
        break
    before = "&before=%d" % d["nextBefore"]
got = [int(r["path"].rsplit("/", 1)[1]) for r in reversed(rows)]  # oldest first
sys.exit(0 if got == list(range(1000)) else 1)
EOF
}
wait_for 10 "1,000 rows, each request once, in order" burst_logged

step "large bodies through a share: ${BIG_MIB} MiB up and down, SHA-256 equal"
"$CLI_BIN" share web "${CFG[@]}" --json >"$WORK/big.json" || fail "share for bulk"
BHOST=$(json_get shareUrl <"$WORK/big.json")
BHOST=${BHOST#http://}
BHOST=${BHOST%/}
t0=$(date +%s)
"$PY" "$HTTPTOOL" upload "$EDGE_PORT" "$BHOST" /sink "$BIG_MIB" || fail "upload through the share"
"$PY" "$HTTPTOOL" download "$EDGE_PORT" "$BHOST" "/source?n=$((BIG_MIB << 20))" "$BIG_MIB" ||
    fail "download through the share"
echo "bulk: $(($(date +%s) - t0)) s for both"

step "UDP tunnels cannot be shared (TCP shares: test_tcp_share.sh)"
api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:9\",\"agentId\":\"$AGENT_ID\",\"protocol\":\"udp\"}"
UDP_ID=$(echo "$BODY" | json_get id)
api POST "/api/v1/tunnels/$UDP_ID/shares" '{}'
[ "$HTTP_STATUS" = 422 ] || fail "share of a UDP tunnel: $HTTP_STATUS $BODY"

step "the access log in a file of its own: hub.db-log (0600), none in hub.db; a restart keeps the rows"
[ -f "$WORK/hub.db-log" ] || fail "no $WORK/hub.db-log"
[ "$(stat -c %a "$WORK/hub.db-log")" = 600 ] || fail "mode of hub.db-log: $(stat -c %a "$WORK/hub.db-log")"
"$PY" - "$WORK/hub.db" <<'EOF' || fail "hub.db still has share_access_log"
import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
n = con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'share_access_log'").fetchone()[0]
sys.exit(1 if n else 0)
EOF
kill -0 "$HUB_PID" || fail "hub died"
stop_pid "$HUB_PID"
forget_pid "$HUB_PID"
hub_start --http-port "$EDGE_PORT"
burst_logged || fail "the burst's 1,000 rows after a restart"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_shares: all checks passed"
