#!/usr/bin/env bash
# User story: CI pipelines make and delete short-lived tunnels on one agent
# all day. Each tunnel made, edited, resumed or deleted costs each of the
# agent's links one entry (tunnel_upsert / tunnel_remove,
# docs/agent-protocol.md), not the agent's whole list again: before, N
# tunnels made one by one and deleted cost N^2 entries encoded, encrypted,
# sent and parsed. A tunnel made after the link is up serves its first
# connection right after the API's answer, for a new agent and for an older
# one (CONNECT_TUNNEL_DELTA=0, as an agent before the deltas), which still
# gets whole lists. Counted with connect_agent_tunnel_entries_sent_total.
source "$(dirname "$0")/lib.sh"
N=150    # tunnels made and deleted one by one, per link
EDITS=10 # of which renamed, then paused and resumed

hub_init
hub_start --max-tunnels 0 --rate-limit 0
svc_agent dev # t0 to SVC, which the agent's policy allows

count() { # count: the agent's tunnels
    api GET "/api/v1/tunnels?agentId=$AGENT_ID"
    echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))'
}
# churn PREFIX: N tunnels made one by one, EDITS of them renamed, paused
# and resumed, then all N deleted one by one.
churn() {
    local i ids=()
    for i in $(seq 1 "$N"); do
        api POST /api/v1/tunnels \
            "{\"agentId\":\"$AGENT_ID\",\"target\":\"127.0.0.1:$SVC\",\"name\":\"$1$i\",\"protocol\":\"tcp\"}"
        [ "$HTTP_STATUS" = 201 ] || fail "tunnel $1$i: $HTTP_STATUS $BODY"
        ids+=("$(echo "$BODY" | json_get id)")
    done
    for i in $(seq 0 $((EDITS - 1))); do
        for body in "{\"name\":\"$1r$i\"}" '{"status":"paused"}' '{"status":"active"}'; do
            api PATCH "/api/v1/tunnels/${ids[$i]}" "$body"
            [ "$HTTP_STATUS" = 200 ] || fail "PATCH $body: $HTTP_STATUS $BODY"
        done
    done
    for i in "${ids[@]}"; do
        api DELETE "/api/v1/tunnels/$i"
        [ "$HTTP_STATUS" = 200 ] || fail "delete $i: $HTTP_STATUS $BODY"
    done
}

step "a new agent's link: a tunnel made after it came up serves at once"
agent_daemon dev agent_a 1
AGENT_A=$AGENT_PID
entries_mark
[ -n "$L0" ] && [ -n "$S0" ] && [ -n "$D0" ] || fail "no connect_agent_tunnel_entries_sent_total in /metrics"
first_stream "$TCP_BASE" p1
entries_since
[ "$DL" = 0 ] && [ "$DD" = 1 ] || fail "the new tunnel sent $DL list and $DD delta entries"

step "$N tunnels made and deleted one by one on the new agent"
BASE=$(count) # t0 and p1
entries_mark
churn a
wait_eq 10 "the deletions done" "$BASE" count
entries_since
# One entry per tunnel made, edited, resumed or deleted; a pause is its
# status alone. Before: the whole list each time, 2*N*BASE + N^2 entries.
echo "   new agent: $DL list entries, $DD delta entries, $DS status entries"
[ "$DL" = 0 ] || fail "$DL list entries sent to a link that takes deltas"
[ "$DD" = $((2 * N + 2 * EDITS)) ] || fail "$DD delta entries for $N tunnels made and deleted"
[ "$DS" = "$EDITS" ] || fail "$DS status entries for $EDITS pauses"
# The agent applied them: the last deletion's entry is gone, t0 and p1 serve.
serves "$TCP_BASE" || fail "p1 no longer serves after the churn"
! grep -q "malformed\|too many tunnels" "$WORK/agent_a.log" || fail "link A broke on a delta"
stop_pid "$AGENT_A"
forget_pid "$AGENT_A"

step "two connect expose processes: the second's tunnel and link come and go"
# Each `connect expose` link names its tunnel and learns of that one alone:
# e2 made, E2's link coming up and going (each moving e2's status) and e2
# deleted tell E1 nothing (before: E1 got the agent's whole list each
# time, four lists).
expose dev "127.0.0.1:$SVC" --name e1
E1=$EXPOSE_PID
entries_mark
expose dev "127.0.0.1:$SVC" --name e2
E2=$EXPOSE_PID
E2_LOG=$WORK/expose-dev-$EXPOSES.log
wait_for 10 "e2 active" status_is "$TUNNEL_ID" active
stop_pid "$E2"
forget_pid "$E2"
wait_eq 10 "e2 deleted" $((BASE + 1)) count
entries_since
echo "   expose e2 up and down: $DL list entries, $DD delta entries, $DS status entries"
# E2's hello lists its own tunnel alone.
[ "$DL" = 1 ] || fail "$DL list entries: more than E2's hello of e2"
[ "$DD" = 0 ] && [ "$DS" = 0 ] || fail "E1 was told of e2: $DD delta, $DS status entries"
grep -q "connected to .*, 1 tunnel)" "$E2_LOG" || fail "E2's hello listed more than e2"
stop_pid "$E1"
forget_pid "$E1"
BASE=$(count)

step "an older agent's link (CONNECT_TUNNEL_DELTA=0): whole lists, and a new tunnel serves at once"
CONNECT_TUNNEL_DELTA=0 agent_daemon dev agent_b "$BASE"
AGENT_B=$AGENT_PID
entries_mark
first_stream $((TCP_BASE + 1)) p2
entries_since
[ "$DD" = 0 ] && [ "$DL" = $((BASE + 1)) ] || fail "the new tunnel sent link B $DL list and $DD delta entries"
BASE=$(count)
entries_mark
churn b
wait_eq 10 "the deletions done" "$BASE" count
entries_since
# What every link got before: creation k the list of BASE+k tunnels,
# deletion k that of BASE+N-k, each edit and resume the list of BASE+N.
echo "   older agent: $DL list entries, $DD delta entries, $DS status entries"
[ "$DD" = 0 ] || fail "$DD delta entries sent to a link that did not ask for them"
[ "$DL" = $((2 * N * BASE + N * N + 2 * EDITS * (BASE + N))) ] ||
    fail "$DL list entries to the older link"
serves $((TCP_BASE + 1)) || fail "p2 no longer serves after the churn"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "a control message was lost"
stop_pid "$AGENT_B"
forget_pid "$AGENT_B"
echo "PASS"
