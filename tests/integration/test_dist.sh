#!/usr/bin/env bash
# The systemd units in dist/ are what operations.md tells operators to
# install: systemd-analyze verifies them, and the command line each unit
# runs is run here as systemd would run it (ExecStart with the unit's
# Environment and the install paths mapped to this build and $WORK): the
# hub serves, the agent links, and SIGTERM (KillSignal) stops both cleanly
# within TimeoutStopSec.
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (scripts/install-deps.sh installs systemd)"

# unit_local UNIT: the unit with its install paths mapped to this build.
unit_local() {
    sed -e "s|/usr/local/bin/connect-hub|$HUB_BIN|g" -e "s|/usr/local/bin/connect |$CLI_BIN |g" \
        -e "s|/var/lib/connect-hub|$WORK/hubstate|g" -e "s|/var/lib/connect|$WORK/agentstate|g" \
        -e "s|^User=.*|User=root|" -e "s|^Group=.*|Group=root|" "$SRC/dist/$1"
}
# exec_start UNIT: its ExecStart command line.
exec_start() { unit_local "$1" | sed -n 's/^ExecStart=//p'; }

step "systemd-analyze verify"
mkdir -p "$WORK/units" "$WORK/hubstate" "$WORK/agentstate"
for u in connect-hub.service connect-agent.service; do
    unit_local "$u" >"$WORK/units/$u"
done
# --man=no: the units name the man pages, which only `cmake --install` puts in place.
out=$(cd "$WORK/units" && systemd-analyze verify --man=no ./*.service 2>&1) || fail "verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

step "the hub unit's command line serves, and stops on SIGTERM"
"$HUB_BIN" init --db "$WORK/hubstate/hub.db" --json >"$WORK/hubstate/init.json" ||
    fail "init"
ADMIN_TOKEN=$(json_get token <"$WORK/hubstate/init.json")
secret "$ADMIN_TOKEN"
HUB_PORT=$(free_port)
cmd=$(exec_start connect-hub.service)
echo "   ExecStart=$cmd"
grep -q '^Environment=HUB_ARGS=--listen=127.0.0.1:8080$' "$SRC/dist/connect-hub.service" ||
    fail "the hub unit's default HUB_ARGS changed: update this test and operations.md"
# systemd splits an unquoted $VAR on whitespace, as the shell does here;
# /etc/connect/hub.env's HUB_ARGS replaces the unit's default.
TCP_BASE=$(free_range 10)
HUB_ARGS="--listen=127.0.0.1:$HUB_PORT --http-port=0 --tcp-ports=$TCP_BASE-$((TCP_BASE + 9))"
export HUB_ARGS
bg hubunit bash -c "exec $cmd"
HUB_PID=$LAST_PID
HUB_URL=http://127.0.0.1:$HUB_PORT
wait_for 10 "the hub from its unit" curl -sf "$HUB_URL/api/v1/health"

step "the agent unit's command line links to the hub"
api POST /api/v1/agents '{"name":"unit"}'
[ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
AID=$(echo "$BODY" | json_get id)
echo "$BODY" | json_get enrollToken | "$CLI_BIN" enroll --hub "$HUB_URL" --token - \
    --config "$WORK/agentstate/config.json" >/dev/null || fail "enroll"
acmd=$(exec_start connect-agent.service)
echo "   ExecStart=$acmd"
bg agentunit bash -c "exec $acmd"
AGENT_PID=$LAST_PID
online() { api GET "/api/v1/agents/$AID" && [ "$(echo "$BODY" | json_get connected)" = True ]; }
wait_for 15 "the agent online" online

step "an online backup (operations.md): sqlite3 .backup while the hub runs, restored on a second hub"
api POST /api/v1/tunnels "{\"agentId\":\"$AID\",\"target\":\"127.0.0.1:9\",\"name\":\"kept\"}"
[ "$HTTP_STATUS" = 201 ] || fail "create tunnel: $HTTP_STATUS $BODY"
mkdir -p "$WORK/restore"
sqlite3 "$WORK/hubstate/hub.db" ".backup '$WORK/restore/hub.db'" || fail "sqlite3 .backup"
sqlite3 "$WORK/hubstate/hub.db-log" ".backup '$WORK/restore/hub.db-log'" || fail "sqlite3 .backup of the log"
cp -p "$WORK/hubstate/hub.db.secret" "$WORK/hubstate/hub.db.key" "$WORK/restore/"
[ "$(sqlite3 "$WORK/restore/hub.db" 'PRAGMA integrity_check')" = ok ] || fail "backup integrity"
[ "$(sqlite3 "$WORK/restore/hub.db-log" 'PRAGMA integrity_check')" = ok ] || fail "log backup integrity"
R_PORT=$(free_port)
bg restored "$HUB_BIN" serve --db "$WORK/restore/hub.db" --listen "127.0.0.1:$R_PORT" --http-port 0 \
    --tcp-ports "$((TCP_BASE + 5))-$((TCP_BASE + 9))"
R_PID=$LAST_PID
wait_for 10 "the restored hub" curl -sf "http://127.0.0.1:$R_PORT/api/v1/health"
HUB_URL=http://127.0.0.1:$R_PORT api GET /api/v1/tunnels
[ "$HTTP_STATUS" = 200 ] && echo "$BODY" | grep -q '"name": *"kept"' ||
    fail "the restored hub lacks the tunnel or the token: $HTTP_STATUS $BODY"

stop_term() { # NAME PID: SIGTERM, exit status 0 within the unit's TimeoutStopSec (30 s)
    local t0=$SECONDS rc=0
    kill -TERM "$2"
    wait "$2" || rc=$?
    forget_pid "$2"
    [ "$rc" = 0 ] || fail "$1 exited $rc on SIGTERM"
    [ $((SECONDS - t0)) -lt 30 ] || fail "$1 took $((SECONDS - t0)) s to stop"
    echo "   $1 stopped on SIGTERM in $((SECONDS - t0)) s, status 0"
}
stop_term restored "$R_PID"
stop_term agent "$AGENT_PID"
stop_term hub "$HUB_PID"
echo PASS
