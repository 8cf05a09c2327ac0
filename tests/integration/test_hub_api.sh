#!/usr/bin/env bash
# User story: an operator runs `connect-hub init` and `connect-hub serve`, and
# scripts drive the REST API with curl. Every bad input gets the documented
# status and error shape, workspaces are isolated, limits hold, the hub
# survives garbage and stalled clients, shuts down cleanly on SIGTERM and
# keeps its data across a restart.
set -euo pipefail

BUILD=${CN_BUILD_DIR:-build}
HUB="$BUILD/hub/connect-hub"
[ -x "$HUB" ] || { echo "FAIL: $HUB not built" >&2; exit 1; }

# The system interpreter: version-manager shims can take half a second to start.
PY=$(command -v /usr/bin/python3 || command -v python3)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cn-hubapi-XXXXXX")
HUB_PID=""
HELPER_PIDS=()
STEP="setup"

cleanup() {
    local rc=$?
    for p in "${HELPER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$HUB_PID" ]; then
        kill "$HUB_PID" 2>/dev/null || true
        wait "$HUB_PID" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ]; then
        echo "FAIL at step: $STEP" >&2
        echo "--- last request: $LAST_REQ -> ${STATUS:-?}" >&2
        echo "--- body: ${BODY:-}" >&2
        echo "--- hub log (tail):" >&2
        tail -n 40 "$WORK"/hub*.log 2>/dev/null >&2 || true
    fi
    # The secrets grep (tests/integration/secrets_grep.py, as lib.sh does).
    "$PY" "$(dirname "$0")/secrets_grep.py" check "$WORK" test_hub_api "$BUILD/tests/secrets" \
        "${TOKEN:-}" "${TOKEN2:-}" || rc=1
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $STEP: $*" >&2; exit 1; }
step() { STEP="$*"; echo "== $STEP"; }

# Below the ephemeral range, as lib.sh's (freeport.py says why).
free_port() { "$PY" "$(dirname "$0")/freeport.py" 1 10000 20000; }
# The hub's TCP port range: three free ports (not fixed ones: a concurrent
# test may hold those).
P0=$("$PY" "$(dirname "$0")/freeport.py" 3)
P1=$((P0 + 1))
P2=$((P0 + 2))

# Starts the hub in the background on $PORT with extra options; waits for
# health.
start_hub() {
    local log="$WORK/hub$1.log" out="$WORK/hub$1.out"
    shift
    "$HUB" serve --db "$DB" --listen "127.0.0.1:$PORT" --http-port "$EDGE_PORT" "$@" >"$out" 2>"$log" &
    HUB_PID=$!
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/api/v1/health"; then
            grep -q "listening on http://127.0.0.1:$PORT" "$log" ||
                fail "no readiness line in $log"
            return 0
        fi
        kill -0 "$HUB_PID" 2>/dev/null || fail "hub exited during start-up: $(cat "$log")"
        sleep 0.1
    done
    fail "hub did not answer health within 10 s"
}

# Sends SIGTERM and expects a prompt exit with status 0 (under ASan, a leak
# would make it non-zero).
stop_hub() {
    kill -TERM "$HUB_PID"
    local i rc=0
    for i in $(seq 1 50); do
        kill -0 "$HUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$HUB_PID" 2>/dev/null && fail "hub still running 5 s after SIGTERM"
    wait "$HUB_PID" || rc=$?
    HUB_PID=""
    [ "$rc" -eq 0 ] || fail "hub exited with status $rc after SIGTERM"
}

# req METHOD PATH [BODY] [TOKEN|-]: sets STATUS, BODY, HEADERS. TOKEN
# defaults to $TOKEN; "-" sends none.
req() {
    local method=$1 path=$2 body=${3-} tok=${4-$TOKEN}
    local args=(-s -m 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method")
    [ "$tok" != "-" ] && args+=(-H "Authorization: Bearer $tok")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    LAST_REQ="$method $path"
    STATUS=$(curl "${args[@]}" "$BASE$path") || STATUS="curl-error"
    BODY=$(cat "$WORK/body")
    HEADERS=$(tr -d '\r' <"$WORK/headers")
    # Minted secrets, kept for the secrets grep (the next call overwrites body).
    grep -oE 'cn[a-z]_[A-Za-z0-9_-]{32,}|"(httpPassword|password)" *: *"[^"]{8,}"' "$WORK/body" \
        >>"$WORK/.secrets" 2>/dev/null || true
}

# jget EXPR: evaluates a Python expression over the JSON body `b`.
jget() {
    "$PY" -c 'import json,sys; b=json.loads(sys.argv[1]); r=eval(sys.argv[2]); print(json.dumps(r) if not isinstance(r,str) else r)' "$BODY" "$1"
}

header() { printf '%s\n' "$HEADERS" | grep -i "^$1:" | head -1 | cut -d: -f2- | sed 's/^ *//'; }

# expect STATUS [PARAM]: checks the status; for errors also the error shape
# and, when given, that some error names PARAM. Always checks JSON type.
expect() {
    local want=$1 param=${2-}
    [ "$STATUS" = "$want" ] || fail "expected $want, got $STATUS for $LAST_REQ: $BODY"
    header content-type | grep -q '^application/json' || fail "content-type is not JSON"
    local clen
    clen=$(header content-length)
    [ "$clen" = "$(printf '%s' "$BODY" | wc -c)" ] || fail "content-length $clen does not match body"
    if [ "$want" -ge 400 ]; then
        "$PY" - "$BODY" "$param" <<'EOF' || fail "bad error shape for $LAST_REQ: $BODY"
import json, sys
b = json.loads(sys.argv[1]); param = sys.argv[2]
assert list(b.keys()) == ["errors"], b
assert isinstance(b["errors"], list) and b["errors"], b
for e in b["errors"]:
    assert sorted(e.keys()) == ["details", "param"], e
    assert isinstance(e["param"], str) and isinstance(e["details"], str) and e["details"], e
if param:
    assert any(e["param"] == param for e in b["errors"]), (param, b)
EOF
    fi
}

# ---------------------------------------------------------------------------
step "init"
DB="$WORK/hub.db"
"$HUB" init --db "$DB" --json >"$WORK/init.json" || fail "init failed"
TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/init.json")
WS1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["workspaceId"])' "$WORK/init.json")
[ -n "$TOKEN" ] && [ -n "$WS1" ] || fail "init --json gave no token/workspaceId"

step "serve --help and bad options"
# Not piped into grep -q: the help is longer than one pipe write, and grep
# leaving after its match would kill the hub with SIGPIPE (pipefail).
help=$("$HUB" serve --help) || fail "serve --help exited $?"
grep -q -- "--public-domain" <<<"$help" || fail "serve --help"
set +e
"$HUB" serve --db "$DB" --listen nonsense 2>"$WORK/err"; rc=$?
set -e
[ $rc -eq 2 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "bad --listen: rc $rc, $(cat "$WORK/err")"
set +e
"$HUB" serve --db "$DB" --tcp-ports 9-1 2>"$WORK/err"; rc=$?
"$HUB" serve --db "$DB" --frobnicate 2>>"$WORK/err"; rc2=$?
"$HUB" serve --db "$DB" --tls-cert /nonexistent 2>>"$WORK/err"; rc3=$?
"$HUB" serve --db "$WORK/missing.db" --listen 127.0.0.1:0 2>>"$WORK/err"; rc4=$?
set -e
[ $rc -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ $rc4 -eq 1 ] ||
    fail "option errors: $rc $rc2 $rc3 $rc4: $(cat "$WORK/err")"
# Usage errors read as the agent's do: the command, the reason, where to look.
grep -qx "connect-hub: serve: unknown option '--frobnicate' (try 'connect-hub serve --help')" \
    "$WORK/err" || fail "usage error line: $(cat "$WORK/err")"

PORT=$(free_port)
EDGE_PORT=$(free_port) # the HTTP edge: the port in public HTTP URLs
BASE="http://127.0.0.1:$PORT/api/v1"
step "serve on port $PORT"
start_hub 1 --max-tunnels 10 --tcp-ports "$P0-$P2" --rate-limit 100000 --json
# --json: one JSON line on stdout once listening, as connect's long-running commands print.
[ "$(wc -l <"$WORK/hub1.out")" -eq 1 ] || fail "serve --json printed: $(cat "$WORK/hub1.out")"
"$PY" - "$WORK/hub1.out" "$PORT" "$EDGE_PORT" <<'EOF' || fail "serve --json line: $(cat "$WORK/hub1.out")"
import json, sys
doc = json.loads(open(sys.argv[1]).read())
port = int(sys.argv[2])
edge = int(sys.argv[3])
assert doc == {"url": "http://127.0.0.1:%d" % port, "port": port, "publicDomain": "localhost",
               "httpPort": edge}, doc
EOF

step "health without a token"
req GET /health "" -
expect 200
[ "$(jget 'b["status"]')" = ok ] || fail "health status"

step "401: missing, wrong, malformed token"
req GET /tunnels "" -
expect 401 Authorization
[ -n "$(header www-authenticate)" ] || fail "401 without WWW-Authenticate"
req GET /tunnels "" "cnt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
expect 401 Authorization
req GET /tunnels "" "not-a-token"
expect 401 Authorization
STATUS=$(curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -H "Authorization: Basic $TOKEN" "$BASE/tunnels")
BODY=$(cat "$WORK/body"); HEADERS=$(tr -d '\r' <"$WORK/headers"); LAST_REQ="GET /tunnels (Basic)"
expect 401 Authorization

step "401: token in the query string is refused"
req GET "/tunnels?token=$TOKEN" "" -
expect 401 token
req GET "/tunnels?access_token=$TOKEN" ""
expect 401 access_token

step "404: unknown path and ids"
req GET /nope
expect 404
req GET /tunnels/00000000-0000-4000-8000-000000000000
expect 404
req GET /tunnels/not-a-uuid
expect 404
req DELETE /agents/00000000-0000-4000-8000-000000000000
expect 404
req GET /api/v2/tunnels "" -
expect 404

step "405 with Allow"
req PUT /tunnels '{}'
expect 405
allow=$(header allow)
[ "$allow" = "GET, HEAD, POST" ] || fail "Allow is '$allow'"
req DELETE /health "" -
expect 405
[ "$(header allow)" = "GET, HEAD" ] || fail "Allow for health"
req POST /tunnels/00000000-0000-4000-8000-000000000000 '{}'
expect 405
[ "$(header allow)" = "GET, HEAD, PATCH, DELETE" ] || fail "Allow for a tunnel"

step "HTTP details: HEAD, keep-alive, reason phrases, WebSocket upgrade on the API port"
curl -s -I -m 5 "$BASE/health" | tr -d '\r' >"$WORK/head"
grep -q "^HTTP/1.1 200 OK" "$WORK/head" && grep -qi "^content-length: [1-9]" "$WORK/head" ||
    fail "HEAD /health: $(cat "$WORK/head")"
n=$(curl -s -v -m 10 -H "Authorization: Bearer $TOKEN" "$BASE/health" "$BASE/agents" "$BASE/nope" 2>&1 |
    grep -c "Re-using existing connection" || true)
[ "$n" = 2 ] || fail "keep-alive: connection reused $n times, expected 2"
code=$(curl -s -o /dev/null -w '%{http_code}' --http1.0 "$BASE/health")
[ "$code" = 200 ] || fail "HTTP/1.0 request gave $code"
curl -s -m 5 -o /dev/null -H "Connection: Upgrade" -H "Upgrade: websocket" \
    -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \
    "http://127.0.0.1:$PORT/agent" || true
req GET /health "" -
expect 200

"$PY" - "$PORT" "$TOKEN" <<'EOF' || fail "pipelined requests"
import re, socket, sys
port, tok = int(sys.argv[1]), sys.argv[2].encode()
body = b'{"name":"piped"}'
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
# Three requests in one packet: a POST with a body, a GET, a 404.
s.sendall(b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
          b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body +
          b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
          b"GET /api/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n")
out = b""
while len(re.findall(rb"HTTP/1\.1 \d{3}", out)) < 3:
    d = s.recv(65536)
    if not d:
        break
    out += d
codes = [c.decode() for c in re.findall(rb"HTTP/1\.1 (\d{3})", out)]
assert codes == ["201", "200", "404"], codes
EOF
req GET /agents
[ "$(jget '[a["name"] for a in b["agents"]]')" = '["piped"]' ] || fail "pipelined POST"
req DELETE "/agents/$(jget 'b["agents"][0]["id"]')"
expect 200

step "agents: create, list, get"
req POST /agents '{"name":"laptop"}'
expect 201
head -1 "$WORK/headers" | grep -q "^HTTP/1.1 201 Created" || fail "status line $(head -1 "$WORK/headers")"
AGENT=$(jget 'b["id"]')
[[ "$AGENT" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "agent id $AGENT"
[[ "$(jget 'b["enrollToken"]')" == cne_* ]] || fail "no enroll token"
[ "$(jget 'b["status"]')" = pending ] || fail "agent status"
req POST /agents ""
expect 201
AGENT2=$(jget 'b["id"]')
req GET /agents
expect 200
[ "$(jget 'len(b["agents"])')" = 2 ] || fail "agent list"
[ "$(jget '"enrollToken" in b["agents"][0]')" = false ] || fail "enroll token shown twice"
req GET "/agents/$AGENT"
expect 200
[ "$(jget 'b["name"]')" = laptop ] || fail "agent name"
req POST /agents '{"name":7}'
expect 422 name
req POST /agents '{"nickname":"x"}'
expect 422 nickname

step "400: malformed JSON, not an object, invalid UTF-8"
req POST /tunnels '{"target": "localhost:80",'
expect 400 body
req POST /tunnels '[1,2]'
expect 400 body
req POST /tunnels "$(printf '{"name":"\xff\xfe"}')"
expect 400 body
req POST /tunnels '{"a":1,"a":2}'
expect 400 body

step "422: wrong types and out-of-range values name the field"
T='"target":"localhost:5432"'
A="\"agentId\":\"$AGENT\""
req POST /tunnels "{$A}"
expect 422 target
req POST /tunnels "{$T}"
expect 422 agentId
req POST /tunnels "{\"target\":\"localhost:70000\",$A}"
expect 422 target
jget 'b["errors"][0]["details"]' | grep -q 'between 1 and 65535' || fail "port details"
req POST /tunnels "{\"target\":\"localhost:0\",$A}"
expect 422 target
req POST /tunnels "{\"target\":{\"host\":\"db\",\"port\":\"80\"},$A}"
expect 422 target
req POST /tunnels "{\"target\":{\"host\":\"bad host\",\"port\":80},$A}"
expect 422 target
req POST /tunnels "{\"target\":\"$("$PY" -c 'print("a"*254)'):80\",$A}"
expect 422 target
req POST /tunnels "{\"target\":12,$A}"
expect 422 target
req POST /tunnels "{$T,$A,\"name\":\"$("$PY" -c 'print("n"*101)')\"}"
expect 422 name
req POST /tunnels "{$T,$A,\"name\":\"bad name!\"}"
expect 422 name
req POST /tunnels "{$T,$A,\"name\":\"Upper_Case\",\"public\":true,\"protocol\":\"http\"}"
expect 422 name
req POST /tunnels "{$T,$A,\"protocol\":\"ftp\"}"
expect 422 protocol
req POST /tunnels "{$T,$A,\"public\":\"yes\"}"
expect 422 public
req POST /tunnels "{$T,$A,\"hubPort\":0}"
expect 422 hubPort
req POST /tunnels "{$T,$A,\"hubPort\":65536}"
expect 422 hubPort
req POST /tunnels "{$T,$A,\"hubPort\":8080}"
expect 422 hubPort
req POST /tunnels "{$T,$A,\"ttl\":0}"
expect 422 ttl
req POST /tunnels "{$T,$A,\"ttl\":\"60\"}"
expect 422 ttl
req POST /tunnels "{$T,$A,\"ttl\":99999999999}"
expect 422 ttl
req POST /tunnels "{$T,$A,\"httpUser\":\"a:b\"}"
expect 422 httpUser
req POST /tunnels "{$T,$A,\"metadata\":[1]}"
expect 422 metadata
req POST /tunnels "{$T,$A,\"color\":\"red\"}"
expect 422 color
req POST /tunnels "{$T,\"agentId\":\"00000000-0000-4000-8000-000000000000\"}"
expect 422 agentId

step "413: body too large"
"$PY" -c 'import json; print(json.dumps({"metadata": {"x": "y" * 70000}}))' >"$WORK/big.json"
LAST_REQ="POST /tunnels (70 KB, Expect: 100-continue)"
STATUS=$(curl -s -m 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$BASE/tunnels") || true
BODY=$(cat "$WORK/body"); HEADERS=$(tr -d '\r' <"$WORK/headers")
expect 413 body
LAST_REQ="POST /tunnels (70 KB, no Expect)"
STATUS=$(curl -s -m 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -H 'Expect:' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$BASE/tunnels") || true
BODY=$(cat "$WORK/body"); HEADERS=$(tr -d '\r' <"$WORK/headers")
expect 413 body

step "tunnels: create with every field"
req POST /tunnels "{\"target\":{\"host\":\"127.0.0.1\",\"port\":8000},$A,\"name\":\"web\",\"protocol\":\"http\",\"public\":true,\"httpUser\":\"alice\",\"metadata\":{\"team\":\"a\"}}"
expect 201
TUN=$(jget 'b["id"]')
"$PY" - "$BODY" "$EDGE_PORT" <<'EOF' || fail "tunnel object: $BODY"
import json, sys
t = json.loads(sys.argv[1]); port = sys.argv[2]
for k in ["id", "name", "agentId", "target", "protocol", "public", "publicUrl", "hubPort",
          "status", "metadata", "connectionString", "createdAt", "connectedAt", "expiresAt",
          "updatedAt", "lastError"]:
    assert k in t, k
assert t["name"] == "web" and t["target"] == "127.0.0.1:8000" and t["protocol"] == "http"
assert t["public"] is True and t["status"] == "connecting", t
assert t["publicUrl"] == "http://web.localhost:%s/" % port, t["publicUrl"]
assert t["metadata"] == {"team": "a"} and t["hubPort"] is None and t["expiresAt"] is None
assert t["httpUser"] == "alice" and len(t["httpPassword"]) >= 16
assert t["createdAt"].endswith("Z") and t["connectedAt"] is None
EOF
req GET "/tunnels/$TUN"
expect 200
[ "$(jget '"httpPassword" in b')" = false ] || fail "password shown twice"

step "tunnels: generated name, TCP hub port allocation, conflicts"
req POST /tunnels "{$T,$A}"
expect 201
GEN=$(jget 'b["name"]')
[[ "$GEN" =~ ^[a-z]+-[a-z]+-[0-9a-f]{4}$ ]] || fail "generated name '$GEN'"
req POST /tunnels "{$T,$A,\"name\":\"web\"}"
expect 409 name
req POST /tunnels "{$T,$A,\"protocol\":\"tcp\",\"public\":true}"
expect 201
[ "$(jget 'b["hubPort"]')" = "$P0" ] || fail "allocated hub port $(jget 'b["hubPort"]')"
[ "$(jget 'b["publicUrl"]')" = "tcp://localhost:$P0" ] || fail "tcp publicUrl"
req POST /tunnels "{$T,$A,\"protocol\":\"tcp\",\"hubPort\":$P0}"
expect 409 hubPort
req POST /tunnels "{\"target\":\"[::1]:6379\",\"agentId\":\"$AGENT2\",\"protocol\":\"tcp\",\"hubPort\":$P1,\"name\":\"cache\"}"
expect 201
CACHE=$(jget 'b["id"]')
[ "$(jget 'b["target"]')" = "[::1]:6379" ] || fail "ipv6 target"

step "tunnels: list with filters"
req GET /tunnels
expect 200
[ "$(jget 'len(b["tunnels"])')" = 4 ] || fail "list size"
req GET "/tunnels?agentId=$AGENT2"
expect 200
[ "$(jget '[t["name"] for t in b["tunnels"]]')" = '["cache"]' ] || fail "agent filter"
req GET "/tunnels?status=connecting&agentId=$AGENT"
expect 200
[ "$(jget 'len(b["tunnels"])')" = 3 ] || fail "status filter"
req GET "/tunnels?status=paused"
expect 200
[ "$(jget 'len(b["tunnels"])')" = 0 ] || fail "paused filter"
req GET "/tunnels?status=sleeping"
expect 422 status
req GET "/tunnels?agentId=nope"
expect 422 agentId
req GET "/tunnels?colour=red"
expect 422 colour

step "tunnels: patch name, status, metadata"
req PATCH "/tunnels/$TUN" '{"name":"web2","metadata":{"team":"b","n":[1,2]}}'
expect 200
[ "$(jget 'b["name"]')" = web2 ] && [ "$(jget 'b["metadata"]["team"]')" = b ] || fail "patch result"
[ "$(jget 'b["publicUrl"]')" = "http://web2.localhost:$EDGE_PORT/" ] || fail "publicUrl after rename"
req PATCH "/tunnels/$TUN" '{"status":"paused"}'
expect 200
[ "$(jget 'b["status"]')" = paused ] || fail "pause"
req GET "/tunnels?status=paused"
[ "$(jget 'len(b["tunnels"])')" = 1 ] || fail "paused filter after pause"
req PATCH "/tunnels/$TUN" '{"status":"active"}'
expect 200
[ "$(jget 'b["status"]')" = connecting ] || fail "resume with agent offline should be connecting"
req PATCH "/tunnels/$TUN" '{"status":"expired"}'
expect 422 status
req PATCH "/tunnels/$TUN" '{"owner":"me"}'
expect 422 owner
req PATCH "/tunnels/$TUN" '{"metadata":"x"}'
expect 422 metadata
req PATCH "/tunnels/$TUN" '{"name":"cache"}'
expect 409 name
req PATCH "/tunnels/$TUN" '{}'
expect 422
req PATCH "/tunnels/$TUN" 'nope'
expect 400 body
req PATCH /tunnels/00000000-0000-4000-8000-000000000000 '{"name":"x"}'
expect 404

step "events record the changes"
req GET "/events?tunnelId=$TUN"
expect 200
"$PY" - "$BODY" "$TUN" <<'EOF' || fail "events: $BODY"
import json, sys
ev = json.loads(sys.argv[1])["events"]; tun = sys.argv[2]
types = [e["type"] for e in ev]
assert types[0] == "tunnel.created", types
assert "tunnel.updated" in types, types
st = [e["data"] for e in ev if e["type"] == "tunnel.status_changed"]
assert {"from": "connecting", "to": "paused"}.items() <= st[0].items(), st
assert st[1]["from"] == "paused" and st[1]["to"] == "connecting", st
assert all(e["tunnelId"] == tun for e in ev)
for e in ev:
    for k in ["id", "type", "tunnelId", "agentId", "data", "createdAt"]:
        assert k in e, k
EOF
req GET /events
expect 200
jget '[e["type"] for e in b["events"]]' | grep -q agent.created || fail "agent.created event"
req GET "/events?since=2000-01-01T00:00:00Z&limit=2"
expect 200
[ "$(jget 'len(b["events"])')" = 2 ] || fail "since+limit"
# after=0 is a cursor from the very first event, not "the latest page".
req GET "/events?limit=1"
expect 200
LATEST_EV=$(jget 'b["events"][0]["id"]')
req GET "/events?after=0&limit=1"
expect 200
FIRST_EV=$(jget 'b["events"][0]["id"]')
[ "$FIRST_EV" -lt "$LATEST_EV" ] || fail "after=0 gave event $FIRST_EV, the latest is $LATEST_EV"
req GET "/events?after=$FIRST_EV&limit=1"
expect 200
[ "$(jget 'b["events"][0]["id"]')" -gt "$FIRST_EV" ] || fail "after=$FIRST_EV"
req GET "/events?since=yesterday"
expect 422 since
req GET "/events?limit=0"
expect 422 limit
req GET "/events?tunnelId=x"
expect 422 tunnelId

step "workspaces: admin only, isolation between workspaces"
req POST /workspaces '{"name":"second"}'
expect 201
WS2=$(jget 'b["id"]')
req POST /workspaces '{"name":"second"}'
expect 409 name
req POST /workspaces '{}'
expect 422 name
req GET /workspaces
expect 200
[ "$(jget 'len(b["workspaces"])')" = 2 ] || fail "workspace list"
req POST "/workspaces/$WS2/tokens" '{"name":"ci"}'
expect 201
TOKEN2=$(jget 'b["token"]')
[[ "$TOKEN2" == cnt_* ]] && [ "$(jget 'b["admin"]')" = false ] || fail "token create: $BODY"
req POST /workspaces/00000000-0000-4000-8000-000000000000/tokens '{}'
expect 404
req POST /workspaces '{"name":"third"}' "$TOKEN2"
expect 403
req GET /workspaces "" "$TOKEN2"
expect 403
req POST "/workspaces/$WS1/tokens" '{}' "$TOKEN2"
expect 403
req GET "/tunnels/$TUN" "" "$TOKEN2"
expect 404
req PATCH "/tunnels/$TUN" '{"status":"paused"}' "$TOKEN2"
expect 404
req DELETE "/tunnels/$TUN" "" "$TOKEN2"
expect 404
req GET "/agents/$AGENT" "" "$TOKEN2"
expect 404
req GET /tunnels "" "$TOKEN2"
expect 200
[ "$(jget 'len(b["tunnels"])')" = 0 ] || fail "workspace 2 sees tunnels"
req GET "/events?tunnelId=$TUN" "" "$TOKEN2"
expect 200
[ "$(jget 'len(b["events"])')" = 0 ] || fail "workspace 2 sees events"
req POST /tunnels "{$T,$A}" "$TOKEN2"
expect 422 agentId

req POST /agents '{}' "$TOKEN2"
expect 403 Authorization

step "per-workspace tunnel cap (--max-tunnels 10)"
# Registering agents takes a workspace admin (docs/security.md).
req POST "/workspaces/$WS2/tokens" '{"name":"owner","scope":"admin"}'
expect 201
req POST /agents '{}' "$(jget 'b["token"]')"
expect 201
A2="\"agentId\":\"$(jget 'b["id"]')\""
for i in $(seq 1 10); do
    req POST /tunnels "{$T,$A2,\"name\":\"t$i\"}" "$TOKEN2"
    expect 201
done
req POST /tunnels "{$T,$A2,\"name\":\"t11\"}" "$TOKEN2"
expect 409 tunnels

step "TTL expiry"
req POST /tunnels "{$T,$A,\"name\":\"short\",\"ttl\":1}"
expect 201
SHORT=$(jget 'b["id"]')
[ "$(jget 'b["expiresAt"]')" != null ] || fail "expiresAt missing"
ok=""
for _ in $(seq 1 50); do
    req GET "/tunnels/$SHORT"
    if [ "$(jget 'b["status"]')" = expired ]; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || fail "tunnel with ttl=1 not expired after 5 s"
req GET "/events?tunnelId=$SHORT"
jget '[e["data"].get("to") for e in b["events"]]' | grep -q expired || fail "no expiry event"
req PATCH "/tunnels/$SHORT" '{"status":"active"}'
expect 409 status

step "delete"
req DELETE "/tunnels/$CACHE"
expect 200
req GET "/tunnels/$CACHE"
expect 404
req DELETE "/tunnels/$CACHE"
expect 404
req GET "/events?tunnelId=$CACHE"
jget '[e["type"] for e in b["events"]]' | grep -q tunnel.deleted || fail "no tunnel.deleted event"
req DELETE "/agents/$AGENT2"
expect 200
req GET "/agents/$AGENT2"
expect 404

step "garbage, stalled and oversized requests do not hurt the hub"
"$PY" - "$PORT" <<'EOF' &
import os, socket, sys, time
port = int(sys.argv[1])
# A connection that sends half a request line and headers, then stalls.
stall = []
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /api/v1/tunnels HTTP/1.1\r\nHost: x\r\nContent-Le")
    stall.append(s)
# Random bytes.
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(os.urandom(100000))
    except OSError:
        pass
    s.close()
# A huge header.
s = socket.create_connection(("127.0.0.1", port))
try:
    s.sendall(b"GET /api/v1/health HTTP/1.1\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    s.recv(100)
except OSError:
    pass
s.close()
# A declared body that never comes.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
stall.append(s)
time.sleep(30)
EOF
HELPER_PIDS+=($!)
sleep 1
for _ in 1 2 3; do
    req GET /health "" -
    expect 200
done
req GET /tunnels
expect 200
# A raw request with invalid UTF-8 in the path and a NUL escape.
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/tunnels/%ff%fe" -H "Authorization: Bearer $TOKEN")
[ "$STATUS" = 404 ] || fail "invalid UTF-8 path gave $STATUS"
curl -s -o /dev/null "$BASE/tunnels/%00" || true
kill -0 "$HUB_PID" || fail "hub died"
kill "${HELPER_PIDS[0]}" 2>/dev/null || true
HELPER_PIDS=()

step "tokens never reach the log"
grep -q "cnt_\|cne_" "$WORK/hub1.log" && fail "a token appears in the hub log"

step "SIGTERM exits 0 promptly"
stop_hub

step "restart on the same database keeps the data"
start_hub 2 --rate-limit 5 --tcp-ports "$P0-$P2"
req GET "/tunnels/$TUN"
expect 200
[ "$(jget 'b["name"]')" = web2 ] && [ "$(jget 'b["metadata"]["n"]')" = "[1, 2]" ] || fail "tunnel after restart: $BODY"
[ "$(jget 'b["status"]')" = connecting ] || fail "status after restart"

step "rate limit (--rate-limit 5): 429 with Retry-After"
got429=""
for i in $(seq 1 8); do
    req GET /agents "" "$TOKEN2"
    if [ "$STATUS" = 429 ]; then got429=$i; break; fi
    expect 200
done
[ -n "$got429" ] || fail "no 429 after 8 requests"
expect 429
ra=$(header retry-after)
[[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] || fail "Retry-After '$ra'"
req GET /health "" -
expect 200
req GET /agents
expect 200

stop_hub
grep -q "cnt_\|cne_" "$WORK/hub2.log" && fail "a token appears in the hub log"
echo "PASS test_hub_api"
