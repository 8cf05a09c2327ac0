#!/usr/bin/env bash
# User story: one agent serves a thousand tunnels (docs/scaling.md). Its
# tunnel list is far longer than one CONTROL frame (64 KiB): the hub sends
# it in tunnels_page messages and the agent takes it whole
# (docs/agent-protocol.md, "Long tunnel lists"). Every tunnel goes active,
# a sample answers end to end, a tunnel deleted or made while the agent is
# online sends that entry alone (tunnel_remove, tunnel_upsert; not the
# list), health verdicts on them all send one tunnel's status each (not the
# list), and the API refuses an
# agent's tunnel past HUB_API_TUNNELS_PER_AGENT... (checked in the hub's
# unit tests, test_api.c, which need not create 4,096 tunnels here).
source "$(dirname "$0")/lib.sh"
N=${CN_MANY_TUNNELS:-1000}

hub_init
# The target: nginx with a deep accept queue, since the agent's health
# probes reach it for every tunnel at once (python's http.server queues 5).
HTTP_PORT=$(free_port)
NGINX_CONF="server { listen 127.0.0.1:$HTTP_PORT backlog=4096; root $WORK/nginx/www; }"
nginx_serve nginx "$NGINX_CONF"
NGINX_PID=$LAST_PID
wait_port 127.0.0.1 "$HTTP_PORT"
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --max-tunnels 0 --rate-limit 0
agent_enroll dev

step "$N public HTTP tunnels of one agent"
# `expose --keep` records the target in the agent's local policy and
# leaves the first tunnel behind; the API makes the others.
expose dev "127.0.0.1:$HTTP_PORT" --public --protocol http --name t0 --keep
stop_pid "$EXPOSE_PID"
forget_pid "$EXPOSE_PID"
# create FROM TO: tunnels tFROM..tTO-1 of agent dev, all to the same target.
create() {
    "$PY" - "$HUB_PORT" "$ADMIN_TOKEN" "$AGENT_ID" "$HTTP_PORT" "$1" "$2" <<'PYEOF' || fail "creating tunnels $1-$2"
import http.client, json, sys
port, token, agent, target = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
for i in range(int(sys.argv[5]), int(sys.argv[6])):
    body = json.dumps({"agentId": agent, "target": "127.0.0.1:" + target, "protocol": "http",
                       "public": True, "name": "t%d" % i})
    c.request("POST", "/api/v1/tunnels", body,
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 201:
        sys.exit("tunnel %d: %d %s" % (i, r.status, data[:200]))
PYEOF
}
create 1 "$N"
active() {
    api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=active"
    echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))'
}
active_is() { [ "$(active)" = "$1" ]; }
echo "   $N tunnels created"

step "the agent gets all $N in one paged list and serves them"
# Health probes every 4 s (10 s by default), for the verdicts at the end.
CONNECT_HEALTH_INTERVAL_MS=4000 bg agent "$CLI_BIN" agent --config "$WORK/dev.json"
AGENT_PID=$LAST_PID
wait_for 30 "$N tunnels active" active_is "$N"
probe() { # probe NAME: 200 and the target's page through the edge
    curl -s -m 10 -H "Host: $1.localhost" "http://127.0.0.1:$EDGE_PORT/1k.bin" | cmp -s - "$WORK/nginx/www/1k.bin"
}
for i in 0 1 2 $(seq 7 97 $((N - 1))) $((N - 1)); do
    probe "t$i" || fail "tunnel t$i does not answer through the edge"
done
wait_for 10 "the agent's paged list" grep -q "$N tunnels (paged list)" "$WORK/agent.log"
grep -q "tunnel list to follow in pages" "$WORK/agent.log" || fail "the hello did not announce pages"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "the hub could not queue a control message"
echo "   $N active; a sample of $(($(seq 7 97 $((N - 1)) | wc -l) + 4)) answered end to end"

step "a deletion reaches the agent as that entry alone"
list0=$(tunnel_entries list) delta0=$(tunnel_entries delta)
[ -n "$list0" ] && [ -n "$delta0" ] || fail "no connect_agent_tunnel_entries_sent_total in /metrics"
api DELETE "/api/v1/tunnels/$(api GET "/api/v1/tunnels?agentId=$AGENT_ID" >/dev/null
    echo "$BODY" | "$PY" -c 'import json,sys
print([t["id"] for t in json.load(sys.stdin)["tunnels"] if t["name"] == "t1"][0])')"
[ "$HTTP_STATUS" = 200 ] || fail "delete t1: $HTTP_STATUS $BODY"
[ "$(tunnel_entries delta)" = $((delta0 + 1)) ] && [ "$(tunnel_entries list)" = "$list0" ] ||
    fail "the deletion sent $(($(tunnel_entries list) - list0)) list and $(($(tunnel_entries delta) - delta0)) delta entries"
[ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Host: t1.localhost" \
    "http://127.0.0.1:$EDGE_PORT/")" = 404 ] || fail "deleted tunnel t1 still answers"
probe "t$((N - 1))" || fail "tunnel t$((N - 1)) stopped answering after the change"
# Only t1's own pooled stream may close as removed (the hub's pool or the
# agent's removal, whichever comes first); any other would be a lost entry.
! grep "removed, closing" "$WORK/agent.log" | grep -qv " tunnel t1 stream " ||
    fail "the agent acted on a partial list"
! grep -q "malformed\|bad tunnel list page" "$WORK/agent.log" || fail "a malformed list"
step "200 more made while the agent is online: each sends its entry alone"
# Before: each sent the whole list again (about 140 KB in 3 pages here),
# 200 * 1,100 entries in all.
list0=$(tunnel_entries list) delta0=$(tunnel_entries delta)
create "$N" $((N + 200))
echo "   200 made: $(($(tunnel_entries list) - list0)) list entries, $(($(tunnel_entries delta) - delta0)) delta entries"
[ "$(tunnel_entries delta)" = $((delta0 + 200)) ] && [ "$(tunnel_entries list)" = "$list0" ] ||
    fail "200 tunnels made sent $(($(tunnel_entries list) - list0)) list and $(($(tunnel_entries delta) - delta0)) delta entries"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "the hub could not queue a control message"
for i in $N $((N + 99)) $((N + 199)); do
    probe "t$i" || fail "the new tunnel t$i does not answer"
done
echo "   the agent holds $((N + 199)) tunnels; new ones answer"

M=$((N + 199))
step "$M health verdicts each way: one tunnel's status each, never the whole list again"
# Before tunnel_status, each verdict sent the whole list: M verdicts cost
# M*M entries.
in_status() { # in_status STATUS COUNT
    api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=$1"
    [ "$(echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))')" = "$2" ]
}
downs() { grep -c "is down:" "$WORK/agent.log" || true; }
list0=$(tunnel_entries list) status0=$(tunnel_entries status) downs0=$(downs)
[ -n "$list0" ] && [ -n "$status0" ] || fail "no connect_agent_tunnel_entries_sent_total in /metrics"
stop_pid "$NGINX_PID"
forget_pid "$NGINX_PID"
wait_for 120 "all $M tunnels in error (target unhealthy)" in_status error "$M"
list1=$(tunnel_entries list) status1=$(tunnel_entries status)
echo "   down: $((status1 - status0)) status updates, $((list1 - list0)) list entries sent"
[ $((status1 - status0)) = "$M" ] || fail "$((status1 - status0)) status updates for $M verdicts"
[ $((list1 - list0)) -lt "$M" ] || fail "the verdicts sent $((list1 - list0)) list entries"
# Two more probe rounds: an agent that had not taken the new status would
# report each tunnel down again every round (until the hub lists it in error).
sleep 9
[ $(($(downs) - downs0)) = "$M" ] ||
    fail "$(($(downs) - downs0)) down reports for $M tunnels: the agent missed statuses"
nginx_serve nginx "$NGINX_CONF"
NGINX_PID=$LAST_PID
wait_port 127.0.0.1 "$HTTP_PORT"
wait_for 120 "all $M tunnels active again (target healthy)" in_status active "$M"
list2=$(tunnel_entries list) status2=$(tunnel_entries status)
echo "   up: $((status2 - status1)) status updates, $((list2 - list1)) list entries sent"
[ $((status2 - status1)) = "$M" ] || fail "$((status2 - status1)) status updates for $M verdicts"
[ $((list2 - list1)) -lt "$M" ] || fail "the verdicts sent $((list2 - list1)) list entries"
probe "t$((M - 1))" || fail "tunnel t$((M - 1)) does not answer once healthy again"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "a control message was lost"
! grep -q "malformed" "$WORK/agent.log" || fail "a malformed control message"
stop_pid "$AGENT_PID"
forget_pid "$AGENT_PID"
echo "PASS"
