#!/usr/bin/env bash
# User story: an operator starts a "loopback only" hub with
# `--listen 127.0.0.1:PORT` (or `[::1]:PORT`) and trusts that neither the API,
# nor /agent, nor a public tunnel port can be reached from the network. The
# hub's listening sockets are read from /proc (the kernel's view, not the
# hub's log): every one is on exactly the address asked for. An address this
# host does not have is refused at start with one clear line.
source "$(dirname "$0")/lib.sh"

# listening PID: one "ADDRESS PORT" line per listening TCP socket of PID,
# from /proc/PID/fd and /proc/net/tcp{,6}.
listening() {
    "$PY" - "$1" <<'EOF'
import os, socket, struct, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
for table, fam in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
    try:
        lines = open(f"/proc/net/{table}").read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
            continue
        hexaddr, hexport = f[1].split(":")
        # Each 32-bit word is printed as a host-order integer of the
        # network-order bytes: repack it natively to get the bytes back.
        raw = b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16))
                       for i in range(0, len(hexaddr), 8))
        print(socket.inet_ntop(fam, raw), int(hexport, 16))
EOF
}

# only_on PID ADDRESS WHAT: fails unless PID listens, and only on ADDRESS.
only_on() {
    local socks
    socks=$(listening "$1")
    echo "$socks" | sed 's/^/   listening: /'
    [ -n "$socks" ] || fail "$3: the hub listens nowhere"
    if echo "$socks" | grep -qv "^$2 "; then
        fail "$3: the hub listens beyond $2: $(echo "$socks" | grep -v "^$2 " | tr '\n' ' ')"
    fi
}

hub_init

step "--listen 127.0.0.1: API, /agent and a public TCP port only on 127.0.0.1"
hub_start
api POST /api/v1/agents '{"name":"listen"}'
[ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
AGENT_ID=$(echo "$BODY" | json_get id)
api POST /api/v1/tunnels "{\"target\":\"127.0.0.1:9\",\"agentId\":\"$AGENT_ID\",\"protocol\":\"tcp\",\"public\":true}"
[ "$HTTP_STATUS" = 201 ] || fail "create tunnel: $HTTP_STATUS $BODY"
PUB_PORT=$(echo "$BODY" | json_get hubPort)
wait_port 127.0.0.1 "$PUB_PORT"
only_on "$HUB_PID" 127.0.0.1 "IPv4 loopback"
listening "$HUB_PID" | grep "^127.0.0.1 $HUB_PORT\$" >/dev/null || fail "the API port is not among the sockets"
listening "$HUB_PID" | grep "^127.0.0.1 $PUB_PORT\$" >/dev/null || fail "the tunnel port is not among the sockets"
if [ -z "${CN_HUB_EVENT_LOOP:-}" ]; then
    step "the default event loop is epoll (lws's libev plugin), not poll()"
    fds=$(ls -l "/proc/$HUB_PID/fd") # not piped into grep -q: SIGPIPE under pipefail
    grep -q 'anon_inode:\[eventpoll\]' <<<"$fds" || fail "the hub holds no epoll descriptor"
    grep -q 'libwebsockets-evlib_ev' "/proc/$HUB_PID/maps" || fail "lws's libev plugin is not loaded"
fi
stop_pid "$HUB_PID"

if grep -q ' lo$' /proc/net/if_inet6 2>/dev/null; then
    step "--listen [::1]: only on ::1, not on IPv4"
    PORT6=$(free_port)
    bg hub6 "$HUB_BIN" serve --db "$WORK/hub.db" --listen "[::1]:$PORT6"
    HUB6_PID=$LAST_PID
    wait_for 10 "hub health on [::1]" curl -sf "http://[::1]:$PORT6/api/v1/health"
    only_on "$HUB6_PID" ::1 "IPv6 loopback"
    if curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT6/api/v1/health"; then
        fail "a hub on [::1] answers on 127.0.0.1"
    fi
    stop_pid "$HUB6_PID"
else
    echo "   (no IPv6 on lo: the [::1] case is not run here)"
fi

step "an address this host does not have is refused at start"
set +e
timeout 10 "$HUB_BIN" serve --db "$WORK/hub.db" --listen "192.0.2.1:$(free_port)" \
    >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "serve on 192.0.2.1 exited $rc (expected a failure)"
grep -q "could not listen on 192.0.2.1" "$WORK/bad.err" || fail "no clear error: $(cat "$WORK/bad.err")"

echo "test_hub_listen: all checks passed"
