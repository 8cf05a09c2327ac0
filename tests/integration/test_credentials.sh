#!/usr/bin/env bash
# User story: an admin enrolls an agent on a laptop; someone copies that
# laptop's config. The stolen token cannot act for another agent (403), and
# once the admin deletes the agent its token is dead (401) and its live link
# is closed. A tunnel the hub asks for toward a target the laptop never
# allowed is not dialled: it goes to error with the agent's reason.
source "$(dirname "$0")/lib.sh"

hub_init
hub_start
SVC=$(free_port)
bg svc "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"
works() { "$PY" "$TCPTOOL" sink 127.0.0.1 "$1" 65536 9 >/dev/null; }
refused() { "$PY" "$TCPTOOL" refused 127.0.0.1 "$1"; }

agent_enroll laptop
LAPTOP=$AGENT_ID
agent_enroll server
SERVER=$AGENT_ID
LAPTOP_TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/laptop.json")
[ -n "$LAPTOP_TOKEN" ] || fail "the laptop's config holds no API token"

step "the agent's token is scoped to its agent"
TOKEN=$LAPTOP_TOKEN api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:22\",\"agentId\":\"$SERVER\"}"
[ "$HTTP_STATUS" = 403 ] || fail "agent token created a tunnel for another agent: $HTTP_STATUS $BODY"
TOKEN=$LAPTOP_TOKEN api POST /api/v1/agents '{"name":"rogue"}'
[ "$HTTP_STATUS" = 403 ] || fail "agent token created an agent: $HTTP_STATUS"
TOKEN=$LAPTOP_TOKEN api GET /api/v1/tokens
[ "$HTTP_STATUS" = 403 ] || fail "agent token listed tokens: $HTTP_STATUS"
TOKEN=$LAPTOP_TOKEN api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 200 ] || fail "agent token cannot read tunnels: $HTTP_STATUS"

step "the admin sees the agent tokens, without secrets"
api GET /api/v1/tokens
[ "$HTTP_STATUS" = 200 ] || fail "token list: $HTTP_STATUS $BODY"
echo "$BODY" | "$PY" -c '
import json, sys
toks = json.load(sys.stdin)["tokens"]
agents = {t["agentId"] for t in toks if t["scope"] == "agent"}
assert agents == set(sys.argv[1:3]), toks
assert any(t["scope"] == "operator" for t in toks), toks
assert all("token" not in t for t in toks), toks
laptop = [t for t in toks if t["agentId"] == sys.argv[1]][0]
assert laptop["lastUsedAt"], laptop' "$LAPTOP" "$SERVER" || fail "token list: $BODY"
grep -qF "${LAPTOP_TOKEN#cnt_}" <<<"$BODY" && fail "the token list shows a secret"

step "a hub-made tunnel toward a target the agent never allowed goes to error"
bg laptop-agent "$CLI_BIN" agent --config "$WORK/laptop.json"
LAPTOP_PID=$LAST_PID
wait_for 10 "laptop online" bash -c "curl -sf -H 'Authorization: Bearer $ADMIN_TOKEN' \
    $HUB_URL/api/v1/agents/$LAPTOP | grep -q '\"connected\":true'"
api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:$SVC\",\"agentId\":\"$LAPTOP\",\"public\":true,\"protocol\":\"tcp\",\"name\":\"sneaky\"}"
[ "$HTTP_STATUS" = 201 ] || fail "create: $HTTP_STATUS $BODY"
SNEAKY=$(echo "$BODY" | json_get id)
SNEAKY_PORT=$(echo "$BODY" | json_get hubPort)
wait_for 10 "status error" status_is "$SNEAKY" error
api GET "/api/v1/tunnels/$SNEAKY"
[ "$(echo "$BODY" | json_get lastError)" = "target not allowed by the agent's policy" ] ||
    fail "lastError: $BODY"
refused "$SNEAKY_PORT" || fail "the agent dialled a target it never allowed"
grep -q "does not allow" "$WORK/laptop-agent.log" || fail "the agent did not say why"

step "what an expose on the laptop named, the daemon serves"
expose laptop "127.0.0.1:$SVC" --public --protocol tcp --name mine
works "$TUNNEL_PORT" || fail "the exposed tunnel does not serve"
grep -qx "127.0.0.1:$SVC" "$WORK/laptop.json.exposed" || fail "expose did not record its target"
# The record now covers the earlier tunnel too: on the next list it is served.
api PATCH "/api/v1/tunnels/$SNEAKY" '{"status":"paused"}'
api PATCH "/api/v1/tunnels/$SNEAKY" '{"status":"active"}'
wait_for 5 "the earlier tunnel active" status_is "$SNEAKY" active
works "$SNEAKY_PORT" || fail "the daemon does not serve a target an expose named"
stop_pid "$EXPOSE_PID"

step "deleting the agent revokes its token and closes its link at once"
api DELETE "/api/v1/agents/$LAPTOP"
[ "$HTTP_STATUS" = 200 ] || fail "delete agent: $HTTP_STATUS $BODY"
TOKEN=$LAPTOP_TOKEN api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 401 ] || fail "the deleted agent's token still works: $HTTP_STATUS"
wait_for 5 "the hub closes the laptop's link" grep -q "agent $LAPTOP deleted: closing its link" "$WORK/hub.log"
wait_for 5 "the laptop agent sees its link closed" grep -q "disconnected from" "$WORK/laptop-agent.log"
api GET /api/v1/tokens
echo "$BODY" | grep -q "$LAPTOP" && fail "the deleted agent's token is still listed"
# The other agent's token is untouched.
SERVER_TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/server.json")
TOKEN=$SERVER_TOKEN api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 200 ] || fail "the other agent's token: $HTTP_STATUS"
stop_pid "$LAPTOP_PID"

echo "test_credentials: all checks passed"
