#!/usr/bin/env bash
# User story: the hub is killed (kill -9, a crash, the OOM killer) while
# scripts create, rename and delete tunnels through the API. After every
# restart the database is intact, no acknowledged write is lost, and the
# event log tells the truth: every stored tunnel has its tunnel.created,
# every rename its tunnel.updated, every tunnel that is gone its
# tunnel.deleted (a change and its event commit together).
# CN_CRASH_CYCLES (default 100: about 85 s under ASan) kill cycles of 0.3-1 s
# of writes each.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# The system interpreter: version-manager shims take long to start, twice
# per cycle.
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
CRASHTOOL=$SRC/tests/integration/crashtool.py
CYCLES=${CN_CRASH_CYCLES:-100}
WRITERS=4

# --event-max 0: the check reads every event ever written, and the default
# cap (100,000 a workspace, oldest dropped first) is within reach of 100
# cycles (a run that wrote 102,600 acknowledged writes by cycle 62 saw the
# oldest tunnels "gone without tunnel.deleted": their events capped away).
start_hub() {
    bg hub "$HUB_BIN" serve --db "$WORK/hub.db" --listen "127.0.0.1:$HUB_PORT" \
        --tcp-ports "$TCP_BASE-$((TCP_BASE + 39))" --rate-limit 0 --max-tunnels 0 --event-max 0
    HUB_PID=$LAST_PID
    wait_for 20 "hub health" curl -sf "$HUB_URL/api/v1/health"
}

step "init and a first start"
hub_init
HUB_PORT=$(free_port)
TCP_BASE=$(free_range 40)
HUB_URL=http://127.0.0.1:$HUB_PORT
start_hub
api POST /api/v1/agents '{"name":"crash"}'
[ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
AGENT_ID=$(echo "$BODY" | json_get id)
JOURNAL=$WORK/journal

step "$CYCLES cycles of API writes ended by kill -9"
for cycle in $(seq 1 "$CYCLES"); do
    [ "$cycle" = 1 ] || start_hub
    "$PY" "$CRASHTOOL" write "$HUB_URL" "$ADMIN_TOKEN" "$AGENT_ID" "$JOURNAL" "c${cycle}" \
        "$WRITERS" >"$WORK/writer.log" 2>&1 &
    WRITER_PID=$!
    PIDS+=("$WRITER_PID")
    sleep "0.$((RANDOM % 8 + 3))"
    kill -9 "$HUB_PID"
    wait "$HUB_PID" 2>/dev/null || true
    forget_pid "$HUB_PID"
    # The writers stop on their own once the hub is gone.
    wait "$WRITER_PID" || fail "cycle $cycle: writer failed: $(tail -3 "$WORK/writer.log")"
    forget_pid "$WRITER_PID"
    out=$("$PY" "$CRASHTOOL" check "$WORK/hub.db" "$JOURNAL") ||
        fail "cycle $cycle: $(printf '\n%s' "$out")"
done
echo "$out"
# The cycles must have written something worth checking.
acks=$(grep -c '^ack ' "$JOURNAL" || true)
[ "$acks" -ge $((CYCLES * 5)) ] || fail "only $acks acknowledged writes in $CYCLES cycles"

step "the hub starts on the database the last kill left"
start_hub
api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 200 ] || fail "list after restart: $HTTP_STATUS"
stop_pid "$HUB_PID"
forget_pid "$HUB_PID"
echo "PASS test_hub_crash ($CYCLES cycles, $acks acknowledged writes)"
