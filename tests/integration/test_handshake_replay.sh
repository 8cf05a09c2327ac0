#!/usr/bin/env bash
# User story: an attacker on the network path records an agent's enrollment
# and a later link to the hub, byte for byte, and replays them to the hub.
# Neither replay is admitted: the hub answers the first handshake message
# with a fresh ephemeral key, so the recorded third message cannot
# authenticate; the hub logs the failure and closes. The enrollment token
# is not redeemed a second time, no agent connects, and the real agent's
# link is not disturbed. (tests/unit/sdk/test_chan.c replays at the channel
# level; this is the same attack against the real hub, WebSocket and all.)
source "$(dirname "$0")/lib.sh"
LINKPROXY=$SRC/tests/integration/linkproxy.py

hub_init
hub_start
REC=$(free_port)
mkdir -p "$WORK/rec"
bg recorder "$PY" "$LINKPROXY" record "$REC" "$HUB_PORT" "$WORK/rec"
wait_port 127.0.0.1 "$REC"
count() { grep -c "$1" "$WORK/hub.log" || true; }
count_gt() { [ "$(count "$1")" -gt "$2" ]; } # re-read at every call, for wait_for
# The recorded connection that carried the WebSocket upgrade to /agent
# after a given one (enroll and agent use the REST API too).
ws_recording() {
    "$PY" - "$WORK/rec" "$1" <<'EOF'
import glob, json, os, sys
after = int(sys.argv[2])
found = []
for p in glob.glob(os.path.join(sys.argv[1], "conn-*.json")):
    n = int(os.path.basename(p)[5:-5])
    chunks = json.load(open(p))
    if n > after and chunks and bytes.fromhex(chunks[0]).startswith(b"GET /agent"):
        found.append((n, p))
print(sorted(found)[0][1] if found else "")
EOF
}
conn_of() { basename "$1" .json | sed 's/conn-//'; }

step "enrollment and a link, recorded on the path"
api POST /api/v1/agents '{"name":"recorded"}'
[ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
AGENT_ID=$(echo "$BODY" | json_get id)
ET=$(echo "$BODY" | json_get enrollToken)
"$CLI_BIN" enroll --hub "http://127.0.0.1:$REC" --token "$ET" --config "$WORK/rec.json" --json \
    >"$WORK/enroll.out" 2>"$WORK/enroll.log" || fail "enroll through the recorder: $(cat "$WORK/enroll.log")"
ENROLL_REC=$(ws_recording 0)
[ -n "$ENROLL_REC" ] || fail "no enrollment handshake recorded"
# The enrollment's own link counts as a connection too.
CONN0=$(count "agent $AGENT_ID connected")
DISC0=$(count "agent $AGENT_ID disconnected")
bg agent "$CLI_BIN" agent --config "$WORK/rec.json"
AGENT_PID=$LAST_PID
wait_for 10 "the agent connected through the recorder" count_gt "agent $AGENT_ID connected" "$CONN0"
stop_pid "$AGENT_PID"
wait_for 10 "the hub to see the agent leave" count_gt "agent $AGENT_ID disconnected" "$DISC0"
LINK_REC=$(ws_recording "$(conn_of "$ENROLL_REC")")
[ -n "$LINK_REC" ] || fail "no link handshake recorded"
echo "   recorded: enrollment $(basename "$ENROLL_REC") ($("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$ENROLL_REC") chunks), link $(basename "$LINK_REC")"

# Replays a recording to the hub itself; checks that the upgrade happened
# (the replay reached the channel), that the hub closed, that it logged a
# channel failure, and that nothing was admitted.
replay_refused() {
    local file=$1 what=$2 out fails0 conn0 enr0
    fails0=$(count "link: channel failure")
    conn0=$(count "agent $AGENT_ID connected")
    enr0=$(count "enrolled in workspace")
    out=$("$PY" "$LINKPROXY" replay "$HUB_PORT" "$file")
    echo "   $what replayed: $out"
    [ "$(echo "$out" | json_get upgraded)" = True ] || fail "$what replay: the hub did not even upgrade"
    [ "$(echo "$out" | json_get closed)" = True ] || fail "$what replay: the hub kept the connection open"
    wait_for 5 "$what replay: a logged channel failure" count_gt "link: channel failure" "$fails0"
    [ "$(count "agent $AGENT_ID connected")" = "$conn0" ] || fail "$what replay: the agent was admitted"
    [ "$(count "enrolled in workspace")" = "$enr0" ] || fail "$what replay: an enrollment succeeded"
}

step "replays to the hub are refused"
replay_refused "$ENROLL_REC" enrollment
replay_refused "$LINK_REC" link
api GET "/api/v1/agents/$AGENT_ID"
[ "$(echo "$BODY" | json_get connected)" = False ] || fail "the agent shows connected after the replays"

step "a replay while the real agent is connected does not disturb it"
CONN0=$(count "agent $AGENT_ID connected")
bg agent2 "$CLI_BIN" agent --config "$WORK/rec.json"
wait_for 10 "the real agent connected" count_gt "agent $AGENT_ID connected" "$CONN0"
DISC0=$(count "agent $AGENT_ID disconnected")
replay_refused "$LINK_REC" "link (agent online)"
sleep 0.5
[ "$(count "agent $AGENT_ID disconnected")" = "$DISC0" ] || fail "the replay cut the real agent's link"
api GET "/api/v1/agents/$AGENT_ID"
[ "$(echo "$BODY" | json_get connected)" = True ] || fail "the real agent is not connected after the replay"
grep "link: channel failure" "$WORK/hub.log" | sed 's/.*link: /   hub: link: /' | sort | uniq -c
echo "PASS test_handshake_replay"
