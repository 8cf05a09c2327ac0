#!/usr/bin/env bash
# User story: a developer downloads a database dump through a public TCP
# tunnel, and the agent (or the hub) dies in the middle. The client must be
# able to tell: a transfer that did not end with the target's own FIN ends in
# a reset (ECONNRESET), never in a clean EOF that makes a truncated dump look
# whole. The same holds toward the target when the hub dies. A frozen agent
# (kill -STOP) does not hold new clients: they are refused within the 2 s
# open deadline, the hub declares the link dead within about 3 s, and the
# tunnel serves again once the agent runs (kill -CONT).
source "$(dirname "$0")/lib.sh"

hub_init
hub_start
agent_enroll faults
SVC=$(free_port)
export CN_TCPTOOL_DIR=$WORK
bg svc "$PY" "$TCPTOOL" server "$SVC"
wait_port 127.0.0.1 "$SVC"
not_active() { ! status_is "$1" active; }

step "a 64 MiB download cut by kill -9 of the agent ends in ECONNRESET"
expose faults "127.0.0.1:$SVC" --public --protocol tcp --name dump --keep
PORT=$TUNNEL_PORT
"$PY" "$TCPTOOL" sink 127.0.0.1 "$PORT" 65536 1 >/dev/null || fail "the tunnel does not serve"
"$PY" "$TCPTOOL" cut 127.0.0.1 "$PORT" $((64 << 20)) 5 $((16 << 20)) "$WORK/ready" "$WORK/go" \
    >"$WORK/cut.out" 2>&1 &
CUT_PID=$!
PIDS+=("$CUT_PID")
wait_for 30 "the download to pass 16 MiB" test -e "$WORK/ready"
kill -9 "$EXPOSE_PID"
wait "$EXPOSE_PID" 2>/dev/null || true
touch "$WORK/go"
set +e
wait "$CUT_PID"
rc=$?
set -e
cat "$WORK/cut.out"
[ "$rc" = 0 ] || fail "the client did not get ECONNRESET: $(cat "$WORK/cut.out")"
grep -q "connection reset after" "$WORK/cut.out" || fail "unexpected client output"

step "a frozen agent: new clients refused by RST within ~2.5 s, status leaves active within ~3.5 s"
expose faults "127.0.0.1:$SVC" --public --protocol tcp --name frozen
FROZEN_ID=$TUNNEL_ID FROZEN_PORT=$TUNNEL_PORT FROZEN_PID=$EXPOSE_PID
"$PY" "$TCPTOOL" sink 127.0.0.1 "$FROZEN_PORT" 65536 2 >/dev/null || fail "the tunnel does not serve"
status_is "$FROZEN_ID" active || fail "status before the freeze: $(tunnel_status "$FROZEN_ID")"
kill -STOP "$FROZEN_PID"
T0=$(date +%s%N)
# Bounds are generous for ASan builds on a loaded machine: 2 s deadline + slack.
"$PY" "$TCPTOOL" rst 127.0.0.1 "$FROZEN_PORT" 2.8 || fail "a new connection to a frozen agent was not reset in time"
wait_for 6 "the frozen agent's tunnel to leave active" not_active "$FROZEN_ID"
LEFT_MS=$((($(date +%s%N) - T0) / 1000000))
echo "   tunnel left active ${LEFT_MS} ms after the freeze"
[ "$LEFT_MS" -le 4500 ] || fail "the hub took ${LEFT_MS} ms to see the frozen agent (bound 4500)"
"$PY" "$TCPTOOL" rst 127.0.0.1 "$FROZEN_PORT" 1.0 || fail "an offline agent's port did not refuse at once"
kill -CONT "$FROZEN_PID"
wait_for 10 "the thawed agent's tunnel to be active again" status_is "$FROZEN_ID" active
wait_for 10 "the thawed agent to serve again" "$PY" "$TCPTOOL" sink 127.0.0.1 "$FROZEN_PORT" 65536 3

step "the hub dies: the target sees a reset, not a clean close"
expose faults "127.0.0.1:$SVC" --public --protocol tcp --name watched
PORT=$TUNNEL_PORT
bg hold "$PY" "$TCPTOOL" hold 127.0.0.1 "$PORT" "WATCH target-side"
wait_for 10 "the target to see the stream" grep -q open "$WORK/target-side"
kill -9 "$HUB_PID"
wait "$HUB_PID" 2>/dev/null || true
wait_for 10 "the target's connection to end" grep -qv open "$WORK/target-side"
[ "$(cat "$WORK/target-side")" = reset ] ||
    fail "the target saw '$(cat "$WORK/target-side")' when the hub died, not a reset"

echo "test_stream_faults: all checks passed"
