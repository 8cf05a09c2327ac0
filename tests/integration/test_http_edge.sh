#!/usr/bin/env bash
# User story: a developer exposes a local web app as a public HTTP tunnel and
# reaches it at http://NAME.localhost:PORT/ with curl, a keep-alive client and
# a WebSocket client, as if it were local: forwarded headers set (client-sent
# ones not trusted), hop-by-hop headers dropped, chunked and 100-continue
# uploads, pipelining, a client that stops reading a download growing no
# buffer; and every failure answers at once with one line:
# 404 unknown name, 503 paused, 502 agent offline, 502 target refusing,
# 504 target too slow, 401 basic auth.
source "$(dirname "$0")/lib.sh"
HTTPTOOL=$SRC/tests/integration/httptool.py
# python3-websockets lives in Debian's python.
WSPY=/usr/bin/python3

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --http-timeout 2
agent_enroll dev
WEB_PORT=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB_PORT"
wait_port 127.0.0.1 "$WEB_PORT"
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name web
WEB_AGENT_PID=$EXPOSE_PID
EDGE=http://web.localhost:$EDGE_PORT
URL=$(grep -m1 '^{' "$EXPOSE_OUT" | json_get publicUrl)
[ "$URL" = "$EDGE/" ] || fail "publicUrl is '$URL', want $EDGE/"

# code URL [curl args]: prints the status code.
code() {
    local url=$1
    shift
    curl -s -o "$WORK/resp" -m 10 -w '%{http_code}' "$@" "$url"
}

# The head deadline (10 s) runs beside the other steps; checked at the end.
bg deadlines "$PY" "$HTTPTOOL" deadlines "$EDGE_PORT" "web.localhost:$EDGE_PORT" 10
DEADLINES_PID=$LAST_PID

step "routing by Host, forwarded headers, hop-by-hop headers"
[ "$(code "$EDGE/hello")" = 200 ] || fail "GET through the tunnel"
grep -q '^ok /hello$' "$WORK/resp" || fail "body: $(cat "$WORK/resp")"
code "$EDGE/echo?x=1" -H 'X-Forwarded-For: 6.6.6.6' -H 'X-Forwarded-Host: evil' \
    -H 'Connection: keep-alive, X-Hop' -H 'X-Hop: 1' -H 'Keep-Alive: timeout=5' \
    -H 'TE: trailers' -H 'X-App: kept' >/dev/null
"$PY" - "$WORK/resp" "$EDGE_PORT" <<'EOF' || fail "headers as the target saw them: $(cat "$WORK/resp")"
import json, sys
r = json.load(open(sys.argv[1]))
h = {}
for k, v in r["headers"]:
    h.setdefault(k.lower(), []).append(v)
assert r["path"] == "/echo?x=1", r["path"]
assert h["x-forwarded-for"] == ["127.0.0.1"], h["x-forwarded-for"]
assert h["x-forwarded-proto"] == ["http"], h
assert h["x-forwarded-host"] == ["web.localhost:" + sys.argv[2]], h["x-forwarded-host"]
assert h["host"] == ["web.localhost:" + sys.argv[2]], h["host"]
assert h["x-app"] == ["kept"]
for gone in ("x-hop", "keep-alive", "te"):
    assert gone not in h, gone
assert "connection" not in h, h["connection"]  # HTTP/1.1 keep-alive toward the target (the pool)
EOF
echo "forwarded headers set, client ones dropped, hop-by-hop removed"

step "protocol auto: an HTTP target becomes an HTTP tunnel on the edge (no hub port)"
expose dev "127.0.0.1:$WEB_PORT" --public --name autoweb
line=$(grep -m1 '^{' "$EXPOSE_OUT")
[ "$(echo "$line" | json_get protocol)" = http ] || fail "auto did not choose http: $line"
[ -z "$(echo "$line" | json_get hubPort)" ] || fail "an auto HTTP tunnel got a hub port: $line"
[ "$(echo "$line" | json_get publicUrl)" = "http://autoweb.localhost:$EDGE_PORT/" ] ||
    fail "auto HTTP tunnel's publicUrl: $line"
[ "$(code "http://autoweb.localhost:$EDGE_PORT/auto")" = 200 ] || fail "GET through the auto tunnel"
grep -q '^ok /auto$' "$WORK/resp" || fail "auto tunnel body: $(cat "$WORK/resp")"
stop_pid "$EXPOSE_PID"

step "keep-alive and pipelining"
"$PY" "$HTTPTOOL" keepalive "$EDGE_PORT" "web.localhost:$EDGE_PORT" \
    "GET /a 200" "POST /b 200" "GET /source?n=100000 200" "GET /chunked?n=300000 200" \
    "HEAD /c 200" "DELETE /d 200" || fail "keep-alive"
"$PY" "$HTTPTOOL" pipeline "$EDGE_PORT" "web.localhost:$EDGE_PORT" 20 || fail "pipelining"
# Answered at once (no tunnel, no share), one read of 16 KiB holds about
# 380 of these: each used to nest a frame per request, and the hub died of
# a stack overflow at 300.
"$PY" "$HTTPTOOL" pipeline "$EDGE_PORT" "nosuch.localhost:$EDGE_PORT" 3000 404 ||
    fail "3,000 pipelined requests for no tunnel"
"$PY" "$HTTPTOOL" pipeline "$EDGE_PORT" "share-nosuch.localhost:$EDGE_PORT" 3000 404 ||
    fail "3,000 pipelined requests for no share"
kill -0 "$HUB_PID" || fail "the hub died under pipelined requests"

step "Connection: close: the last response bytes and the FIN in one segment"
"$PY" "$HTTPTOOL" closefin "$EDGE_PORT" "web.localhost:$EDGE_PORT" /hello 5 || fail "closing responses"
"$PY" "$HTTPTOOL" closefin "$EDGE_PORT" "web.localhost:$EDGE_PORT" /source?n=300000 5 ||
    fail "closing responses, 300 kB"

step "request and response bodies: Content-Length, chunked, 100-continue, 64 MiB both ways"
"$PY" "$HTTPTOOL" upload "$EDGE_PORT" "web.localhost:$EDGE_PORT" /sink 64 || fail "upload"
"$PY" "$HTTPTOOL" upload "$EDGE_PORT" "web.localhost:$EDGE_PORT" /sink 16 chunked || fail "chunked upload"
"$PY" "$HTTPTOOL" download "$EDGE_PORT" "web.localhost:$EDGE_PORT" /source?n=$((64 << 20)) 64 || fail "download"
"$PY" "$HTTPTOOL" download "$EDGE_PORT" "web.localhost:$EDGE_PORT" /chunked?n=$((16 << 20)) 16 || fail "chunked download"
head -c 3000000 /dev/urandom >"$WORK/blob"
want=$(sha256sum "$WORK/blob" | cut -d' ' -f1)
curl -s -m 20 -H 'Expect: 100-continue' --data-binary @"$WORK/blob" "$EDGE/sink" >"$WORK/resp" ||
    fail "curl with Expect: 100-continue"
[ "$(cut -d' ' -f1 "$WORK/resp")" = "$want" ] || fail "100-continue upload differs: $(cat "$WORK/resp")"
echo "100-continue upload intact"

step "a client that stops reading a 1 GiB download grows neither the hub nor the agent"
# What the target sends waits in the stream's window (2 MiB) and the sockets,
# never in a buffer that follows the response: 48 MiB of headroom is room for
# ASan's bookkeeping, not for the gigabyte. Then the client reads on and the
# bytes continue where they stopped.
"$PY" - "$SRC/tests/integration" "$EDGE_PORT" "web.localhost:$EDGE_PORT" "$HUB_PID" "$WEB_AGENT_PID" <<'EOF' || fail "a stalled download grew a process"
import sys, time
sys.path.insert(0, sys.argv[1])
from httptool import download_started
port, host, pids = int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def rss_kb(pid):
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
s, got = download_started(port, host, 1 << 30, rcvbuf=65536)
before = [rss_kb(p) for p in pids]
grow = [0, 0]
for _ in range(8):  # 4 s without reading
    time.sleep(0.5)
    grow = [max(g, rss_kb(p) - b) for g, p, b in zip(grow, pids, before)]
print("   stalled 4 s: hub +%d KiB, agent +%d KiB" % tuple(grow))
assert all(g < 48 * 1024 for g in grow), grow
s.settimeout(10)
want = got + (8 << 20)
while got < want:
    d = s.recv(65536)
    assert d, "ended after the stall"
    got += len(d)
s.close()
EOF

step "a WebSocket echo through the public HTTP tunnel"
WS_PORT=$(free_port)
bg ws "$WSPY" "$HTTPTOOL" wsserver "$WS_PORT"
wait_port 127.0.0.1 "$WS_PORT"
expose dev "127.0.0.1:$WS_PORT" --public --protocol http --name wsapp
"$WSPY" "$HTTPTOOL" wsecho "$EDGE_PORT" "wsapp.localhost:$EDGE_PORT" || fail "websocket echo"

step "errors: each fast, one line, HTML or JSON by Accept"
[ "$(code "http://nosuch.localhost:$EDGE_PORT/")" = 404 ] || fail "unknown name: not 404"
grep -q '<p>no public HTTP tunnel has this name</p>' "$WORK/resp" || fail "404 body: $(cat "$WORK/resp")"
[ "$(wc -l <"$WORK/resp")" = 1 ] || fail "404 body is not one line"
[ "$(code "http://nosuch.localhost:$EDGE_PORT/" -H 'Accept: application/json')" = 404 ] || fail "404 json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]==404 and d["message"]' \
    "$WORK/resp" || fail "404 JSON body: $(cat "$WORK/resp")"
[ "$(code "http://127.0.0.1:$EDGE_PORT/")" = 404 ] || fail "a host outside the domain"
# The Host's name is case-insensitive, and only letters, digits, '-' and '.'.
[ "$(code "$EDGE/hello" -H "Host: WeB.LocalHost:$EDGE_PORT")" = 200 ] || fail "an uppercase Host"
for bad in "we_b.localhost" "web.localhost/" "web .localhost" "web.local%68ost"; do
    [ "$(code "$EDGE/hello" -H "Host: $bad")" = 400 ] || fail "Host '$bad': not 400"
done

# 504: the target answers after the edge's --http-timeout (2 s).
t0=$(date +%s%N)
[ "$(code "$EDGE/slow?s=6")" = 504 ] || fail "slow target: not 504"
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -lt 5000 ] || fail "504 took ${ms} ms"
echo "504 after ${ms} ms"

# 502: the target refuses (nothing listens on its port).
DEAD_PORT=$(free_port)
expose dev "127.0.0.1:$DEAD_PORT" --public --protocol http --name dead
[ "$(code "http://dead.localhost:$EDGE_PORT/")" = 502 ] || fail "refusing target: not 502"
grep -q 'refused' "$WORK/resp" || fail "502 body: $(cat "$WORK/resp")"

# 503: paused; then back.
WEB_ID=$(grep -m1 '^{' "$WORK/expose-dev-1.out" | json_get id)
api PATCH "/api/v1/tunnels/$WEB_ID" '{"status":"paused"}'
[ "$HTTP_STATUS" = 200 ] || fail "pause: $HTTP_STATUS $BODY"
[ "$(code "$EDGE/")" = 503 ] || fail "paused tunnel: not 503"
grep -q 'paused' "$WORK/resp" || fail "503 body: $(cat "$WORK/resp")"
api PATCH "/api/v1/tunnels/$WEB_ID" '{"status":"active"}'
wait_eq 10 "resumed tunnel answers" 200 code "$EDGE/"

# 401: basic auth on a tunnel (httpUser), the generated password shown once.
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name private --auth alice
PASS=$(grep -m1 '^{' "$EXPOSE_OUT" | json_get httpPassword)
[ -n "$PASS" ] || fail "no httpPassword in the expose output"
curl -s -o /dev/null -D "$WORK/hdr" -m 10 "http://private.localhost:$EDGE_PORT/" || true
grep -q '^HTTP/1.1 401' "$WORK/hdr" || fail "no 401 without credentials"
grep -qi '^WWW-Authenticate: Basic realm="private"' "$WORK/hdr" || fail "no WWW-Authenticate"
[ "$(code "http://private.localhost:$EDGE_PORT/" -u "alice:wrong")" = 401 ] || fail "wrong password"
[ "$(code "http://private.localhost:$EDGE_PORT/echo" -u "alice:$PASS")" = 200 ] || fail "right password"
if grep -qi authorization "$WORK/resp"; then fail "the hub's credentials reached the target"; fi

# 502: the agent goes offline (the tunnel stays: --keep).
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name gone --keep
[ "$(code "http://gone.localhost:$EDGE_PORT/")" = 200 ] || fail "gone: not up"
stop_pid "$EXPOSE_PID"
t0=$(date +%s%N)
[ "$(code "http://gone.localhost:$EDGE_PORT/")" = 502 ] || fail "agent offline: not 502"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q 'offline' "$WORK/resp" || fail "502 body: $(cat "$WORK/resp")"
echo "502 (agent offline) after ${ms} ms"

# 502 "offline" too for a request in flight when the agent vanishes (kill -9:
# its link just ends), not "the connection to the target was lost".
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name vanish --keep
[ "$(code "http://vanish.localhost:$EDGE_PORT/")" = 200 ] || fail "vanish: not up"
bg vanish curl -s -o "$WORK/vanish.resp" -w '%{http_code}' -m 10 \
    "http://vanish.localhost:$EDGE_PORT/slow?s=5"
VANISH_CURL=$LAST_PID
sleep 1 # the request waits at the target (it answers after 5 s, the hub gives it 2)
kill -9 "$EXPOSE_PID"
wait "$EXPOSE_PID" 2>/dev/null || true
forget_pid "$EXPOSE_PID"
wait "$VANISH_CURL" || true
forget_pid "$VANISH_CURL"
[ "$(cat "$WORK/vanish.log")" = 502 ] || fail "in flight when the agent vanished: $(cat "$WORK/vanish.log")"
grep -q 'offline' "$WORK/vanish.resp" || fail "in-flight 502 body: $(cat "$WORK/vanish.resp")"
echo "502 (agent vanished with a request in flight): $(cat "$WORK/vanish.resp")"

step "the head deadline: half heads closed after 10 s each, an idle keep-alive connection kept"
wait "$DEADLINES_PID" || fail "head deadlines: $(cat "$WORK/deadlines.log")"
forget_pid "$DEADLINES_PID"
cat "$WORK/deadlines.log"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_http_edge: all checks passed"
