#!/usr/bin/env bash
# User story: a tester hammers a share (and a colleague the public URL) on
# keep-alive connections while the developer pauses, resumes, renames and
# finally deletes the shared tunnel. The edge serves shares and tunnels from
# memory (hub/share_cache.h), yet each change is seen by the very next
# request on the open connections. And a client sending random share hosts
# by the thousand gets 404s without growing the hub's memory.
source "$(dirname "$0")/lib.sh"
HTTPTOOL=$SRC/tests/integration/httptool.py

# The flood below measures the hub's RSS: keep ASan's quarantine of freed
# memory small, or every free would look like growth.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}quarantine_size_mb=4"
hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --rate-limit 0
agent_enroll dev
WEB_PORT=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB_PORT"
wait_port 127.0.0.1 "$WEB_PORT"
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name web
WEB_ID=$TUNNEL_ID
api POST "/api/v1/tunnels/$WEB_ID/shares" '{"name":"tester","rateLimitPerMinute":1000}'
[ "$HTTP_STATUS" = 201 ] || fail "create share: $HTTP_STATUS $BODY"
SHARE_URL=$(echo "$BODY" | json_get shareUrl)
SHARE_HOST=${SHARE_URL#http://}
SHARE_HOST=${SHARE_HOST%%:*}
secret "${SHARE_HOST%%.*}"

step "pause, resume, rename and delete of the shared tunnel: seen by the next request on open connections"
"$PY" - "$EDGE_PORT" "$SHARE_HOST" "$HUB_URL" "$ADMIN_TOKEN" "$WEB_ID" <<'EOF' || fail "changes through the share"
import http.client, json, sys, urllib.request
port, share, hub, token, tid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
conns = {}

def get(host):
    """One GET on the kept-alive connection for `host` (never reopened)."""
    c = conns.get(host)
    if c is None:
        c = conns[host] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.connect()
        c.first = c.sock
    c.request("GET", "/x", headers={"Host": host})
    assert c.sock is c.first, "the connection to %s was reopened" % host
    r = c.getresponse()
    r.read()
    if r.getheader("connection", "").lower() == "close":
        del conns[host]
    return r.status

def api(method, path, body=None):
    req = urllib.request.Request(hub + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status in (200, 204), (method, path, r.status)

def expect(host, want, why):
    got = get(host)
    assert got == want, "%s: %s answered %d, want %d" % (why, host, got, want)

for _ in range(3):  # warm: served from memory after the first
    expect(share, 200, "live share")
    expect("web.localhost", 200, "live tunnel")
api("PATCH", "/api/v1/tunnels/" + tid, {"status": "paused"})
expect(share, 503, "paused")
expect("web.localhost", 503, "paused")
api("PATCH", "/api/v1/tunnels/" + tid, {"status": "active"})
expect(share, 200, "resumed")
expect("web.localhost", 200, "resumed")
api("PATCH", "/api/v1/tunnels/" + tid, {"name": "web2"})
expect("web.localhost", 404, "renamed away")
expect("web2.localhost", 200, "renamed to")
expect(share, 200, "the share follows its tunnel, not its name")
api("DELETE", "/api/v1/tunnels/" + tid)
expect(share, 404, "deleted (its shares go with it)")
expect("web2.localhost", 404, "deleted")
print("paused 503, resumed 200, renamed 404/200, deleted 404: each on the next request")
EOF

step "a flood of unknown share hosts: 404s, and the hub's memory stays flat"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$HUB_PID/status"; }
# flood N: N requests for random (well-formed) share tokens on 8 keep-alive
# connections; every answer must be 404.
flood() {
    "$PY" - "$EDGE_PORT" "$1" <<'EOF' || fail "the flood"
import http.client, random, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
alpha = "abcdefghijklmnopqrstuvwxyz234567"
conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(8)]
t0 = time.monotonic()
for i in range(n):
    c = conns[i % 8]
    tok = "".join(random.choice(alpha) for _ in range(32))
    c.request("GET", "/", headers={"Host": "share-%s.localhost" % tok})
    r = c.getresponse()
    r.read()
    assert r.status == 404, r.status
print("%d unknown share hosts: all 404, %.0f req/s" % (n, n / (time.monotonic() - t0)))
EOF
}
flood 3000 # the allocator's own caches settle
BEFORE=$(rss_kib)
flood 30000
AFTER=$(rss_kib)
echo "hub RSS: ${BEFORE} KiB before, ${AFTER} KiB after 30000 unknown share hosts"
[ $((AFTER - BEFORE)) -lt 8192 ] || fail "the hub grew by $((AFTER - BEFORE)) KiB during the flood"
kill -0 "$HUB_PID" || fail "the hub died"
