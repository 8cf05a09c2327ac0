#!/usr/bin/env bash
# User story: an agent host crashes again and again (kill -9, the OOM
# killer, a reboot) while clients move data through its public TCP tunnel.
# Each time, the client of a cut download gets a reset (never a clean EOF),
# the restarted agent brings the tunnel back (the time to recover is
# measured), and the hub loses nothing: its open file descriptors are the
# same as before the first kill and its resident memory stays within a
# stated bound.
# CN_AGENT_KILLS (default 20) kill cycles; CN_KILL_RSS_SLACK_KIB (default
# 8192) is the allowed RSS growth of the hub.
source "$(dirname "$0")/lib.sh"

CYCLES=${CN_AGENT_KILLS:-20}
RSS_SLACK_KIB=${CN_KILL_RSS_SLACK_KIB:-8192}
# ASan's quarantine holds up to 256 MiB of freed memory before reusing it,
# which would make RSS growth meaningless as a measure of lost memory; a
# small quarantine keeps use-after-free detection and makes RSS honest.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}quarantine_size_mb=4"

hub_init
hub_start
agent_enroll victim
tcptool_start

ms() { echo $(($(date +%s%N) / 1000000)); }
hub_fds() { ls "/proc/$HUB_PID/fd" | wc -l; }
hub_rss() { awk '/^VmRSS/{print $2}' "/proc/$HUB_PID/status"; }
fds_settle() { [ "$(hub_fds)" = "$1" ]; }

step "a kept tunnel, served by the agent daemon"
expose victim "127.0.0.1:$SVC" --public --protocol tcp --name crashing --keep
PORT=$TUNNEL_PORT TID=$TUNNEL_ID
stop_pid "$EXPOSE_PID"
forget_pid "$EXPOSE_PID"
bg agent-0 "$CLI_BIN" agent --config "$WORK/victim.json"
AGENT_PID=$LAST_PID
wait_for 15 "the daemon serving the tunnel" serves "$PORT"
# Warm-up: the first transfers allocate what the hub keeps for good (lws
# pools, SQLite's page cache, the tunnel listener's buffers).
for i in 1 2 3; do
    "$PY" "$TCPTOOL" source 127.0.0.1 "$PORT" $((4 << 20)) "$i" >/dev/null || fail "warm-up transfer"
done
sleep 1
FDS0=$(hub_fds)
RSS0=$(hub_rss)
echo "   hub before: $FDS0 fds, RSS $RSS0 KiB"

step "$CYCLES cycles: transfers in flight, kill -9 of the agent, restart, tunnel back"
RECOVER=()
for cycle in $(seq 1 "$CYCLES"); do
    rm -f "$WORK/ready" "$WORK/go"
    # A download that stops reading after 1-8 MiB (data queued at every hop)
    # and an upload in full flow, both cut by the kill.
    "$PY" "$TCPTOOL" cut 127.0.0.1 "$PORT" $((64 << 20)) "$cycle" $(((RANDOM % 8 + 1) << 20)) \
        "$WORK/ready" "$WORK/go" >"$WORK/cut.out" 2>&1 &
    CUT_PID=$!
    PIDS+=("$CUT_PID")
    "$PY" "$TCPTOOL" sink 127.0.0.1 "$PORT" $((256 << 20)) "$cycle" >"$WORK/up.out" 2>&1 &
    UP_PID=$!
    PIDS+=("$UP_PID")
    wait_for 30 "cycle $cycle: the download to reach its cut point" test -e "$WORK/ready"
    kill -9 "$AGENT_PID"
    wait "$AGENT_PID" 2>/dev/null || true
    forget_pid "$AGENT_PID"
    touch "$WORK/go"
    set +e
    wait "$CUT_PID"
    rc=$?
    wait "$UP_PID"
    up_rc=$?
    set -e
    forget_pid "$CUT_PID"
    forget_pid "$UP_PID"
    [ "$rc" = 0 ] || fail "cycle $cycle: the cut download did not end in a reset: $(cat "$WORK/cut.out")"
    # 256 MiB cannot pass before the kill: the upload must have been cut too.
    [ "$up_rc" != 0 ] || fail "cycle $cycle: the upload claims success across an agent kill"
    T0=$(ms)
    bg "agent-$cycle" "$CLI_BIN" agent --config "$WORK/victim.json"
    AGENT_PID=$LAST_PID
    wait_for 15 "cycle $cycle: the tunnel serving again" serves "$PORT"
    RECOVER+=($(($(ms) - T0)))
done
"$PY" "$TCPTOOL" source 127.0.0.1 "$PORT" $((16 << 20)) 77 >/dev/null || fail "a whole transfer after the kills"
status_is "$TID" active || fail "tunnel status after the kills: $(tunnel_status "$TID")"
read -r RMIN RMED RMAX < <(printf '%s\n' "${RECOVER[@]}" | sort -n |
    awk '{v[NR]=$1} END {print v[1], v[int((NR+1)/2)], v[NR]}')
echo "   recovery (agent start to a served transfer, process start included): min $RMIN ms, median $RMED ms, max $RMAX ms"

step "the hub after $CYCLES kills: same descriptors, memory within ${RSS_SLACK_KIB} KiB"
# Closing the dead links and cut connections is asynchronous: wait for the
# count to come back, then report what it is.
for _ in $(seq 1 150); do
    fds_settle "$FDS0" && break
    sleep 0.1
done
FDS1=$(hub_fds)
RSS1=$(hub_rss)
echo "   hub after: $FDS1 fds, RSS $RSS1 KiB (growth $((RSS1 - RSS0)) KiB over $CYCLES kills)"
[ "$FDS1" = "$FDS0" ] || fail "the hub holds $FDS1 descriptors, $FDS0 before the kills: $(ls -l "/proc/$HUB_PID/fd")"
[ $((RSS1 - RSS0)) -le "$RSS_SLACK_KIB" ] ||
    fail "the hub's RSS grew by $((RSS1 - RSS0)) KiB over $CYCLES agent kills (bound $RSS_SLACK_KIB KiB)"
N=$(grep -c "agent .* disconnected" "$WORK/hub.log" || true)
[ "$N" -ge "$CYCLES" ] || fail "the hub logged $N disconnects for $CYCLES kills"
kill -0 "$HUB_PID" || fail "hub died"
echo "PASS test_agent_kills ($CYCLES kills; recovery median $RMED ms, max $RMAX ms; fds $FDS0 -> $FDS1; RSS +$((RSS1 - RSS0)) KiB)"
