#!/usr/bin/env bash
# User story: an operator scrapes GET /metrics with Prometheus: the text
# passes `promtool check metrics` before and after traffic; agents, links,
# tunnels, open streams, per-tunnel bytes and handshake failures move as
# the hub works; the HTTP edge counts its answers by status and share
# refusals by reason; access is loopback-only by default, and can require a
# scrape token of its own (refused without a private token file) or be
# public.
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null 2>&1 || {
    if [ -n "${CI:-}" ]; then fail "promtool missing (scripts/install-deps.sh installs prometheus)"; fi
    echo "SKIP test_metrics: promtool missing (apt-get install prometheus)"
    exit 77
}

hub_init
HUB_PORT=$(free_port)
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"

scrape() { curl -sf "$HUB_URL/metrics" -o "$WORK/metrics.txt" "$@"; }
# metric SERIES: the value of one series in the last scrape ("" if absent).
metric() { awk -v s="$1" 'index($0, s " ") == 1 { print $NF }' "$WORK/metrics.txt"; }
at_least() { # at_least SERIES N
    local v
    v=$(metric "$1")
    [ -n "$v" ] && [ "${v%.*}" -ge "$2" ]
}
promcheck() {
    promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 ||
        fail "promtool check metrics: $(cat "$WORK/promtool.out")"
}

step "a fresh hub's metrics pass promtool, every family present"
scrape || fail "GET /metrics from loopback"
curl -s -D - -o /dev/null "$HUB_URL/metrics" | grep -qi '^content-type: text/plain; version=0.0.4' ||
    fail "content type"
promcheck
for fam in connect_agents connect_agent_links connect_tunnels connect_streams_open \
    connect_tunnel_received_bytes_total connect_tunnel_sent_bytes_total \
    connect_http_requests_total connect_share_rejections_total connect_share_log_dropped_total \
    connect_webhook_deliveries_total connect_webhook_deliveries_pending \
    connect_handshake_failures_total connect_agent_tunnel_entries_sent_total \
    connect_public_connections_refused_total; do
    grep -q "^# TYPE $fam " "$WORK/metrics.txt" || fail "family $fam missing"
done
[ "$(metric 'connect_agent_links')" = 0 ] || fail "links on a fresh hub"

step "traffic through a public TCP tunnel moves the gauges and byte counters"
agent_enroll ops
SVC=$(free_port)
bg svc "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"
expose ops "127.0.0.1:$SVC" --public --protocol tcp --name metered
"$PY" "$TCPTOOL" sink 127.0.0.1 "$TUNNEL_PORT" 100000 3 >/dev/null || fail "sink through the tunnel"
"$PY" "$TCPTOOL" source 127.0.0.1 "$TUNNEL_PORT" 200000 4 >/dev/null || fail "source through the tunnel"
RX="connect_tunnel_received_bytes_total{tunnel_id=\"$TUNNEL_ID\",tunnel_name=\"metered\"}"
TX="connect_tunnel_sent_bytes_total{tunnel_id=\"$TUNNEL_ID\",tunnel_name=\"metered\"}"
# SINK: "SINK\n" + 100000 bytes in, a 65-byte digest line out; SOURCE: a
# 16-byte command in, 200000 bytes out.
wait_for 10 "bytes counted" sh -c "curl -sf '$HUB_URL/metrics' | grep -qF '$RX 100021'"
scrape
[ "$(metric "$RX")" = 100021 ] || fail "received bytes $(metric "$RX"), want 100021"
[ "$(metric "$TX")" = 200065 ] || fail "sent bytes $(metric "$TX"), want 200065"
at_least 'connect_agents{state="connected"}' 1 || fail "connected agents: $(grep connect_agents "$WORK/metrics.txt")"
at_least 'connect_agent_links' 1 || fail "no link counted"
[ "$(metric 'connect_tunnels{status="active",protocol="tcp"}')" = 1 ] ||
    fail "active tcp tunnels: $(grep '^connect_tunnels{' "$WORK/metrics.txt" | grep -v ' 0$')"
promcheck

step "an open connection is an open stream, and its bytes count while it is open"
bg holder "$PY" "$TCPTOOL" hold 127.0.0.1 "$TUNNEL_PORT" "ECHO"
HOLDER=$LAST_PID
wait_for 10 "an open stream" sh -c "curl -sf '$HUB_URL/metrics' | grep -Eq '^connect_streams_open [1-9]'"
scrape
at_least "$RX" 100026 || fail "live bytes not counted: $(metric "$RX")"
stop_pid "$HOLDER"
wait_for 10 "the stream closed" sh -c "curl -sf '$HUB_URL/metrics' | grep -q '^connect_streams_open 0$'"

step "a link that fails its handshake is counted"
scrape
before=$(awk '/^connect_handshake_failures_total\{/ { s += $NF } END { print s + 0 }' "$WORK/metrics.txt")
# A WebSocket upgrade to /agent (by hand, RFC 6455), then garbage where the
# Noise handshake should be.
"$PY" - "$HUB_PORT" <<'EOF' || fail "could not send a bad handshake"
import base64, os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: connect.v1\r\n\r\n" % key).encode())
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(4096)
    if not d:
        sys.exit("closed during the upgrade")
    head += d
if not head.startswith(b"HTTP/1.1 101"):
    sys.exit("upgrade refused: %r" % head[:80])
payload, mask = os.urandom(200), os.urandom(4)
frame = bytes([0x82, 0x80 | 126, 0, len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
s.sendall(frame)
s.settimeout(8)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
EOF
failures() {
    scrape && [ "$(awk '/^connect_handshake_failures_total\{/ { s += $NF } END { print s + 0 }' "$WORK/metrics.txt")" -gt "$before" ]
}
wait_for 10 "a handshake failure counted" failures
grep '^connect_handshake_failures_total' "$WORK/metrics.txt" | grep -v ' 0$'

step "a deleted tunnel's series go away"
api DELETE "/api/v1/tunnels/$TUNNEL_ID"
[ "$HTTP_STATUS" = 200 ] || fail "delete tunnel: $HTTP_STATUS $BODY"
scrape
grep -q "$TUNNEL_ID" "$WORK/metrics.txt" && fail "deleted tunnel still in the metrics"
promcheck

step "the HTTP edge counts its answers by status, and share refusals by reason"
HTTPTOOL=$SRC/tests/integration/httptool.py
WEB=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB"
wait_port 127.0.0.1 "$WEB"
expose ops "127.0.0.1:$WEB" --public --protocol http --name web
WEB_TUNNEL=$TUNNEL_ID
mkshare() { # mkshare BODY: creates a share of the web tunnel; SHARE_HOST, SHARE_ID
    api POST "/api/v1/tunnels/$WEB_TUNNEL/shares" "$1"
    [ "$HTTP_STATUS" = 201 ] || fail "create share: $HTTP_STATUS $BODY"
    SHARE_ID=$(echo "$BODY" | json_get id)
    SHARE_HOST=$(echo "$BODY" | json_get shareUrl)
    SHARE_HOST=${SHARE_HOST#http://}
    SHARE_HOST=${SHARE_HOST%%:*}
}
mkshare '{"allowedMethods":["GET"],"allowedPaths":["/api/*"],"rateLimitPerMinute":3}'
LIMITED=$SHARE_HOST
mkshare '{"httpUser":"tester"}'
AUTHED=$SHARE_HOST
mkshare '{}'
REVOKED=$SHARE_HOST
api DELETE "/api/v1/shares/$SHARE_ID"
[ "$HTTP_STATUS" = 200 ] || fail "revoke: $HTTP_STATUS $BODY"
scrape
declare -A BEFORE
for s in 'connect_http_requests_total{code="200"}' 'connect_http_requests_total{code="401"}' \
    'connect_http_requests_total{code="403"}' 'connect_http_requests_total{code="404"}' \
    'connect_http_requests_total{code="405"}' 'connect_http_requests_total{code="410"}' \
    'connect_http_requests_total{code="429"}' 'connect_share_rejections_total{reason="method"}' \
    'connect_share_rejections_total{reason="path"}' 'connect_share_rejections_total{reason="rate_limit"}' \
    'connect_share_rejections_total{reason="auth"}' 'connect_share_rejections_total{reason="revoked"}' \
    'connect_share_rejections_total{reason="expired"}'; do
    v=$(metric "$s")
    BEFORE[$s]=${v:-0}
done
edge() { # edge HOST PATH WANT [curl args]: one request to the HTTP edge
    local got
    got=$(curl -s -o /dev/null -m 10 -w '%{http_code}' --resolve "$1:$EDGE_PORT:127.0.0.1" \
        "${@:4}" "http://$1:$EDGE_PORT$2")
    [ "$got" = "$3" ] || fail "edge $1$2: got $got, want $3"
}
edge web.localhost /x 200
edge web.localhost /y 200
edge nosuch.localhost / 404
edge "$LIMITED" /api/a 200
edge "$LIMITED" /admin 403
edge "$LIMITED" /api/b 405 -X DELETE
edge "$LIMITED" /api/c 200
edge "$LIMITED" /api/d 200
edge "$LIMITED" /api/e 429
edge "$AUTHED" / 401
edge "$REVOKED" / 410
scrape
moved() { # moved SERIES N: the series grew by exactly N since BEFORE
    local v
    v=$(metric "$1")
    [ "$((${v:-0} - ${BEFORE[$1]}))" = "$2" ] || fail "$1: ${BEFORE[$1]} -> ${v:-absent}, want +$2"
}
moved 'connect_http_requests_total{code="200"}' 5
moved 'connect_http_requests_total{code="401"}' 1
moved 'connect_http_requests_total{code="403"}' 1
moved 'connect_http_requests_total{code="404"}' 1
moved 'connect_http_requests_total{code="405"}' 1
moved 'connect_http_requests_total{code="410"}' 1
moved 'connect_http_requests_total{code="429"}' 1
moved 'connect_share_rejections_total{reason="method"}' 1
moved 'connect_share_rejections_total{reason="path"}' 1
moved 'connect_share_rejections_total{reason="rate_limit"}' 1
moved 'connect_share_rejections_total{reason="auth"}' 1
moved 'connect_share_rejections_total{reason="revoked"}' 1
moved 'connect_share_rejections_total{reason="expired"}' 0
grep -E '^connect_(http_requests|share_rejections)_total' "$WORK/metrics.txt" | grep -v ' 0$'
promcheck

step "an HTTP tunnel's bytes count both ways (request bodies in, responses out)"
WRX="connect_tunnel_received_bytes_total{tunnel_id=\"$WEB_TUNNEL\",tunnel_name=\"web\"}"
WTX="connect_tunnel_sent_bytes_total{tunnel_id=\"$WEB_TUNNEL\",tunnel_name=\"web\"}"
rx0=$(metric "$WRX")
tx0=$(metric "$WTX")
head -c 300000 /dev/urandom >"$WORK/up.bin"
edge web.localhost /sink 200 --data-binary @"$WORK/up.bin"
edge web.localhost "/source?n=500000" 200
bytes_moved() {
    scrape && [ "$(($(metric "$WRX") - ${rx0:-0}))" -ge 300000 ] &&
        [ "$(($(metric "$WTX") - ${tx0:-0}))" -ge 500000 ]
}
wait_for 10 "HTTP bytes counted" bytes_moved
echo "   web tunnel: +$(($(metric "$WRX") - ${rx0:-0})) bytes in, +$(($(metric "$WTX") - ${tx0:-0})) out"

step "at --max-conns the HTTP edge resets a new connection at once, counted and logged"
stop_pid "$HUB_PID"
hub_start --http-port "$EDGE_PORT" --max-conns 3
"$PY" - "$EDGE_PORT" <<'EOF' || fail "the fourth connection was not refused"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
time.sleep(0.5)  # the hub accepts them (3 of --max-conns 3), heads pending
extra = socket.create_connection(("127.0.0.1", port), timeout=5)
try:
    extra.sendall(b"GET / HTTP/1.1\r\nHost: web.localhost\r\n\r\n")
    got = extra.recv(1024)
except ConnectionResetError:
    got = None
if got is not None:
    sys.exit("answered instead of reset: %r" % got[:80])
print("   the fourth connection was reset before any answer")
EOF
scrape || fail "scrape after the refusal"
at_least 'connect_public_connections_refused_total{reason="hub_limit"}' 1 ||
    fail "refusal not counted: $(grep refused_total "$WORK/metrics.txt")"
grep -q "http edge: connection from 127.0.0.1:[0-9]* refused: hub connection limit" "$WORK/hub.log" ||
    fail "refusal not logged"
promcheck

step "--metrics token: a private token file is required, and the token opens it"
stop_pid "$HUB_PID"
printf 'scrape-%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/metrics.token"
chmod 644 "$WORK/metrics.token"
if "$HUB_BIN" serve --db "$WORK/hub.db" --listen "127.0.0.1:$HUB_PORT" --metrics token \
    --metrics-token-file "$WORK/metrics.token" >"$WORK/serve-refused.log" 2>&1; then
    fail "serve started with a world-readable token file"
fi
grep -q 'chmod 600' "$WORK/serve-refused.log" || fail "refusal does not say how: $(cat "$WORK/serve-refused.log")"
set +e
"$HUB_BIN" serve --db "$WORK/hub.db" --metrics token >"$WORK/serve-usage.log" 2>&1
rc=$?
set -e
[ $rc = 2 ] || fail "--metrics token without a file: exit $rc"
chmod 600 "$WORK/metrics.token"
hub_start --metrics token --metrics-token-file "$WORK/metrics.token"
code=$(curl -s -o /dev/null -w '%{http_code}' "$HUB_URL/metrics")
[ "$code" = 401 ] || fail "no token: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" "$HUB_URL/metrics")
[ "$code" = 401 ] || fail "an API token opened /metrics: $code"
scrape -H "Authorization: Bearer $(cat "$WORK/metrics.token")" || fail "the scrape token was refused"
promcheck

step "--metrics public"
stop_pid "$HUB_PID"
hub_start --metrics public
scrape || fail "public metrics refused"
echo "PASS test_metrics"
