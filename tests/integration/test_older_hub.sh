#!/usr/bin/env bash
# User story: an agent upgraded before its hub. A current agent's handshake
# says "tunnelDelta":true; a hub before tunnel_upsert/tunnel_remove ignores
# it and sends the agent's whole list for every tunnel made, edited, resumed
# or deleted, and for every link coming or going (CONNECT_HUB_TUNNEL_DELTA=0
# makes connect-hub such a hub, docs/agent-protocol.md). The agent takes
# each list as it comes: every new or resumed tunnel serves its first
# connection right after the API's answer, a deleted one's streams are
# closed by the agent, a tunnel its local policy refuses shows error, and
# the agent's list, `connect ls` and `connect status` agree with the API.
source "$(dirname "$0")/lib.sh"
M=8 # public TCP tunnels made, edited and deleted one by one

hub_init
CONNECT_HUB_TUNNEL_DELTA=0 hub_start --max-tunnels 0 --rate-limit 0
grep -q "CONNECT_HUB_TUNNEL_DELTA=0" "$WORK/hub.log" || fail "the hub plays no older hub"
svc_agent dev # t0 to SVC, which the agent's policy allows
# Debug: the agent logs its count after each whole list it applies.
agent_daemon dev agent 1 --log-level debug

# The agent's list as it last logged it: on the hub's hello ("connected to
# HUB (CIPHER, N tunnels)") or on a whole list ("agent XXXXXXXX: N tunnels").
agent_count() {
    grep -oE "agent ${AGENT_ID:0:8}: ([0-9]+ tunnels?$|connected to .*, [0-9]+ tunnels?\)$)" \
        "$WORK/agent.log" | tail -1 | grep -oE '[0-9]+ tunnels?\)?$' | grep -oE '^[0-9]+'
}
# agent_holds N, tunnels_are N: the agent's list, the API's, hold N (for
# wait_for, which runs them again until they do).
agent_holds() { [ "$(agent_count)" = "$1" ]; }
tunnels_are() { [ "$(api_tunnels)" = "$1" ]; }
api_tunnels() { # the API's tunnels of the agent, into $WORK/api.json; prints their count
    api GET "/api/v1/tunnels?agentId=$AGENT_ID"
    [ "$HTTP_STATUS" = 200 ] || fail "list: $HTTP_STATUS $BODY"
    echo "$BODY" >"$WORK/api.json"
    "$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["tunnels"]))' "$WORK/api.json"
}
# agree: the agent holds as many tunnels as the API lists, and `connect ls`
# shows the same ids, names and statuses.
agree() {
    local n
    n=$(api_tunnels)
    wait_for 10 "the agent's list of $n tunnels" agent_holds "$n"
    "$CLI_BIN" ls --agent "$AGENT_ID" --json --config "$WORK/dev.json" >"$WORK/ls.json" ||
        fail "connect ls"
    "$PY" - "$WORK/api.json" "$WORK/ls.json" <<'EOF' || fail "connect ls and the API disagree"
import json, sys
def rows(ts):
    return sorted((t["id"], t["name"], t["status"]) for t in ts)
api = rows(json.load(open(sys.argv[1]))["tunnels"])
ls = rows(json.load(open(sys.argv[2])))
if api != ls:
    print("api:", api, "\nls: ", ls)
    sys.exit(1)
EOF
}
# status_agrees NAME: `connect status NAME` names the tunnel the API has.
status_agrees() {
    "$CLI_BIN" status "$1" --json --config "$WORK/dev.json" >"$WORK/status.json" ||
        fail "connect status $1"
    api GET "/api/v1/tunnels/$(json_get id <"$WORK/status.json")"
    [ "$HTTP_STATUS" = 200 ] || fail "status $1: $HTTP_STATUS $BODY"
    for k in id name status; do
        [ "$(json_get "$k" <"$WORK/status.json")" = "$(echo "$BODY" | json_get "$k")" ] ||
            fail "connect status $1 and the API disagree on $k"
    done
}
cli() { "$CLI_BIN" "$@" --config "$WORK/dev.json" >/dev/null || fail "connect $*"; }
# watch NAME PORT: a connection through hub port PORT held open at the
# target, which writes $WORK/NAME ("open", then how it ended); sets HOLD.
watch() {
    bg "hold-$1" "$PY" "$TCPTOOL" hold 127.0.0.1 "$2" "WATCH $1"
    HOLD=$LAST_PID
    wait_for 10 "connection $1 open" grep -q open "$WORK/$1"
}
agree

step "$M tunnels made one by one: each serves its first connection"
entries_mark
ids=()
for i in $(seq 1 "$M"); do
    first_stream $((TCP_BASE + i)) "p$i"
    ids+=("$TUNNEL_ID")
done
entries_since
echo "   older hub: $DL list entries, $DD delta entries, $DS status entries"
# Creation k: the whole list of 1 + k tunnels, no entry alone.
[ "$DD" = 0 ] || fail "$DD delta entries from a hub before the deltas"
[ "$DL" = $((M + M * (M + 1) / 2)) ] || fail "$DL list entries for $M tunnels made"
agree
status_agrees p1

step "a tunnel to a target the agent's policy refuses goes to error"
OTHER=$(free_port)
api POST /api/v1/tunnels \
    "{\"agentId\":\"$AGENT_ID\",\"target\":\"127.0.0.1:$OTHER\",\"name\":\"refused\",\"protocol\":\"tcp\"}"
[ "$HTTP_STATUS" = 201 ] || fail "tunnel refused: $HTTP_STATUS $BODY"
REFUSED=$(echo "$BODY" | json_get id)
wait_for 10 "the refused tunnel in error" status_is "$REFUSED" error
agree
status_agrees refused
cli rm refused
agree

step "renamed, paused and resumed: a resumed tunnel serves its first connection"
entries_mark
for i in 1 2 3; do
    api PATCH "/api/v1/tunnels/${ids[$((i - 1))]}" "{\"name\":\"renamed$i\"}"
    [ "$HTTP_STATUS" = 200 ] || fail "rename: $HTTP_STATUS $BODY"
    cli pause "renamed$i"
    status_is "${ids[$((i - 1))]}" paused || fail "renamed$i not paused"
    ! serves $((TCP_BASE + i)) || fail "paused renamed$i still serves"
    cli resume "renamed$i"
    serves $((TCP_BASE + i)) || fail "resumed renamed$i does not serve its first connection"
done
entries_since
echo "   edits: $DL list entries, $DD delta entries, $DS status entries"
# Each rename and resume the whole list of M + 1; a pause its status alone
# (tunnel_status came before the deltas).
[ "$DD" = 0 ] && [ "$DL" = $((3 * 2 * (M + 1))) ] && [ "$DS" = 3 ] ||
    fail "edits sent $DL list, $DD delta and $DS status entries"
agree
status_agrees renamed2

step "a second link of the agent comes and goes: whole lists, not statuses"
entries_mark
expose dev "127.0.0.1:$SVC" --name e1
E1=$EXPOSE_PID
wait_for 10 "e1 active" status_is "$TUNNEL_ID" active
agree
stop_pid "$E1"
forget_pid "$E1"
wait_for 10 "e1 deleted" tunnels_are $((M + 1))
entries_since
echo "   expose up and down: $DL list entries, $DD delta entries, $DS status entries"
[ "$DD" = 0 ] && [ "$DS" = 0 ] || fail "e1 sent $DD delta and $DS status entries"
agree

step "deleted one by one: the agent closes their streams, the others serve"
for i in $(seq 1 "$M"); do
    watch "w$i" $((TCP_BASE + i))
    if [ $((i % 2)) = 1 ]; then
        cli rm "${ids[$((i - 1))]}"
    else
        api DELETE "/api/v1/tunnels/${ids[$((i - 1))]}"
        [ "$HTTP_STATUS" = 200 ] || fail "delete: $HTTP_STATUS $BODY"
    fi
    wait_for 10 "w$i closed" grep -q "reset\|eof" "$WORK/w$i"
    stop_pid "$HOLD"
    forget_pid "$HOLD"
    ! serves $((TCP_BASE + i)) || fail "deleted p$i still serves"
    [ "$i" = "$M" ] || serves $((TCP_BASE + M)) || fail "p$M stopped serving after p$i was deleted"
done
# The whole list without a tunnel closed its held stream at the agent
# (the hub's reset of the public connection comes behind the list).
n=$(grep -c "tunnel removed, closing the stream" "$WORK/agent.log" || true)
[ "$n" = "$M" ] || fail "the agent closed $n of $M deleted tunnels' streams"
agree
tunnels_are 1 || fail "tunnels left: $(api_tunnels)"
! grep -q "malformed\|too many tunnels" "$WORK/agent.log" || fail "the agent broke on a list"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "a control message was lost"
stop_pid "$AGENT_PID"
forget_pid "$AGENT_PID"
echo "PASS"
