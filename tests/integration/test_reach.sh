#!/usr/bin/env bash
# User story: one agent ("dev", a staging machine) exposes its databases and
# a web server privately; a teammate's laptop (a second agent with its own
# config) runs `connect reach NAME` and uses them on local ports with the
# real clients: redis-cli, curl, psql (100k rows identical to direct) and the
# MariaDB client. The hub relays end-to-end records it cannot read (a dump of
# every relayed byte holds no plaintext marker). Only agents of the same
# workspace may reach (404 otherwise); pausing or expiring refuses new
# connections, deleting also closes open ones; an offline exposing agent
# means an immediate refusal and one log line; when the laptop's link drops
# its listener stays bound and serves again after the reconnect.
source "$(dirname "$0")/lib.sh"

export CONNECT_HUB_RELAY_DUMP=$WORK/relayed.bin
: >"$CONNECT_HUB_RELAY_DUMP"
MARKER=reach-plaintext-marker-5e1f

hub_init
hub_start
agent_enroll dev
DEV_ID=$AGENT_ID
agent_enroll laptop
LAPTOP_ID=$AGENT_ID

step "redis-cli through reach"
redis_start
expose dev "127.0.0.1:$REDIS_PORT" --protocol redis --name redis-staging
REDIS_TUNNEL=$TUNNEL_ID
reach laptop redis-staging
# Redis's usual port + 10000, unless another process holds it (then it says so).
[ "$REACH_PORT" = 16379 ] || grep -q "16379 is taken" "$REACH_LOG" ||
    fail "reach bound $REACH_PORT, not 6379 + 10000"
case $REACH_CS in redis://127.0.0.1:"$REACH_PORT"*) ;; *) fail "connection string '$REACH_CS'" ;; esac
[ "$(redis-cli -u "$REACH_CS" PING)" = PONG ] || fail "redis-cli -u with the connection string"
REDIS_REACH=$REACH_PORT
REDIS_REACH_PID=$REACH_PID
REDIS_REACH_LOG=$REACH_LOG
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_REACH" PING)" = PONG ] || fail "redis-cli PING through reach"
redis-cli -h 127.0.0.1 -p "$REDIS_REACH" SET secret "$MARKER" | grep -q OK || fail "SET through reach"
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET secret)" = "$MARKER" ] || fail "value not stored"
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_REACH" GET secret)" = "$MARKER" ] || fail "GET through reach"
"$PY" -c 'import random; print(random.Random(7).randbytes(1<<20).hex()[:1<<20], end="")' >"$WORK/value"
redis-cli -h 127.0.0.1 -p "$REDIS_REACH" -x SET big <"$WORK/value" | grep -q OK || fail "SET 1 MiB"
redis-cli -h 127.0.0.1 -p "$REDIS_REACH" GET big >"$WORK/got.raw" || fail "GET 1 MiB"
head -c $((1 << 20)) "$WORK/got.raw" >"$WORK/got"
cmp -s "$WORK/value" "$WORK/got" || fail "1 MiB value differs through reach"
echo "redis: PING, SET/GET, 1 MiB intact"

step "curl through reach to an HTTP server"
mkdir -p "$WORK/www" && echo "hello $MARKER" >"$WORK/www/index.html"
HTTP_PORT=$(free_port)
bg http "$PY" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www"
wait_port 127.0.0.1 "$HTTP_PORT"
expose dev "127.0.0.1:$HTTP_PORT" --protocol tcp --name web-staging
reach laptop web-staging
[ "$(curl -sf "http://127.0.0.1:$REACH_PORT/index.html")" = "hello $MARKER" ] || fail "curl through reach"
echo "curl: page intact"

step "psql through reach: 100k rows identical to direct"
pg_start
expose dev "127.0.0.1:$PG_PORT" --protocol postgresql --name pg-staging
api PATCH "/api/v1/tunnels/$TUNNEL_ID" '{"metadata":{"user":"postgres","database":"postgres"}}'
[ "$HTTP_STATUS" = 200 ] || fail "metadata: $HTTP_STATUS $BODY"
reach laptop pg-staging
# The plugin's connection string, pasted into psql as the user would.
case $REACH_CS in postgresql://postgres@127.0.0.1:"$REACH_PORT"/postgres*) ;;
*) fail "connection string '$REACH_CS'" ;; esac
Q="select g, md5(g::text) from generate_series(1,100000) g"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -At -c "$Q" >"$WORK/direct.txt" || fail "psql direct"
psql "$REACH_CS" -At -c "$Q" >"$WORK/reach.txt" || fail "psql through reach"
[ "$(wc -l <"$WORK/reach.txt")" -eq 100000 ] || fail "expected 100000 rows"
cmp -s "$WORK/direct.txt" "$WORK/reach.txt" || fail "rows through reach differ from direct"
psql -h 127.0.0.1 -p "$REACH_PORT" -U postgres -At -c "select '$MARKER'" | grep -q "$MARKER" ||
    fail "psql marker query"
echo "postgres: $REACH_CS, 100000 rows identical to direct"

step "the MariaDB client through reach: create, insert, select"
MARIADBD=$(command -v mariadbd || command -v mysqld || true)
[ -n "$MARIADBD" ] || fail "mariadbd is not installed (scripts/install-deps.sh installs mariadb-server)"
MY_PORT=$(free_port)
MY_DATA=$WORK/mysql
mkdir -p "$MY_DATA" && chown mysql "$MY_DATA" 2>/dev/null || true
mariadb-install-db --no-defaults --datadir="$MY_DATA" --user=mysql --auth-root-authentication-method=normal \
    >"$WORK/my-init.log" 2>&1 || fail "mariadb-install-db"
bg mariadb "$MARIADBD" --no-defaults --datadir="$MY_DATA" --user=mysql --port="$MY_PORT" \
    --bind-address=127.0.0.1 --socket="$MY_DATA/mysql.sock" --skip-grant-tables=0 \
    --pid-file="$MY_DATA/mysqld.pid" --log-error="$WORK/mariadb-error.log"
wait_port 127.0.0.1 "$MY_PORT" 30
expose dev "127.0.0.1:$MY_PORT" --protocol mysql --name mariadb-staging
reach laptop mariadb-staging
case $REACH_CS in mysql://127.0.0.1:"$REACH_PORT"/*) ;; *) fail "connection string '$REACH_CS'" ;; esac
MYC=(mariadb --no-defaults -h 127.0.0.1 -P "$REACH_PORT" -u root --protocol=TCP -N -B)
"${MYC[@]}" -e "create database shop; create table shop.items (id int primary key, name text);
    insert into shop.items values (1, '$MARKER'), (2, 'second');" || fail "mariadb create/insert through reach"
[ "$("${MYC[@]}" -e "select name from shop.items order by id" | tr '\n' ' ')" = "$MARKER second " ] ||
    fail "mariadb select through reach"
[ "$(mariadb --no-defaults -h 127.0.0.1 -P "$MY_PORT" -u root --protocol=TCP -N -B \
    -e "select count(*) from shop.items")" = 2 ] || fail "rows not stored in MariaDB"
echo "mariadb: create, insert, select"

step "connect agent keeps the config's reach list bound"
AGENT_REACH_PORT=$(free_port)
"$PY" - "$WORK/laptop.json" "$AGENT_REACH_PORT" <<'EOF2'
import json, sys
p, port = sys.argv[1], int(sys.argv[2])
c = json.load(open(p))
c["reach"] = [{"tunnel": "redis-staging", "port": port}, {"tunnel": "web-staging"}]
with open(p, "w") as f:  # in place: the file keeps its 0600 mode
    json.dump(c, f)
EOF2
"$CLI_BIN" agent --config "$WORK/laptop.json" --json >"$WORK/laptop-agent.out" 2>"$WORK/laptop-agent.log" &
PIDS+=($!)
LAPTOP_AGENT_PID=$!
wait_for 15 "connect agent to print its JSON line" grep -q '"reach"' "$WORK/laptop-agent.out"
[ "$(grep -m1 '^{' "$WORK/laptop-agent.out" | json_get reach.0.localPort)" = "$AGENT_REACH_PORT" ] ||
    fail "the reach list's port: $(cat "$WORK/laptop-agent.out")"
[ "$(redis-cli -h 127.0.0.1 -p "$AGENT_REACH_PORT" GET secret)" = "$MARKER" ] ||
    fail "GET through the daemon's reach"
WEB_AGENT_PORT=$(grep -m1 '^{' "$WORK/laptop-agent.out" | json_get reach.1.localPort)
[ "$(curl -sf "http://127.0.0.1:$WEB_AGENT_PORT/index.html")" = "hello $MARKER" ] ||
    fail "curl through the daemon's reach"
stop_pid "$LAPTOP_AGENT_PID"
"$PY" - "$WORK/laptop.json" <<'EOF2'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("reach", None)
with open(sys.argv[1], "w") as f:
    json.dump(c, f)
EOF2
echo "connect agent: redis on $AGENT_REACH_PORT, web on $WEB_AGENT_PORT"

step "the hub relayed only end-to-end records: no plaintext in what it saw"
DUMP_BYTES=$(stat -c %s "$CONNECT_HUB_RELAY_DUMP")
[ "$DUMP_BYTES" -gt $((2 << 20)) ] || fail "the relay dump is too small ($DUMP_BYTES bytes): nothing captured?"
if grep -aq "$MARKER" "$CONNECT_HUB_RELAY_DUMP"; then fail "the hub saw the plaintext marker"; fi
for word in PONG "select g, md5" "GET /index.html" "shop.items"; do
    if grep -aqF "$word" "$CONNECT_HUB_RELAY_DUMP"; then fail "the hub saw plaintext: '$word'"; fi
done
grep -q "$MARKER" "$WORK/direct.txt" "$WORK/www/index.html" || fail "control: the marker is findable in plaintext"
echo "relay dump: $DUMP_BYTES bytes, no plaintext"

step "authorization: another workspace's agent cannot reach (404)"
api POST /api/v1/workspaces '{"name":"other"}'
[ "$HTTP_STATUS" = 201 ] || fail "create workspace: $HTTP_STATUS $BODY"
WS2=$(echo "$BODY" | json_get id)
api POST "/api/v1/workspaces/$WS2/tokens" '{"name":"other-admin","scope":"admin"}'
[ "$HTTP_STATUS" = 201 ] || fail "create token: $HTTP_STATUS $BODY"
OTHER_TOKEN=$(echo "$BODY" | json_get token)
TOKEN=$OTHER_TOKEN api POST /api/v1/agents '{"name":"stranger"}'
[ "$HTTP_STATUS" = 201 ] || fail "create the other workspace's agent: $HTTP_STATUS $BODY"
STRANGER=$(echo "$BODY" | json_get id)
TOKEN=$OTHER_TOKEN api POST "/api/v1/tunnels/$REDIS_TUNNEL/connect" "{\"agentId\":\"$STRANGER\"}"
[ "$HTTP_STATUS" = 404 ] || fail "another workspace reaching: $HTTP_STATUS $BODY"
api POST "/api/v1/tunnels/$REDIS_TUNNEL/connect" "{\"agentId\":\"$STRANGER\"}"
[ "$HTTP_STATUS" = 404 ] || fail "reaching for another workspace's agent: $HTTP_STATUS $BODY"
LAPTOP_TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/laptop.json")
TOKEN=$LAPTOP_TOKEN api POST "/api/v1/tunnels/$REDIS_TUNNEL/connect" "{\"agentId\":\"$DEV_ID\"}"
[ "$HTTP_STATUS" = 403 ] || fail "an agent token reaching for another agent: $HTTP_STATUS $BODY"
TOKEN=$LAPTOP_TOKEN api POST "/api/v1/tunnels/$REDIS_TUNNEL/connect" '{}'
[ "$HTTP_STATUS" = 200 ] || fail "the laptop's own token: $HTTP_STATUS $BODY"
[ "$(echo "$BODY" | json_get agentId)" = "$LAPTOP_ID" ] || fail "connect answered for another agent"
echo "404 across workspaces, 403 for another agent, 200 for its own"

step "pause refuses new connections, resume serves again"
api PATCH "/api/v1/tunnels/$REDIS_TUNNEL" '{"status":"paused"}'
[ "$HTTP_STATUS" = 200 ] || fail "pause: $HTTP_STATUS"
wait_for 10 "paused" status_is "$REDIS_TUNNEL" paused
"$PY" "$TCPTOOL" rst 127.0.0.1 "$REDIS_REACH" 2 || fail "a connection to a paused tunnel was not refused at once"
grep -q "tunnel is paused" "$REDIS_REACH_LOG" || fail "no log line saying the tunnel is paused"
api PATCH "/api/v1/tunnels/$REDIS_TUNNEL" '{"status":"active"}'
wait_for 10 "active again" status_is "$REDIS_TUNNEL" active
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_REACH" PING)" = PONG ] || fail "PING after resume"
echo "paused: refused; resumed: served"

step "the reaching agent's link drops: the listener stays and serves after the reconnect"
stop_pid "$HUB_PID"
"$PY" "$TCPTOOL" rst 127.0.0.1 "$REDIS_REACH" 2 || fail "while the hub is down a connection must be refused at once"
grep -q "not connected to the hub" "$REDIS_REACH_LOG" || fail "no log line for the refusal while down"
hub_start
wait_for 20 "PING through reach after the reconnect" \
    sh -c "[ \"\$(redis-cli -h 127.0.0.1 -p $REDIS_REACH PING 2>/dev/null)\" = PONG ]"
kill -0 "$REDIS_REACH_PID" || fail "the reach process died with its link"
echo "refused while down, served after the reconnect"

step "the exposing agent offline: refused at once, one log line"
TOOL_PORT=$(free_port)
export CN_TCPTOOL_DIR=$WORK
bg tool "$PY" "$TCPTOOL" server "$TOOL_PORT"
wait_port 127.0.0.1 "$TOOL_PORT"
expose dev "127.0.0.1:$TOOL_PORT" --protocol tcp --name bulk-staging --keep
BULK_TUNNEL=$TUNNEL_ID
BULK_EXPOSE_PID=$EXPOSE_PID
reach laptop bulk-staging
BULK_REACH=$REACH_PORT
BULK_LOG=$REACH_LOG
"$PY" "$TCPTOOL" echo 127.0.0.1 "$BULK_REACH" $((8 << 20)) 4 || fail "half-close echo through reach"
"$PY" "$TCPTOOL" many 127.0.0.1 "$BULK_REACH" 64 65536 || fail "64 concurrent connections through reach"
stop_pid "$BULK_EXPOSE_PID"
not_active() { ! status_is "$1" active; }
wait_for 10 "the tunnel to go offline" not_active "$BULK_TUNNEL"
sleep 0.5
before=$(grep -c "connection refused" "$BULK_LOG" || true)
"$PY" "$TCPTOOL" rst 127.0.0.1 "$BULK_REACH" 1 || fail "a reach to an offline agent was not refused at once"
# The reach logs the refusal as it resets the client, so the line may trail
# the client's RST on a loaded machine: wait for it, then give a second line
# the time it had before (0.3 s) to show up.
refusal_logged() { [ "$(grep -c "connection refused" "$BULK_LOG" || true)" -gt "$before" ]; }
wait_for 5 "the refusal's log line" refusal_logged
sleep 0.3
after=$(grep -c "connection refused" "$BULK_LOG" || true)
[ $((after - before)) -eq 1 ] || fail "expected exactly one log line for the refusal, got $((after - before))"
grep "connection refused" "$BULK_LOG" | tail -1 | grep -q "offline" || fail "the log line does not say the agent is offline"
echo "offline: refused at once with one line: $(grep 'connection refused' "$BULK_LOG" | tail -1 | cut -c1-160)"

step "a target port above 55535 (no port + 10000): any free port, and the string names it"
HIGH_PORT=$("$PY" -c 'import random, socket
for _ in range(200):
    p = random.randint(55600, 64000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()')
bg high-tool "$PY" "$TCPTOOL" server "$HIGH_PORT"
wait_port 127.0.0.1 "$HIGH_PORT"
expose dev "127.0.0.1:$HIGH_PORT" --protocol tcp --name high-staging
reach laptop high-staging
[ "$REACH_CS" = "127.0.0.1:$REACH_PORT" ] || fail "connection string '$REACH_CS' for port $REACH_PORT"
"$PY" "$TCPTOOL" echo 127.0.0.1 "$REACH_PORT" 65536 6 || fail "echo through the high-port reach"

step "deleting the tunnel closes open reach connections"
expose dev "127.0.0.1:$TOOL_PORT" --protocol tcp --name watch-staging --keep
WATCH_TUNNEL=$TUNNEL_ID
reach laptop watch-staging
WATCH_REACH=$REACH_PORT
"$PY" "$TCPTOOL" hold 127.0.0.1 "$WATCH_REACH" "WATCH held" &
HOLD_PID=$!
PIDS+=($HOLD_PID)
wait_for 10 "the held connection to reach the target" test -s "$WORK/held"
api DELETE "/api/v1/tunnels/$WATCH_TUNNEL"
[ "$HTTP_STATUS" = 200 ] || fail "delete: $HTTP_STATUS"
wait_for 10 "the held connection to end" sh -c "! kill -0 $HOLD_PID"
wait_for 10 "the target to see the end" grep -q "reset\|eof" "$WORK/held"
"$PY" "$TCPTOOL" rst 127.0.0.1 "$WATCH_REACH" 2 || fail "a reach of a deleted tunnel was not refused"
echo "deleted: the open connection ended ($(tail -1 "$WORK/held")), new ones refused"

step "an expired tunnel refuses new connections"
# The TTL is made to pass once the echo went through: with --ttl 4 a loaded
# machine spent the 4 s starting expose and reach (reach ready 8 s after the
# tunnel's creation, the echo reset by the expiry).
expose dev "127.0.0.1:$TOOL_PORT" --protocol tcp --name ttl-staging --ttl 3600 --keep
TTL_TUNNEL=$TUNNEL_ID
reach laptop ttl-staging
TTL_REACH=$REACH_PORT
"$PY" "$TCPTOOL" echo 127.0.0.1 "$TTL_REACH" 65536 5 || fail "echo before expiry"
expire_in_db tunnels "$TTL_TUNNEL"
wait_for 15 "expired" status_is "$TTL_TUNNEL" expired
"$PY" "$TCPTOOL" rst 127.0.0.1 "$TTL_REACH" 2 || fail "a reach of an expired tunnel was not refused"
echo "expired: refused"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_reach: all checks passed"
