#!/usr/bin/env bash
# User story: Connect knows the protocols behind its tunnels. Each built-in
# plugin's health probe is up against its real server (PostgreSQL, MariaDB,
# Redis, an HTTP server, and a MongoDB stand-in since Debian 12 has no
# MongoDB server), down against a closed port and against a server of
# another protocol; detection recognises the first bytes of real clients
# (psql, redis-cli, curl, the official MongoDB Node.js driver) and the
# MariaDB greeting; protocol auto picks the right plugin for each server.
# A third-party SSH plugin, built outside the tree against the installed
# header only, loads from a plugin directory next to a wrong-ABI and a
# garbage .so (one error line each) and recognises a real sshd.
source "$(dirname "$0")/lib.sh"

TOOL=$BUILD/tests/plugin_probe
PEERS=$SRC/tests/integration/plugin_peers.py

need() { # need CMD WHY: a missing prerequisite fails under CI, else one loud SKIP line
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ -n "${CI:-}" ]; then fail "$1 is missing ($2)"; fi
    echo "test_plugins: SKIP: $1 is missing ($2)"
    exit 77
}
need mariadbd "apt-get install mariadb-server (scripts/install-deps.sh)"
need npm "the MongoDB Node.js driver is installed with npm"
need cc "the out-of-tree plugin is compiled with cc"

expect_probe() { # expect_probe up|down PLUGIN PORT [REASON-SUBSTRING]
    local want=$1 plugin=$2 port=$3 why=${4:-} out
    out=$("$TOOL" probe "$plugin" 127.0.0.1 "$port" 1500) || true
    case "$want:$out" in
    up:up) ;;
    down:down*) [ -z "$why" ] || [[ $out == *"$why"* ]] || fail "$plugin probe of :$port: '$out' lacks '$why'" ;;
    *) fail "$plugin probe of :$port: want $want, got '$out'" ;;
    esac
    echo "   $plugin @ $port: $out"
}

step "servers: PostgreSQL, MariaDB, Redis, HTTP, a MongoDB stand-in, a closed port"
pg_start
mariadb_start
redis_start
REDIS_PID=$LAST_PID
http_start
MONGO_PORT=$(free_port)
bg mongo "$PY" "$PEERS" mongo "$MONGO_PORT"
wait_port 127.0.0.1 "$MONGO_PORT"
CLOSED=$(free_port)

step "each probe is up against its own server"
expect_probe up postgresql "$PG_PORT"
expect_probe up mysql "$MY_PORT"
expect_probe up redis "$REDIS_PORT"
expect_probe up http "$HTTP_PORT"
expect_probe up mongodb "$MONGO_PORT"
expect_probe up tcp "$REDIS_PORT"

step "each probe is down against a closed port"
for p in postgresql mysql redis mongodb http tcp; do
    expect_probe down "$p" "$CLOSED" "refused"
done

step "each probe is down against a server of another protocol"
expect_probe down postgresql "$REDIS_PORT" "no answer within" # redis waits for a line end
expect_probe down postgresql "$MY_PORT" "not a PostgreSQL server"
expect_probe down mysql "$PG_PORT" "no answer within"
expect_probe down mysql "$HTTP_PORT" "no answer within"
expect_probe down redis "$HTTP_PORT" "not a Redis server"
expect_probe down redis "$MY_PORT" "not a Redis server"
expect_probe down http "$REDIS_PORT" "closed by the server" # redis drops "Host:" lines
expect_probe down mongodb "$REDIS_PORT" "no answer within" # no line end for redis
expect_probe down mongodb "$MY_PORT" "not a MongoDB server"

step "a server that answers but is unhealthy is down with its own words"
# Redis refusing clients: maxclients 1, the slot taken by a held connection.
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG SET maxclients 1 >/dev/null
# The holder says "held" once redis answered its PING, so it has the slot
# before the probe connects (a fixed 0.5 s raced python's start-up under
# load); it tries again while redis-cli's connection still takes the slot.
bg holder "$PY" -c 'import socket,sys,time
for _ in range(100):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"PING\r\n")
    if s.recv(64).startswith(b"+PONG"):
        print("held", flush=True)
        time.sleep(30)
        break
    s.close()
    time.sleep(0.1)' "$REDIS_PORT"
HOLD=$LAST_PID
wait_for 10 "a connection holding redis's one client slot" grep -qx held "$WORK/holder.log"
expect_probe down redis "$REDIS_PORT" "max number of clients"
stop_pid "$HOLD"
wait_for 10 "redis to free the slot" "$TOOL" probe redis 127.0.0.1 "$REDIS_PORT" 1000
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG SET maxclients 10000 >/dev/null

step "detection from the first bytes of real clients"
record() { # record FILE CLIENT... ({P} becomes the port)
    local file=$1 port
    shift
    port=$(free_port)
    "$PY" "$PEERS" record "$port" "$WORK/$file" 1000 &
    local rp=$!
    wait_port 127.0.0.1 "$port"
    "${@//\{P\}/$port}" >/dev/null 2>&1 || true
    wait "$rp"
    [ -s "$WORK/$file" ] || fail "recorded nothing for $file"
}
expect_detect() { # expect_detect client|server FILE PLUGIN
    local got
    got=$("$TOOL" detect "$1" "$WORK/$2") || true
    [ "$got" = "$3" ] || fail "detect $2: got '$got', want '$3'"
    echo "   $2 -> $got"
}
# The recorder accepts one connection; psql's own checks connect only once.
record psql_ssl.bin env PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p {P} -U app -d appdb -c 'select 1'
expect_detect client psql_ssl.bin postgresql
record psql_plain.bin env PGSSLMODE=disable PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p {P} -U app -d appdb -c 'select 1'
expect_detect client psql_plain.bin postgresql
record redis_cli.bin timeout 3 redis-cli -h 127.0.0.1 -p {P} PING
expect_detect client redis_cli.bin redis
record curl.bin curl -s -m 2 http://127.0.0.1:{P}/
expect_detect client curl.bin http
# The server's side: MariaDB greets first.
"$PY" - "$MY_PORT" "$WORK/mariadb_greeting.bin" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
data = b""
while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:3] + b"\0")[0]:
    c = s.recv(4096)
    if not c:
        break
    data += c
open(sys.argv[2], "wb").write(data)
PY
expect_detect server mariadb_greeting.bin mysql
# The client side's bytes never pass for a server greeting, and back.
got=$("$TOOL" detect server "$WORK/curl.bin") || true
[ "$got" = none ] || fail "curl's request detected as a server greeting ($got)"

step "MongoDB: the official Node.js driver's first bytes, and its view of the stand-in"
mkdir -p "$WORK/node"
(cd "$WORK/node" && npm install --no-audit --no-fund --silent mongodb@6 >"$WORK/npm.log" 2>&1) ||
    fail "npm install mongodb: $(tail -3 "$WORK/npm.log")"
cat >"$WORK/node/first.js" <<'JS'
const { MongoClient } = require('mongodb');
const opts = process.argv[3] === 'api' ? { serverApi: { version: '1' } } : {};
const c = new MongoClient('mongodb://127.0.0.1:' + process.argv[2] +
    '/?directConnection=true&serverSelectionTimeoutMS=2000', opts);
c.connect().then(() => c.close()).catch(() => process.exit(0));
JS
record mongo_op_query.bin node "$WORK/node/first.js" {P}
expect_detect client mongo_op_query.bin mongodb
record mongo_op_msg.bin node "$WORK/node/first.js" {P} api
expect_detect client mongo_op_msg.bin mongodb
cat >"$WORK/node/ping.js" <<'JS'
const { MongoClient } = require('mongodb');
const c = new MongoClient('mongodb://127.0.0.1:' + process.argv[2] +
    '/?directConnection=true&serverSelectionTimeoutMS=3000');
c.connect().then(async () => {
  const r = await c.db('admin').command({ ping: 1 });
  await c.close();
  process.exit(r.ok === 1 ? 0 : 1);
}).catch((e) => { console.error(e.message); process.exit(1); });
JS
# The constructed hello reply that the probe's parser is tested with is
# one the official driver accepts.
(cd "$WORK/node" && timeout 20 node ping.js "$MONGO_PORT") || fail "the Node.js driver rejects the stand-in's hello reply"

step "protocol auto against each real server"
expect_choice() { # expect_choice PORT PLUGIN HOW [--plugin-dir D]
    local port=$1 want=$2 how=$3 out
    shift 3
    out=$("$TOOL" "$@" choose 127.0.0.1 "$port") || fail "choose :$port"
    [[ $out == "$want $how:"* ]] || fail "choose :$port: got '$out', want '$want $how'"
    echo "   :$port -> $out"
}
expect_choice "$PG_PORT" postgresql probe
expect_choice "$MY_PORT" mysql greeting
expect_choice "$REDIS_PORT" redis probe
expect_choice "$HTTP_PORT" http probe
expect_choice "$MONGO_PORT" mongodb probe
expect_choice "$CLOSED" tcp fallback

step "connection strings for real clients"
[ "$("$TOOL" connstr postgresql 127.0.0.1 "$PG_PORT" '{"user":"postgres","tls":false}')" = \
    "postgresql://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" ] || fail "postgresql connstr"
[ "$(psql "$("$TOOL" connstr postgresql 127.0.0.1 "$PG_PORT" '{"user":"postgres","tls":false}')" -Atc 'select 42')" = 42 ] ||
    fail "psql with the plugin's connection string"
[ "$(redis-cli -u "$("$TOOL" connstr redis 127.0.0.1 "$REDIS_PORT" '{"database":0}')" PING)" = PONG ] ||
    fail "redis-cli -u with the plugin's connection string"
[ "$(curl -s "$("$TOOL" connstr http 127.0.0.1 "$HTTP_PORT")index.html")" = hello ] ||
    fail "curl with the plugin's connection string"
mariadb --no-defaults -h 127.0.0.1 -P "$MY_PORT" -u root -e 'select 1' >/dev/null || fail "mariadb client"

step "an out-of-tree plugin, built against the installed header only"
cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log" 2>&1 || fail "cmake --install"
[ -f "$WORK/prefix/include/connect/plugin.h" ] || fail "plugin.h is not installed"
INSTALLED_PLUGINS=$(ls -d "$WORK"/prefix/lib*/connect/plugins)
for p in postgresql mysql redis mongodb http tcp; do
    [ -f "$INSTALLED_PLUGINS/$p.so" ] || fail "$p.so is not installed"
done
mkdir -p "$WORK/oot" "$WORK/pd"
cp "$SRC/tests/plugins/ssh/ssh_plugin.c" "$WORK/oot/"
(cd "$WORK/oot" && cc -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -shared -fPIC \
    -I"$WORK/prefix/include" ssh_plugin.c -o "$WORK/pd/ssh.so") || fail "building the SSH plugin"
cat >"$WORK/oot/wrong_abi.c" <<'C'
#include <connect/plugin.h>
/* Claims a future ABI version. */
static const cn_plugin_t p = {.abi_version = CN_PLUGIN_ABI_VERSION + 1,
                              .struct_size = sizeof(cn_plugin_t), .name = "future"};
CN_PLUGIN_DEFINE(p)
C
(cd "$WORK/oot" && cc -std=c11 -shared -fPIC -I"$WORK/prefix/include" wrong_abi.c -o "$WORK/pd/wrong_abi.so") ||
    fail "building the wrong-ABI plugin"
head -c 8192 /dev/urandom >"$WORK/pd/garbage.so"
"$TOOL" --plugin-dir "$WORK/pd" list >"$WORK/list.out" 2>"$WORK/list.err" || fail "plugin_probe list"
cat "$WORK/list.err"
[ "$(wc -l <"$WORK/list.err")" = 2 ] || fail "want exactly 2 error lines, got: $(cat "$WORK/list.err")"
grep -q "garbage.so: not a loadable shared object" "$WORK/list.err" || fail "garbage.so line"
grep -q "wrong_abi.so: plugin ABI version 2, this build speaks version 1" "$WORK/list.err" || fail "wrong_abi.so line"
grep -q "^ssh $WORK/pd/ssh.so$" "$WORK/list.out" || fail "ssh plugin not listed: $(cat "$WORK/list.out")"
[ "$(wc -l <"$WORK/list.out")" = 7 ] || fail "want the six built-ins and ssh"
# The installed copies of the built-ins replace them, silently.
"$TOOL" --plugin-dir "$INSTALLED_PLUGINS" list >"$WORK/list2.out" 2>"$WORK/list2.err"
[ ! -s "$WORK/list2.err" ] || fail "installed plugins gave errors: $(cat "$WORK/list2.err")"
grep -q "^redis $INSTALLED_PLUGINS/redis.so$" "$WORK/list2.out" || fail "installed redis.so not loaded"

step "the SSH plugin recognises an sshd"
if [ -x /usr/sbin/sshd ]; then
    sshd_start
else
    # openssh-server is not a dependency (it would start a system sshd);
    # without it a banner server says what sshd 9.2 says first.
    echo "   no /usr/sbin/sshd: a python banner server stands in"
    SSH_PORT=$(free_port)
    printf 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n' >"$WORK/banner"
    bg sshd "$PY" "$PEERS" greet "$SSH_PORT" "$WORK/banner"
    wait_port 127.0.0.1 "$SSH_PORT"
fi
# The banner as an SSH client sees it first.
"$PY" - "$SSH_PORT" "$WORK/ssh_banner.bin" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
data = b""
while b"\n" not in data:
    c = s.recv(256)
    if not c:
        break
    data += c
open(sys.argv[2], "wb").write(data)
PY
got=$("$TOOL" --plugin-dir "$WORK/pd" detect server "$WORK/ssh_banner.bin" 2>/dev/null) || true
[ "$got" = ssh ] || fail "sshd banner detected as '$got'"
got=$("$TOOL" detect server "$WORK/ssh_banner.bin") || true
[ "$got" = none ] || fail "without the plugin the banner is '$got'"
out=$("$TOOL" --plugin-dir "$WORK/pd" probe ssh 127.0.0.1 "$SSH_PORT" 2>/dev/null) || fail "ssh probe: $out"
[ "$out" = up ] || fail "ssh probe: $out"
out=$("$TOOL" --plugin-dir "$WORK/pd" probe ssh 127.0.0.1 "$CLOSED" 2>/dev/null) && fail "ssh probe of a closed port is up"
expect_choice "$SSH_PORT" ssh greeting --plugin-dir "$WORK/pd"
expect_choice "$SSH_PORT" tcp fallback
[ "$("$TOOL" --plugin-dir "$WORK/pd" connstr ssh ::1 "$SSH_PORT" '{"user":"git"}' 2>/dev/null)" = "ssh://git@[::1]:$SSH_PORT" ] ||
    fail "ssh connection string"

step "connect-hub serve --plugin-dir: one line per bad file, and it serves"
if "$HUB_BIN" serve --db "$WORK/none.db" --listen 127.0.0.1:0 --plugin-dir "$WORK/no-such-dir" \
    >/dev/null 2>"$WORK/nodir.err"; then
    fail "serve started with a missing --plugin-dir"
fi
hub_init
# Hub ports below the ephemeral range, so that no client socket of this
# test's many connections takes one first.
TCP_BASE=$("$PY" -c '
import random, socket
for _ in range(200):
    base = random.randint(20000, 32000)
    try:
        socks = [socket.socket() for _ in range(40)]
        for i, s in enumerate(socks): s.bind(("127.0.0.1", base + i))
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    print(base); break')
hub_start --plugin-dir "$WORK/pd"
grep -q "plugin skipped: $WORK/pd/garbage.so: not a loadable shared object" "$WORK/hub.log" ||
    fail "the hub log lacks the garbage.so line"
grep -q "plugin skipped: $WORK/pd/wrong_abi.so: plugin ABI version 2" "$WORK/hub.log" ||
    fail "the hub log lacks the wrong_abi.so line"
[ "$(grep -c "plugin skipped" "$WORK/hub.log")" = 2 ] || fail "want exactly two skipped-plugin lines"
agent_enroll dev
export CONNECT_HEALTH_INTERVAL_MS=300

tunnel_field() { # tunnel_field ID FIELD
    api GET "/api/v1/tunnels/$1"
    echo "$BODY" | json_get "$2"
}

step "protocol auto through the hub: PostgreSQL, with its connection string"
expose dev "127.0.0.1:$PG_PORT" --public --name pg
PG_TUNNEL=$TUNNEL_ID
[ "$(grep -m1 '^{' "$EXPOSE_OUT" | json_get protocol)" = postgresql ] || fail "auto did not choose postgresql"
[ "$(grep -m1 '^{' "$EXPOSE_OUT" | json_get connectionString)" = "postgresql://localhost:$TUNNEL_PORT/postgres" ] ||
    fail "expose printed $(grep -m1 '^{' "$EXPOSE_OUT" | json_get connectionString)"
api PATCH "/api/v1/tunnels/$PG_TUNNEL" '{"metadata":{"user":"postgres","database":"postgres","tls":false,"options":{"application_name":"connect test"}}}'
[ "$HTTP_STATUS" = 200 ] || fail "PATCH metadata: $HTTP_STATUS $BODY"
CONN=$(echo "$BODY" | json_get connectionString)
[ "$CONN" = "postgresql://postgres@localhost:$TUNNEL_PORT/postgres?sslmode=disable&application_name=connect%20test" ] ||
    fail "connection string with metadata: $CONN"
[ "$(psql "$CONN" -Atc "select current_setting('application_name')")" = "connect test" ] ||
    fail "psql through the tunnel with its connection string"
"$CLI_BIN" status pg --config "$WORK/dev.json" >"$WORK/status.out" || fail "connect status"
grep -q "postgresql://postgres@localhost:$TUNNEL_PORT/postgres" "$WORK/status.out" ||
    fail "connect status does not print the connection string: $(cat "$WORK/status.out")"

step "protocol auto through the hub: MariaDB, Redis, the MongoDB stand-in"
expose dev "127.0.0.1:$MY_PORT" --public --name shop
[ "$(tunnel_field "$TUNNEL_ID" protocol)" = mysql ] || fail "auto did not choose mysql"
[ "$(tunnel_field "$TUNNEL_ID" connectionString)" = "mysql://localhost:$TUNNEL_PORT/" ] || fail "mysql connection string"
[ "$(mariadb --no-defaults -h 127.0.0.1 -P "$TUNNEL_PORT" -u root -N -e 'select 6*7')" = 42 ] ||
    fail "mariadb through the tunnel"
expose dev "127.0.0.1:$REDIS_PORT" --public --name cache
REDIS_TUNNEL=$TUNNEL_ID
[ "$(tunnel_field "$REDIS_TUNNEL" protocol)" = redis ] || fail "auto did not choose redis"
api PATCH "/api/v1/tunnels/$REDIS_TUNNEL" '{"metadata":{"database":0}}'
CONN=$(echo "$BODY" | json_get connectionString)
[ "$CONN" = "redis://localhost:$TUNNEL_PORT/0" ] || fail "redis connection string: $CONN"
[ "$(redis-cli -u "$CONN" PING)" = PONG ] || fail "redis-cli -u through the tunnel"
expose dev "127.0.0.1:$MONGO_PORT" --public --name docs
[ "$(tunnel_field "$TUNNEL_ID" protocol)" = mongodb ] || fail "auto did not choose mongodb"
[ "$(tunnel_field "$TUNNEL_ID" connectionString)" = "mongodb://localhost:$TUNNEL_PORT/?directConnection=true" ] ||
    fail "mongodb connection string"
(cd "$WORK/node" && timeout 20 node ping.js "$TUNNEL_PORT") || fail "the Node.js driver through the tunnel"

step "the API takes a plugin name as the protocol, and names them all when it does not know one"
api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:1\",\"agentId\":\"$AGENT_ID\",\"protocol\":\"nosuch\"}"
[ "$HTTP_STATUS" = 422 ] || fail "unknown protocol: $HTTP_STATUS"
[[ $BODY == *"postgresql, mysql, redis, mongodb, http, tcp, ssh"* ]] || fail "422 does not list the plugins: $BODY"
api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:22\",\"agentId\":\"$AGENT_ID\",\"protocol\":\"ssh\",\"public\":true,\"metadata\":{\"user\":\"git\"}}"
[ "$HTTP_STATUS" = 201 ] || fail "protocol ssh: $HTTP_STATUS $BODY"
[ "$(echo "$BODY" | json_get protocol)" = ssh ] || fail "protocol ssh not stored"
SSH_HUB_PORT=$(echo "$BODY" | json_get hubPort)
[ "$(echo "$BODY" | json_get connectionString)" = "ssh://git@localhost:$SSH_HUB_PORT" ] ||
    fail "the loaded plugin's connection string: $BODY"

step "health: a target that goes down puts its tunnel in error, and back when it recovers"
# SIGKILL: the port refuses at once. A SIGTERM'd redis spends a moment
# shutting down, and a probe in it saw "closed by the server without
# answering" as the first failure (a helper's loaded run). A probe that
# is connected when the kill lands sees the connection reset, or closed
# if redis had read all it sent (CI, 2026-12-05): each names the cause.
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
forget_pid "$REDIS_PID"
wait_for 15 "the redis tunnel in error" status_is "$REDIS_TUNNEL" error
LAST_ERROR=$(tunnel_field "$REDIS_TUNNEL" lastError)
[[ $LAST_ERROR == "target unhealthy: "*@(refused|reset by peer|closed by the server)* ]] ||
    fail "lastError: $LAST_ERROR"
bg redis2 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
wait_port 127.0.0.1 "$REDIS_PORT"
wait_for 15 "the redis tunnel active again" status_is "$REDIS_TUNNEL" active
api GET "/api/v1/events?tunnelId=$REDIS_TUNNEL"
echo "$BODY" | "$PY" -c '
import json, sys
ev = json.load(sys.stdin)
ev = ev.get("events", ev) if isinstance(ev, dict) else ev
changes = [(e["data"].get("from"), e["data"].get("to"), e["data"].get("reason")) for e in ev
           if e["type"] == "tunnel.status_changed"]
assert ("active", "error", "target unhealthy") in changes, changes
assert ("error", "active", "target healthy") in changes, changes
' || fail "the health changes are not events: $BODY"
[ "$(redis-cli -u "redis://localhost:$(tunnel_field "$REDIS_TUNNEL" hubPort)" PING)" = PONG ] ||
    fail "redis through the recovered tunnel"
[ "$(tunnel_field "$PG_TUNNEL" status)" = active ] || fail "a healthy tunnel left active"

echo "test_plugins: all checks passed"
