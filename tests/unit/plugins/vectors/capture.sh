#!/usr/bin/env bash
# Re-captures the detection vectors in this directory from real programs.
# Run as root on Debian 12 with the packages of scripts/install-deps.sh and
# network access to the npm registry (for the MongoDB Node.js driver).
# Every listener is on 127.0.0.1; every process started is stopped by PID.
#   client-first bytes: a recording listener (plugin_peers.py record) and the
#     real client pointed at it: psql, redis-cli, curl, the mongodb driver;
#   server greetings: a throwaway mariadbd and sshd, read by a plain socket;
#   mongodb_hello_reply.bin is constructed (plugin_peers.py hello-reply), not
#     recorded: Debian 12 ships no MongoDB server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peers=$here/../../../integration/plugin_peers.py
work=$(mktemp -d /tmp/cn-capture.XXXXXX)
chmod 755 "$work" # mariadbd runs as mysql
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

record() { # record FILE CLIENT-CMD... ({P} in the command is the port)
    local file=$1 p
    shift
    p=$(port)
    python3 "$peers" record "$p" "$here/$file" 1000 &
    local rp=$!
    sleep 0.3
    "${@//\{P\}/$p}" >/dev/null 2>&1 || true
    wait "$rp"
    echo "$file: $(stat -c %s "$here/$file") bytes"
}

record postgresql_psql_sslrequest.bin env PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p {P} -U app -d appdb -c 'select 1'
record postgresql_psql_startup.bin env PGSSLMODE=disable PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p {P} -U app -d appdb -c 'select 1'
record redis_cli_ping.bin timeout 3 redis-cli -h 127.0.0.1 -p {P} PING
record http_curl_get.bin curl -s -m 2 http://127.0.0.1:{P}/
record http2_curl_prior_knowledge.bin curl -s -m 2 --http2-prior-knowledge http://127.0.0.1:{P}/

# MongoDB: the official Node.js driver, default handshake (OP_QUERY) and
# with a declared server API (OP_MSG).
(cd "$work" && npm install --no-audit --no-fund --silent mongodb@6 >/dev/null 2>&1)
for kind in op_query op_msg; do
    api=""
    [ $kind = op_msg ] && api=", {serverApi: {version: '1'}}"
    cat >"$work/cap.js" <<JS
const { MongoClient } = require('mongodb');
const c = new MongoClient('mongodb://127.0.0.1:' + process.argv[2] + '/?directConnection=true&serverSelectionTimeoutMS=2000'$api);
c.connect().then(() => c.close()).catch(() => process.exit(0));
JS
    record mongodb_node_$kind.bin node "$work/cap.js" {P}
done
python3 "$peers" hello-reply 0x434e5052 | xxd -r -p >"$here/mongodb_hello_reply.bin"

# MariaDB: the greeting of a fresh server.
p=$(port)
mkdir -p "$work/my" && chown mysql "$work/my"
mariadb-install-db --no-defaults --user=mysql --datadir="$work/my/data" --skip-test-db >/dev/null 2>&1
mariadbd --no-defaults --user=mysql --datadir="$work/my/data" --socket="$work/my/sock" --port="$p" \
    --bind-address=127.0.0.1 --skip-log-bin --log-error="$work/my/err.log" --pid-file="$work/my/pid" &
pids+=($!)
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$p),0.2)" 2>/dev/null && break; sleep 0.2; done
python3 - "$p" "$here/mysql_mariadb_greeting.bin" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
data = b""
while len(data) < 4 or len(data) < 4 + (struct.unpack("<I", data[:3] + b"\0")[0]):
    data += s.recv(4096)
open(sys.argv[2], "wb").write(data)
PY
echo "mysql_mariadb_greeting.bin: $(stat -c %s "$here/mysql_mariadb_greeting.bin") bytes"
