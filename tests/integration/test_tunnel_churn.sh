#!/usr/bin/env bash
# User story: an agent whose tunnels change status in bursts without anyone
# editing them: public ports that are taken (each one fails to bind when the
# tunnel is made and again whenever a link of the agent comes up), and CI's
# short-lived tunnels that expire together (TTL). Each such change sends the
# agent's links that tunnel's status alone (tunnel_status,
# docs/agent-protocol.md), never the whole list again: before, each failed
# port sent the list twice and each expiry once, N tunnels' burst N whole
# lists (N^2 entries). A link of the agent coming up sends the others the
# statuses that moved, not the whole list. A link that does not take
# tunnel_status (an older agent's) gets at most one whole list per TTL
# sweep. Counted with connect_agent_tunnel_entries_sent_total.
source "$(dirname "$0")/lib.sh"
NPORTS=30    # public TCP tunnels whose port is taken
NTTL=150     # tunnels with a TTL that expire together
NTTL_TCP=10  # of which public TCP, listening until they expire
TTL=45       # seconds: all of them are made well before the first expires

hub_init
TCP_BASE=$(free_range 40)
hub_start --max-tunnels 0 --rate-limit 0
# t0 to SVC, which the agent's policy allows (else each tunnel is refused, a
# status change each).
svc_agent dev
agent_daemon dev agent_a 1
AGENT_A=$AGENT_PID

count() { # count STATUS: the agent's tunnels in that status
    api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=$1"
    echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["tunnels"]))'
}
count_is() { [ "$(count "$1")" = "$2" ]; }
# create FROM TO EXTRA [PORT]: tunnels cFROM..cTO-1 of agent dev to the
# target, each body with the JSON fields EXTRA (no braces) and, given PORT,
# hubPort PORT, PORT+1, ...
create() {
    local i port=${4:-0} hp=""
    for i in $(seq "$1" $(($2 - 1))); do
        [ "$port" = 0 ] || hp=",\"hubPort\":$((port + i - $1))"
        api POST /api/v1/tunnels \
            "{\"agentId\":\"$AGENT_ID\",\"target\":\"127.0.0.1:$SVC\",\"name\":\"c$i\",$3$hp}"
        [ "$HTTP_STATUS" = 201 ] || fail "tunnel c$i: $HTTP_STATUS $BODY"
    done
}
deltas() { # deltas LIST0 STATUS0 [DELTA0]: sets DL, DS (and DD), the entries sent since
    DL=$(($(tunnel_entries list) - $1)) DS=$(($(tunnel_entries status) - $2))
    [ -z "${3:-}" ] || DD=$(($(tunnel_entries delta) - $3))
}

step "$NPORTS public TCP tunnels whose port is taken"
bg holder "$PY" -c '
import socket, sys, time
socks = []
for p in range(int(sys.argv[1]), int(sys.argv[1]) + int(sys.argv[2])):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.listen(1); socks.append(s)
open(sys.argv[3], "w").write("ready")
time.sleep(3600)' "$TCP_BASE" "$NPORTS" "$WORK/holder.ready"
HOLDER=$LAST_PID
wait_for 10 "the ports held" test -s "$WORK/holder.ready"
l0=$(tunnel_entries list) s0=$(tunnel_entries status) d0=$(tunnel_entries delta)
[ -n "$l0" ] && [ -n "$s0" ] && [ -n "$d0" ] || fail "no connect_agent_tunnel_entries_sent_total in /metrics"
create 1 $((NPORTS + 1)) '"protocol":"tcp","public":true' "$TCP_BASE"
wait_for 10 "$NPORTS tunnels in error" count_is error "$NPORTS"
api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=error"
echo "$BODY" | "$PY" -c 'import json,sys
ts = json.load(sys.stdin)["tunnels"]
sys.exit(any("cannot listen" not in (t.get("lastError") or "") for t in ts))' ||
    fail "a tunnel in error without its port's lastError: $BODY"
deltas "$l0" "$s0" "$d0"
# Each creation sends its tunnel alone (tunnel_upsert, at once; before: the
# list of k+1 tunnels, t0 and c1..ck, test_tunnel_delta.sh), and the port's
# failure then that tunnel's status alone (before: the whole list again).
echo "   made: $DL list entries, $DD delta entries, $DS status entries"
[ "$DL" = 0 ] || fail "the creations sent $DL list entries"
[ "$DD" = "$NPORTS" ] || fail "the creations sent $DD delta entries"
[ "$DS" = "$NPORTS" ] || fail "$DS status entries for $NPORTS failed ports"

step "a second link of the agent, an older agent's, comes up: every taken port is tried again"
# Link B does not ask for tunnel_status (CONNECT_TUNNEL_STATUS=0, as an agent
# before it): the hub sends it whole lists only (docs/agent-protocol.md).
l0=$(tunnel_entries list) s0=$(tunnel_entries status)
CONNECT_TUNNEL_STATUS=0 agent_daemon dev agent_b $((NPORTS + 1))
AGENT_B=$AGENT_PID
count_is error "$NPORTS" || fail "$(count error) tunnels in error, not $NPORTS"
# Each port tried once more (before: once per port that failed before it,
# each failure syncing all the agent's tunnels again).
tries=$(grep -c "cannot listen on 127.0.0.1:" "$WORK/hub.log")
[ "$tries" = $((2 * NPORTS)) ] || fail "$tries binds of $NPORTS taken ports, made and tried again once"
deltas "$l0" "$s0"
# Link B's hello; to A the statuses the reconcile moved (each taken port's
# tunnel error -> active: before, the whole list), then each port's failure
# again its status alone (B, not yet greeted, reads them in its hello).
echo "   link up: $DL list entries, $DS status entries"
[ "$DL" = $((NPORTS + 1)) ] || fail "link B's arrival sent $DL list entries"
[ "$DS" = $((2 * NPORTS)) ] || fail "$DS status entries for $NPORTS ports retried and failed"

step "$NTTL tunnels with a TTL expire together"
TTL_BASE=$((NPORTS + 1))
create "$TTL_BASE" $((TTL_BASE + NTTL_TCP)) "\"protocol\":\"tcp\",\"public\":true,\"ttl\":$TTL" \
    $((TCP_BASE + NPORTS))
create $((TTL_BASE + NTTL_TCP)) $((TTL_BASE + NTTL)) "\"protocol\":\"tcp\",\"ttl\":$TTL"
l0=$(tunnel_entries list) s0=$(tunnel_entries status)
[ "$(count expired)" = 0 ] || fail "tunnels expired while they were being made: raise TTL"
count_is active $((NTTL + 1)) || fail "$(count active) tunnels active, not $((NTTL + 1))"
for p in $(seq $((TCP_BASE + NPORTS)) $((TCP_BASE + NPORTS + NTTL_TCP - 1))); do
    serves "$p" || fail "public TCP tunnel on port $p does not serve"
done
wait_for $((TTL + 30)) "$NTTL tunnels expired" count_is expired "$NTTL"
# The reaper sweeps once a second (at most 100 tunnels a sweep): over how
# many seconds the TTLs fall, from their expiresAt.
api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=expired"
span=$(echo "$BODY" | "$PY" -c 'import json,sys,datetime
ts = [datetime.datetime.fromisoformat(t["expiresAt"].replace("Z", "+00:00")).timestamp()
      for t in json.load(sys.stdin)["tunnels"]]
print(int(max(ts) - min(ts)) + 1)')
sleep 2 # link B's list goes on the loop's turn after the sweep
deltas "$l0" "$s0"
# Each expiry: its status alone to link A; link B, which takes whole lists
# only, one list per sweep (before: the whole list of 1 + NPORTS + NTTL
# tunnels to each link per expiry).
ALL=$((1 + NPORTS + NTTL))
echo "   expired: $DL list entries ($((DL / ALL)) lists), $DS status entries; TTLs over ${span}s"
[ "$DS" = "$NTTL" ] || fail "$DS status entries for $NTTL expiries"
[ $((DL % ALL)) = 0 ] && [ "$DL" -ge "$ALL" ] && [ "$DL" -le $(((span + 3) * ALL)) ] ||
    fail "the expiries sent $DL list entries to link B: more than one list a sweep"
for p in $(seq $((TCP_BASE + NPORTS)) $((TCP_BASE + NPORTS + NTTL_TCP - 1))); do
    "$PY" "$TCPTOOL" refused 127.0.0.1 "$p" || fail "expired tunnel's port $p still accepts"
done
count_is active 1 || fail "$(count active) tunnels active, not t0 alone"
! grep -q "could not queue control message" "$WORK/hub.log" || fail "a control message was lost"
! grep -q "malformed" "$WORK/agent_a.log" "$WORK/agent_b.log" || fail "a malformed control message"

step "the $NPORTS tunnels with a taken port paused and resumed one by one"
ids() { # ids STATUS: the agent's tunnels in that status, one id a line
    api GET "/api/v1/tunnels?agentId=$AGENT_ID&status=$1"
    echo "$BODY" | "$PY" -c 'import json,sys; print("\n".join(t["id"] for t in json.load(sys.stdin)["tunnels"]))'
}
patch_all() { # patch_all STATUS ID...: PATCH each tunnel's status
    local st=$1 id
    shift
    for id in "$@"; do
        api PATCH "/api/v1/tunnels/$id" "{\"status\":\"$st\"}"
        [ "$HTTP_STATUS" = 200 ] || fail "$st $id: $HTTP_STATUS $BODY"
    done
}
l0=$(tunnel_entries list) s0=$(tunnel_entries status)
patch_all paused $(ids error)
count_is paused "$NPORTS" || fail "$(count paused) tunnels paused, not $NPORTS"
sleep 2 # link B's last list goes on the loop's turn after the last pause
deltas "$l0" "$s0"
# A pause alone: the tunnel's status to link A, and to the older link B a
# list a loop turn at most (before: the whole list to each, at once).
echo "   paused: $DL list entries ($((DL / ALL)) lists), $DS status entries"
[ "$DS" = "$NPORTS" ] || fail "$DS status entries for $NPORTS pauses"
[ $((DL % ALL)) = 0 ] && [ "$DL" -ge "$ALL" ] && [ "$DL" -le $((NPORTS * ALL)) ] ||
    fail "the pauses sent $DL list entries: more than link B's one list a pause"
# A resume goes as the whole list, at once; the port, still taken, then
# puts each tunnel back in error.
patch_all active $(ids paused)
count_is error "$NPORTS" || fail "$(count error) tunnels in error after the resumes, not $NPORTS"
# Paused, a tunnel whose port failed is not bound again until its resume
# (before: the pause put it in error, and each sync tried every such port).
tries=$(grep -c "cannot listen on 127.0.0.1:" "$WORK/hub.log")
[ "$tries" = $((3 * NPORTS)) ] || fail "$tries binds of $NPORTS taken ports by the resumes' end"

step "link A goes: the taken ports are tried again, for the older link B alone"
l0=$(tunnel_entries list) s0=$(tunnel_entries status)
stop_pid "$AGENT_A"
forget_pid "$AGENT_A"
wait_for 10 "the ports tried again" \
    test "$(grep -c "cannot listen on 127.0.0.1:" "$WORK/hub.log")" = $((4 * NPORTS))
sleep 2 # link B's list goes on the loop's turn after the reconcile
deltas "$l0" "$s0"
# The reconcile's list, then one list on the next turn for all the ports'
# failures (before: a list per port).
echo "   link down: $DL list entries ($((DL / ALL)) lists), $DS status entries"
[ "$DS" = 0 ] || fail "$DS status entries to a link that did not ask for them"
[ "$DL" = $((2 * ALL)) ] || fail "$DL list entries to link B for $NPORTS failed ports"
count_is error "$NPORTS" || fail "$(count error) tunnels in error, not $NPORTS"

for pid in "$AGENT_B" "$HOLDER"; do
    stop_pid "$pid"
    forget_pid "$pid"
done
echo "PASS"
