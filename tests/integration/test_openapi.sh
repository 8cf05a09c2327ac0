#!/usr/bin/env bash
# User story: a developer points an OpenAPI tool at a running hub. GET
# /api/v1/openapi.json answers without a token, as application/json, with
# exactly the bytes of docs/openapi.json (HEAD too, without them). Then a
# tour of the API calls every documented operation on a real hub with real
# agents, and every answer (successes and the usual errors alike) is one
# the document promises: its status among the operation's responses, its
# content type, and its body valid against the response's schema
# (openapi_tool.py response); every body the hub took fits the documented
# request schema (openapi_tool.py request). The tour must have called every operation
# the document lists, so a new operation needs its place here too.
source "$(dirname "$0")/lib.sh"
TOOL=$SRC/tests/integration/openapi_tool.py
SPEC=$SRC/docs/openapi.json
: >"$WORK/seen"
N=0

# call METHOD PATH [BODY] [TOKEN]: sends the request (TOKEN "-" for none,
# default the operator's), sets STATUS and OUT (the body's file, kept for
# the secrets grep), and checks the answer against the document.
call() {
    local method=$1 path=$2 body=${3:-} token=${4:-$ADMIN_TOKEN}
    N=$((N + 1))
    OUT=$WORK/resp-$N.json
    local args=(-s -o "$OUT" -D "$WORK/resp-$N.headers" -w '%{http_code} %{content_type}' -X "$method")
    [ "$token" = - ] || args+=(-H "Authorization: Bearer $token")
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data "$body")
    local res ctype
    res=$(curl "${args[@]}" "$HUB_URL$path")
    STATUS=${res%% *}
    ctype=${res#* }
    "$PY" "$TOOL" response "$SPEC" "$method" "$path" "$STATUS" "$OUT" "$ctype" >>"$WORK/seen" ||
        fail "$method $path answered $STATUS, not as documented: $("$PY" "$TOOL" response "$SPEC" "$method" "$path" "$STATUS" "$OUT" "$ctype" | tail -5)"
    # A body the hub took must fit the documented request schema.
    if [ -n "$body" ] && [ "${STATUS:0:1}" = 2 ]; then
        printf '%s' "$body" >"$WORK/req-$N.json"
        "$PY" "$TOOL" request "$SPEC" "$method" "$path" "$WORK/req-$N.json" ||
            fail "$method $path took a body its documented schema refuses (above)"
    fi
}
# expect METHOD PATH STATUS [BODY] [TOKEN]
expect() {
    call "$1" "$2" "${4:-}" "${5:-}"
    [ "$STATUS" = "$3" ] || fail "$1 $2: $STATUS, expected $3: $(head -c 300 "$OUT")"
}
field() { json_get "$1" <"$OUT"; }

# enroll NAME: an agent through the API, enrolled with `connect enroll`;
# sets AGENT_ID.
enroll() {
    expect POST /api/v1/agents 201 "{\"name\":\"$1\"}"
    AGENT_ID=$(field id)
    field enrollToken | "$CLI_BIN" enroll --hub "$HUB_URL" --token - --config "$WORK/$1.json" --json \
        >"$WORK/$1-enroll.out" 2>"$WORK/$1-enroll.log" || fail "connect enroll $1: $(cat "$WORK/$1-enroll.log")"
}

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT"

step "GET /api/v1/openapi.json: the file's bytes, no token, application/json"
expect GET /api/v1/openapi.json 200 "" -
cmp "$OUT" "$SPEC" || fail "the served document differs from docs/openapi.json (rebuild?)"
grep -qi '^content-type: application/json' "$WORK/resp-$N.headers" || fail "content type: $(cat "$WORK/resp-$N.headers")"
size=$(wc -c <"$SPEC")
head=$(curl -s -I "$HUB_URL/api/v1/openapi.json")
grep -q '^HTTP/1.1 200' <<<"$head" || fail "HEAD: $head"
grep -qi "^content-length: $size" <<<"$head" || fail "HEAD: no Content-Length $size: $head"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["openapi"]=="3.1.0"' "$OUT" ||
    fail "the served document is not OpenAPI 3.1"

step "health, metrics"
expect GET /api/v1/health 200 "" -
expect GET /metrics 200 "" -

step "workspaces and tokens"
expect POST /api/v1/workspaces 201 '{"name":"second"}'
expect POST /api/v1/workspaces 409 '{"name":"second"}'
expect POST /api/v1/workspaces 422 '{"name":"x","color":"red"}'
expect POST /api/v1/workspaces 401 '{"name":"third"}' -
expect GET /api/v1/workspaces 200
expect POST "/api/v1/workspaces/$WS_ID/tokens" 201 '{"name":"ci","scope":"member"}'
MEMBER=$(field token)
MEMBER_ID=$(field id)
secret "$MEMBER"
expect GET /api/v1/workspaces 403 "" "$MEMBER"
expect GET /api/v1/tokens 403 "" "$MEMBER"
expect GET /api/v1/tokens 200
expect GET /api/v1/tokens?bogus=1 422
expect DELETE "/api/v1/tokens/$MEMBER_ID" 200
expect DELETE "/api/v1/tokens/$MEMBER_ID" 404
expect GET /api/v1/agents 401 "" "$MEMBER"

step "agents"
enroll exposer
EXPOSER=$AGENT_ID
enroll reacher
REACHER=$AGENT_ID
expect POST /api/v1/agents 400 '{"name":'
expect GET /api/v1/agents 200
expect GET "/api/v1/agents/$EXPOSER" 200
expect GET /api/v1/agents/00000000-0000-4000-8000-000000000000 404

step "tunnels and reach"
expect POST /api/v1/tunnels 201 "{\"target\":\"127.0.0.1:9\",\"agentId\":\"$EXPOSER\",\"name\":\"web\",\"protocol\":\"http\",\"public\":true,\"httpUser\":\"bob\",\"ttl\":3600,\"metadata\":{\"team\":\"a\"}}"
WEB=$(field id)
CREATE_REQ=$WORK/req-$N.json
expect POST /api/v1/tunnels 201 "{\"target\":{\"host\":\"127.0.0.1\",\"port\":5432},\"agentId\":\"$EXPOSER\",\"protocol\":\"postgresql\",\"public\":true}"
DB=$(field id)
expect POST /api/v1/tunnels 409 "{\"target\":\"127.0.0.1:9\",\"agentId\":\"$EXPOSER\",\"name\":\"web\"}"
expect POST /api/v1/tunnels 422 "{\"target\":\"127.0.0.1:0\",\"agentId\":\"$EXPOSER\",\"ttl\":0}"
expect GET /api/v1/tunnels 200
expect GET "/api/v1/tunnels?status=connecting&agentId=$EXPOSER" 200
expect GET "/api/v1/tunnels?status=sleeping" 422
expect GET "/api/v1/tunnels/$WEB" 200
TUNNEL_OUT=$OUT
expect PATCH "/api/v1/tunnels/$DB" 200 '{"status":"paused","metadata":{"user":"app","database":"appdb"}}'
expect PATCH "/api/v1/tunnels/$DB" 422 '{}'
expect POST "/api/v1/tunnels/$DB/connect" 200 "{\"agentId\":\"$REACHER\"}"
expect POST "/api/v1/tunnels/$DB/connect" 422 '{"localPort":70000}'

step "shares"
expect POST "/api/v1/tunnels/$WEB/shares" 201 '{"name":"tester","expiresIn":"7d","allowedMethods":["GET"],"allowedPaths":["/api/*"],"rateLimitPerMinute":30,"httpUser":"eve"}'
SHARE=$(field id)
expect POST "/api/v1/tunnels/$WEB/shares" 422 '{"expiresIn":"1y","rateLimitPerMinute":0}'
expect GET "/api/v1/tunnels/$WEB/shares" 200
expect GET /api/v1/shares 200
expect GET "/api/v1/shares/$SHARE" 200
expect GET "/api/v1/shares/$SHARE/logs?limit=10" 200
expect GET "/api/v1/shares/$SHARE/logs?before=0" 422
expect DELETE "/api/v1/shares/$SHARE" 200
# A TCP share, redeemed with its token alone (connect reach SHARE_URL).
expect POST "/api/v1/tunnels/$DB/shares" 201 '{"name":"outsider","expiresIn":"1h","rateLimitPerMinute":10}'
TCP_SHARE=$(field id)
TCP_TOKEN=$(field shareUrl)
TCP_TOKEN=${TCP_TOKEN##*/}
expect POST /api/v1/share-redemptions 200 "{\"token\":\"$TCP_TOKEN\",\"localPort\":16543}" -
expect POST /api/v1/share-redemptions 404 '{"token":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}' -
expect POST /api/v1/share-redemptions 422 '{"token":"x","extra":1}' -
expect DELETE "/api/v1/shares/$TCP_SHARE" 200
expect POST /api/v1/share-redemptions 410 "{\"token\":\"$TCP_TOKEN\"}" -

step "recorded requests and replay"
# A request to the public HTTP tunnel: the edge answers it (401: the tunnel
# has basic auth) and records it.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: web.localhost:$EDGE_PORT" "http://127.0.0.1:$EDGE_PORT/api/x?y=1")
[ "$code" = 401 ] || fail "the edge answered $code to a request without credentials"
wait_for 10 "the request recorded" sh -c "curl -sf -H 'Authorization: Bearer $ADMIN_TOKEN' '$HUB_URL/api/v1/tunnels/$WEB/requests' | grep -q '\"id\"'"
expect GET "/api/v1/tunnels/$WEB/requests?limit=5" 200
RID=$(json_get requests.0.id <"$OUT")
expect GET "/api/v1/tunnels/$WEB/requests?after=0" 200
expect GET "/api/v1/tunnels/$WEB/requests?before=1&after=0" 422
expect GET "/api/v1/requests/$RID" 200
expect GET /api/v1/requests/999999 404
expect POST "/api/v1/requests/$RID/replay" 202 '{}'
expect POST "/api/v1/requests/$RID/replay" 422 '{"x":1}'

step "events and webhooks"
expect GET "/api/v1/events?limit=50&tunnelId=$WEB" 200
expect GET "/api/v1/events?after=0" 200
expect GET "/api/v1/events?since=yesterday" 422
expect POST /api/v1/webhooks 201 '{"url":"http://127.0.0.1:9/hook","events":["tunnel.*","agent.connected"]}'
HOOK=$(field id)
expect POST /api/v1/webhooks 422 '{"url":"ftp://example.test/"}'
expect GET /api/v1/webhooks 200
expect GET "/api/v1/webhooks/$HOOK" 200
expect PATCH "/api/v1/webhooks/$HOOK" 200 '{"enabled":false}'
expect GET "/api/v1/webhooks/$HOOK/deliveries?limit=5" 200
expect DELETE "/api/v1/webhooks/$HOOK" 200

step "deletes"
expect DELETE "/api/v1/tunnels/$WEB" 200
expect DELETE "/api/v1/tunnels/$WEB" 404
expect DELETE "/api/v1/agents/$EXPOSER" 200

step "every documented operation was called"
missing=$("$PY" - "$SPEC" "$WORK/seen" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
seen = {tuple(l.split()[:2]) for l in open(sys.argv[2]) if l.strip()}
ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item
       if m in ("get", "put", "post", "delete", "patch", "options", "head", "trace")}
for m, p in sorted(ops - seen):
    print(m, p)
PY
)
[ -z "$missing" ] || fail "the tour did not call: $missing"
step "the check refuses an answer the document does not promise"
# A document whose Tunnel lost a field, and whose TunnelCreate lost one.
"$PY" - "$SPEC" "$WORK/doctored.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["components"]["schemas"]["Tunnel"]
del t["properties"]["httpUser"]
t["required"].remove("httpUser")
del d["components"]["schemas"]["TunnelCreate"]["properties"]["ttl"]
json.dump(d, open(sys.argv[2], "w"))
PY
if out=$("$PY" "$TOOL" response "$WORK/doctored.json" GET "/api/v1/tunnels/$WEB" 200 "$TUNNEL_OUT" application/json); then
    fail "a tunnel with an undocumented field passed"
fi
grep -q 'field httpUser is not documented' <<<"$out" || fail "refused for another reason: $out"
if out=$("$PY" "$TOOL" request "$WORK/doctored.json" POST /api/v1/tunnels "$CREATE_REQ"); then
    fail "a request with an undocumented field passed"
fi
grep -q 'field ttl is not documented' <<<"$out" || fail "request refused for another reason: $out"
if "$PY" "$TOOL" response "$SPEC" GET "/api/v1/tunnels/$WEB" 418 "$TUNNEL_OUT" application/json >/dev/null; then
    fail "an undocumented status passed"
fi
if "$PY" "$TOOL" response "$SPEC" GET "/api/v1/tunnels/$WEB" 200 "$TUNNEL_OUT" text/html >/dev/null; then
    fail "an undocumented content type passed"
fi

echo "checked $N answers against docs/openapi.json, $(sort -u "$WORK/seen" | wc -l) operation/status pairs"
echo "PASS test_openapi"
