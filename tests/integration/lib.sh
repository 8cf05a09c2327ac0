# Shared helpers for the integration tests: a real hub, real agents and real
# servers on 127.0.0.1, every process stopped by PID. Source it from a test.
set -euo pipefail

BUILD=${CN_BUILD_DIR:?set CN_BUILD_DIR to the build directory}
SRC=${CN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HUB_BIN=$BUILD/hub/connect-hub
CLI_BIN=$BUILD/agent/connect
TCPTOOL=$SRC/tests/integration/tcptool.py

# Debian's python3 (scripts/install-deps.sh), which the standard library
# is enough for. A version manager's shim first in PATH (pyenv's) costs
# about 0.3 s a start against 0.04 s, and the tests start python hundreds
# of times: the suite's tests took 1,350 s through the shim and 861 s with
# this (CI and a clean clone, 2026-12-05). Bare `python3` in a test means
# this one too.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
python3() { "$PY" "$@"; }

WORK=$(mktemp -d /tmp/cn-it.XXXXXX)
chmod 755 "$WORK"
PIDS=()
export CONNECT_LOG=${CONNECT_LOG:-info}

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $PG_DATA -m immediate stop" >/dev/null 2>&1 || true
    fi
    # Every process is gone and its files complete: no token or password
    # the test used may be in a database, log or core file it left.
    secrets_grep "$WORK" "$(basename "$0" .sh)" "${ADMIN_TOKEN:-}" || rc=1
    if [ $rc -ne 0 ]; then
        echo "== logs (last lines)" >&2
        for f in "$WORK"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f" >&2
            tail -25 "$f" >&2
        done
    fi
    [ -n "${CN_KEEP_WORK:-}" ] || rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT

# The secrets grep of a work directory (tests/integration/secrets_grep.py): one
# report per test run under $BUILD/tests/secrets for the run's summary
# (the integration/secrets_grep test). usage: secrets_grep DIR NAME [SECRET...]
secrets_grep() {
    "$PY" "$SRC/tests/integration/secrets_grep.py" check "$1" "$2" "$BUILD/tests/secrets" "${@:3}"
}

# Remembers a secret the test used that no file of $WORK holds (the grep
# also finds tokens and passwords in the files by their shape).
secret() { printf '%s\n' "$1" >>"$WORK/.secrets"; }

# step WHAT: names the next step, with the seconds since the test began
# (which step is slow, from any run's log).
CN_T0_US=${EPOCHREALTIME/./}
step() {
    local ms=$(((${EPOCHREALTIME/./} - CN_T0_US) / 1000))
    printf -- '-- %s (at %d.%d s)\n' "$*" $((ms / 1000)) $((ms % 1000 / 100))
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Starts a command in the background with its output in $WORK/NAME.log and
# records its PID. usage: bg NAME CMD...
bg() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# Drops a PID the test stopped (or saw die) from the cleanup list, so that
# cleanup never signals a recycled PID.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# A base port with N consecutive ports after it free for TCP and UDP alike
# (a UDP tunnel binds its hub port for both), taken from FROM (default
# 20000) up to BELOW and below the kernel's ephemeral range, so that no client
# socket of a concurrent test is handed one of them after the check.
# usage: free_range N [FROM [BELOW]]
free_range() { "$PY" "$SRC/tests/integration/freeport.py" "$1" "${2:-20000}" "${3:-65536}"; }

# A port free for TCP and UDP, for a server the test starts next. Taken below
# the ephemeral range (free_range): a port the kernel hands out for bind(0)
# is one it also hands to outgoing connections, and a concurrent test's client
# socket took such a port before the server bound it (test_udp's dnsmasq).
# From 10000-19999, apart from free_range's tunnel port ranges (20000 up):
# a hub refuses a --listen or --http-port inside its --tcp-ports range, and
# inside its default one (20000-29999) when started without it.
free_port() { free_range 1 10000 20000; }

wait_port() { # host port [seconds]
    "$PY" - "$1" "$2" "${3:-10}" <<'EOF' || fail "nothing listens on $1:$2"
import socket, sys, time
h, p, t = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + t
while time.time() < end:
    try:
        socket.create_connection((h, p), 0.5).close(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# Waits until a shell condition holds. usage: wait_for SECONDS DESCRIPTION CMD...
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$(($(date +%s%N) / 1000000 + secs * 1000))
    while [ $(($(date +%s%N) / 1000000)) -lt $end ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for: $what"
}

# wait_eq SECS WHAT WANT CMD...: waits until CMD (a function or a command,
# run again on each try) prints WANT. Not `wait_for ... test "$(CMD)" = WANT`,
# whose $(CMD) runs once, before the wait, so it never waits.
wait_eq() {
    local secs=$1 what=$2 want=$3
    shift 3
    wait_for "$secs" "$what" output_is "$want" "$@"
}
output_is() {
    local want=$1
    shift
    [ "$("$@" 2>/dev/null)" = "$want" ]
}

# ---- hub ------------------------------------------------------------------

# hub_init: creates $WORK/hub.db, sets ADMIN_TOKEN and WS_ID.
hub_init() {
    local out
    out=$("$HUB_BIN" init --db "$WORK/hub.db" --json) || fail "connect-hub init"
    ADMIN_TOKEN=$(echo "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    secret "$ADMIN_TOKEN"
    WS_ID=$(echo "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["workspaceId"])')
}

# hub_start [extra serve args]: starts the hub on a free port, sets HUB_PORT,
# HUB_URL, HUB_PID, TCP_BASE (a free range of 40 tunnel ports).
hub_start() {
    HUB_PORT=${HUB_PORT:-$(free_port)}
    TCP_BASE=${TCP_BASE:-$(free_range 40)}
    HUB_URL=http://127.0.0.1:$HUB_PORT
    # CN_HUB_EVENT_LOOP=poll|epoll picks the hub's event loop (default: serve's, epoll);
    # CN_HUB_BUSY_POLL=US turns on its busy polling (serve --busy-poll).
    local loop=()
    [ -z "${CN_HUB_EVENT_LOOP:-}" ] || loop=(--event-loop "$CN_HUB_EVENT_LOOP")
    [ -z "${CN_HUB_BUSY_POLL:-}" ] || loop+=(--busy-poll "$CN_HUB_BUSY_POLL")
    bg hub "$HUB_BIN" serve --db "$WORK/hub.db" --listen "127.0.0.1:$HUB_PORT" \
        --tcp-ports "$TCP_BASE-$((TCP_BASE + 39))" "${loop[@]}" "$@"
    HUB_PID=$LAST_PID
    wait_for 10 "hub health" curl -sf "$HUB_URL/api/v1/health"
}

# api METHOD PATH [JSON]: sets BODY and HTTP_STATUS (call it directly, not
# in $(...), so they reach the caller).
api() {
    local method=$1 path=$2 body=${3:-}
    local args=(-s -o "$WORK/api.out" -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer ${TOKEN:-$ADMIN_TOKEN}")
    if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data "$body"); fi
    HTTP_STATUS=$(curl "${args[@]}" "$HUB_URL$path")
    BODY=$(cat "$WORK/api.out")
    # Answers that mint secrets are overwritten by the next call: keep them
    # for the secrets grep.
    grep -oE 'cn[a-z]_[A-Za-z0-9_-]{32,}|"(httpPassword|password)" *: *"[^"]{8,}"' "$WORK/api.out" \
        >>"$WORK/.secrets" 2>/dev/null || true
}

json_get() { # json_get FIELD < json
    "$PY" -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print("" if v is None else (json.dumps(v) if isinstance(v,(dict,list)) else v))' "$1"
}

# ---- agent ----------------------------------------------------------------

# agent_enroll NAME: creates an agent through the API and enrolls a config
# $WORK/NAME.json; sets AGENT_ID.
agent_enroll() {
    local name=$1 et
    api POST /api/v1/agents "{\"name\":\"$name\"}"
    [ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
    et=$(echo "$BODY" | json_get enrollToken)
    AGENT_ID=$(echo "$BODY" | json_get id)
    "$CLI_BIN" enroll --hub "$HUB_URL" --token - --config "$WORK/$name.json" --json <<<"$et" \
        >"$WORK/$name-enroll.out" 2>"$WORK/$name-enroll.log" || fail "connect enroll: $(cat "$WORK/$name-enroll.log")"
}

# expose NAME TARGET [args]: runs `connect expose` for agent NAME in the
# background, waits for its JSON line on stdout; sets EXPOSE_PID, TUNNEL_ID,
# TUNNEL_PORT, EXPOSE_OUT (its stdout file).
EXPOSES=0
expose() {
    local name=$1 target=$2
    shift 2
    EXPOSES=$((EXPOSES + 1))
    EXPOSE_OUT=$WORK/expose-$name-$EXPOSES.out
    "$CLI_BIN" expose "$target" --config "$WORK/$name.json" --json "$@" \
        >"$EXPOSE_OUT" 2>"$WORK/expose-$name-$EXPOSES.log" &
    PIDS+=($!)
    EXPOSE_PID=$!
    wait_for 15 "expose to print its tunnel" grep -q '"id"' "$EXPOSE_OUT"
    local line
    line=$(grep -m1 '^{' "$EXPOSE_OUT")
    TUNNEL_ID=$(echo "$line" | json_get id)
    TUNNEL_PORT=$(echo "$line" | json_get hubPort)
}

# svc_agent NAME: agent NAME enrolled (AGENT_ID), tcptool's target started
# (SVC) and recorded in the agent's local policy by `connect expose --keep`
# (else the agent refuses tunnels to it), which leaves tunnel t0 behind.
svc_agent() {
    agent_enroll "$1"
    tcptool_start
    expose "$1" "127.0.0.1:$SVC" --name t0 --keep
    stop_pid "$EXPOSE_PID"
    forget_pid "$EXPOSE_PID"
}

# agent_daemon NAME LOG N [args]: `connect agent` for agent NAME, its output
# in $WORK/LOG.log, until its link is up with N tunnels; sets AGENT_PID.
agent_daemon() {
    local name=$1 log=$2 n=$3
    shift 3
    bg "$log" "$CLI_BIN" agent --config "$WORK/$name.json" "$@"
    AGENT_PID=$LAST_PID
    wait_for 15 "agent $name's link ($log)" grep -q "connected to .*, $n tunnels\?)" "$WORK/$log.log"
}

# reach NAME TUNNEL [args]: runs `connect reach TUNNEL` as agent NAME in the
# background, waits for its JSON line; sets REACH_PID, REACH_PORT, REACH_CS
# (connection string), REACH_LOG (its stderr).
REACHES=0
reach() {
    local name=$1 ref=$2
    shift 2
    REACHES=$((REACHES + 1))
    local out=$WORK/reach-$name-$REACHES.out
    REACH_LOG=$WORK/reach-$name-$REACHES.log
    "$CLI_BIN" reach "$ref" --config "$WORK/$name.json" --json "$@" >"$out" 2>"$REACH_LOG" &
    PIDS+=($!)
    REACH_PID=$!
    wait_for 15 "reach to print its JSON line" grep -q '"localPort"' "$out"
    local line
    line=$(grep -m1 '^{' "$out")
    REACH_PORT=$(echo "$line" | json_get localPort)
    REACH_CS=$(echo "$line" | json_get connectionString)
}

# expire_in_db TABLE ID: moves a tunnel's or share's (TABLE tunnels or
# shares) expiry into the past behind the hub's back, as another writer on the
# WAL database (a second hub) would; the hub's once-a-second sweep then
# expires it. For a test that must act before the expiry at its own pace: a
# short TTL left a loaded machine no time to act first.
expire_in_db() {
    "$PY" - "$WORK/hub.db" "$1" "$2" <<'EOF' || fail "moving the expiry of $1 $2"
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=10)
n = con.execute("UPDATE %s SET expires_at = ? WHERE id = ?" % sys.argv[2],
                (int(time.time() * 1000) - 1000, sys.argv[3])).rowcount
con.commit()
sys.exit(0 if n == 1 else 1)
EOF
}

# tunnel_entries list|status|delta: the tunnel entries the hub has sent
# agent links in that kind of message (connect_agent_tunnel_entries_sent_total,
# docs/api.md): whole lists, one tunnel's status, one tunnel made, edited or
# deleted.
tunnel_entries() {
    curl -s -m 10 "$HUB_URL/metrics" |
        awk -v k="connect_agent_tunnel_entries_sent_total{message=\"$1\"}" '$1 == k { print $2 }'
}

# entries_mark, then entries_since: sets DL, DS, DD, the list, status and
# delta entries sent since the mark (L0, S0, D0).
entries_mark() { L0=$(tunnel_entries list) S0=$(tunnel_entries status) D0=$(tunnel_entries delta); }
entries_since() {
    DL=$(($(tunnel_entries list) - L0)) DS=$(($(tunnel_entries status) - S0)) DD=$(($(tunnel_entries delta) - D0))
}

tunnel_status() {
    api GET "/api/v1/tunnels/$1"
    echo "$BODY" | json_get status
}

status_is() { [ "$(tunnel_status "$1")" = "$2" ]; }

# first_stream PORT NAME: a public TCP tunnel of agent AGENT_ID to the
# target SVC made now on hub port PORT serves a connection made right after
# the API's answer (the entry or list went ahead of the stream on the link's
# ordered CONTROL stream); sets TUNNEL_ID.
first_stream() {
    api POST /api/v1/tunnels \
        "{\"agentId\":\"$AGENT_ID\",\"target\":\"127.0.0.1:$SVC\",\"name\":\"$2\",\"protocol\":\"tcp\",\"public\":true,\"hubPort\":$1}"
    [ "$HTTP_STATUS" = 201 ] || fail "tunnel $2: $HTTP_STATUS $BODY"
    TUNNEL_ID=$(echo "$BODY" | json_get id)
    serves "$1" || fail "tunnel $2, made after the link came up, does not serve its first connection"
}

# ---- servers ----------------------------------------------------------------

# tcptool_start: tcptool.py's target server on a free port, its files in
# $WORK; sets SVC.
tcptool_start() {
    SVC=$(free_port)
    export CN_TCPTOOL_DIR=$WORK
    bg svc "$PY" "$TCPTOOL" server "$SVC"
    wait_port 127.0.0.1 "$SVC"
}

# serves PORT: a 64 KiB upload through a public TCP tunnel comes back with
# its SHA-256.
serves() { "$PY" "$TCPTOOL" sink 127.0.0.1 "$1" 65536 9 >/dev/null 2>&1; }

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

# redis_start: sets REDIS_PORT.
redis_start() {
    REDIS_PORT=$(free_port)
    bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
    wait_port 127.0.0.1 "$REDIS_PORT"
}

# pg_start: a throwaway PostgreSQL cluster in $WORK; sets PG_PORT.
pg_start() {
    PG_PORT=$(free_port)
    PG_DATA=$WORK/pg
    mkdir -p "$PG_DATA" && chown postgres "$PG_DATA"
    su postgres -s /bin/sh -c "$PG_BIN/initdb -D $PG_DATA --auth=trust -U postgres" \
        >"$WORK/pg-init.log" 2>&1 || fail "initdb"
    # The log lives in the data dir: the server runs as postgres, not root.
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $PG_DATA -l $PG_DATA/server.log -w -o '-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1' start" \
        >"$WORK/pg-ctl.log" 2>&1 || { cat "$PG_DATA/server.log" >>"$WORK/pg-ctl.log" 2>/dev/null; fail "pg_ctl start"; }
    wait_port 127.0.0.1 "$PG_PORT"
}

# mariadb_start: a throwaway MariaDB in $WORK/my (runs as mysql, root over
# TCP without a password); sets MY_PORT.
mariadb_start() {
    MY_PORT=$(free_port)
    local d=$WORK/my
    mkdir -p "$d" && chown mysql "$d"
    mariadb-install-db --no-defaults --user=mysql --datadir="$d/data" --skip-test-db \
        --auth-root-authentication-method=normal >"$WORK/my-install.log" 2>&1 || fail "mariadb-install-db"
    bg mariadb mariadbd --no-defaults --user=mysql --datadir="$d/data" --socket="$d/sock" \
        --port="$MY_PORT" --bind-address=127.0.0.1 --skip-log-bin --pid-file="$d/pid" \
        --innodb-buffer-pool-size=16M --log-error="$WORK/mariadb.log"
    wait_port 127.0.0.1 "$MY_PORT" 30
}

# http_start: python3's http.server on 127.0.0.1 serving $WORK/www; sets HTTP_PORT.
http_start() {
    HTTP_PORT=$(free_port)
    mkdir -p "$WORK/www" && echo hello >"$WORK/www/index.html"
    bg http "$PY" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www"
    wait_port 127.0.0.1 "$HTTP_PORT"
}

# nginx_serve NAME HTTP_BLOCKS: nginx (one worker, no access log, keep-alive
# without a request cap) with its prefix in $WORK/NAME and the given http{}
# contents (server and upstream blocks); $WORK/NAME/www holds a random 1 KiB
# file 1k.bin (the benchmarks' target). Does not wait for its ports.
nginx_serve() {
    local d=$WORK/$1
    mkdir -p "$d/www" "$d/tmp"
    head -c 1024 /dev/urandom >"$d/www/1k.bin"
    chmod -R a+rX "$d"
    cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    $2
}
EOF
    bg "$1" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
}

# nginx_start PORT: nginx_serve serving $WORK/nginx/www (1k.bin) on
# 127.0.0.1:PORT, once it listens.
nginx_start() {
    nginx_serve nginx "server { listen 127.0.0.1:$1; root $WORK/nginx/www; }"
    wait_port 127.0.0.1 "$1"
}

# pool_target NAME [args]: tests/integration/pooltarget.py (an HTTP/1.1
# target that counts its connections) on a free port, its files in
# $WORK/NAME; sets TPORT.
pool_target() {
    local name=$1
    shift
    TPORT=$(free_port)
    mkdir -p "$WORK/$name"
    bg "$name" "$PY" "$SRC/tests/integration/pooltarget.py" "$TPORT" "$WORK/$name" "$@"
    wait_for 10 "target $name" test -f "$WORK/$name/ready"
}
# conns_of NAME REGEX: the pool_target's connections that carried requests
# whose path matches (the agent's own probe of the target, HEAD /, has its own).
conns_of() { awk -v re="$2" '$2 ~ re { print $3 }' "$WORK/$1/requests" | sort -u; }
# closed_of NAME REGEX: how many of those connections the target saw end.
closed_of() { conns_of "$1" "$2" | grep -cxFf - "$WORK/$1/closed" || true; }
# http_pooled: the hub's idle streams in the HTTP edge's keep-alive pools
# (connect_http_pooled_streams); http_pooled_is N: whether that is N.
http_pooled() {
    curl -sf "$HUB_URL/metrics" | awk '$1 == "connect_http_pooled_streams" { print $2 }'
}
http_pooled_is() { [ "$(http_pooled)" = "$1" ]; }

# sshd_start: OpenSSH's sshd on 127.0.0.1 with a host key in $WORK (no
# logins are made); sets SSH_PORT.
sshd_start() {
    SSH_PORT=$(free_port)
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh_host_key" || fail "ssh-keygen"
    mkdir -p /run/sshd # privilege separation directory sshd insists on
    printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
        "$SSH_PORT" "$WORK/ssh_host_key" "$WORK/sshd.pid" >"$WORK/sshd_config"
    bg sshd /usr/sbin/sshd -D -e -f "$WORK/sshd_config"
    wait_port 127.0.0.1 "$SSH_PORT"
}
