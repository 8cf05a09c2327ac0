#!/usr/bin/env bash
# User story: the HTTP edge's keep-alive pools never take an agent link's
# streams away from its requests: however many tunnels an agent serves,
# the pools of one link together keep at most 1,024 idle streams (a
# quarter of the streams a link may have open; docs/http-edge.md): a pool
# that takes the link past that closes its longest idle stream, and the
# agent the target connection with it.
#
# One `connect agent` serves two public HTTP tunnels on one link; each
# gets 600 concurrent requests (each its own stream and target connection)
# with --http-pool 700, so no tunnel's own bound is reached: 1,200 streams
# end cleanly, 1,024 stay pooled and the targets see 176 connections close.
source "$(dirname "$0")/lib.sh"
PER_TUNNEL=600
LINK_MAX=1024 # POOL_LINK_MAX in hub/edge_http.c

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --http-pool 700 --http-pool-idle 300
agent_enroll dev

closed_total() { echo $(($(closed_of a "^/slow") + $(closed_of b "^/slow"))); }

step "one agent link serves two public HTTP tunnels"
# `expose --keep` records each target as this machine's and leaves its
# tunnel behind; the daemon then serves both on one link.
for name in a b; do
    pool_target "$name"
    expose dev "127.0.0.1:$TPORT" --public --protocol http --name "$name" --keep
    stop_pid "$EXPOSE_PID"
    forget_pid "$EXPOSE_PID"
done
bg agent "$CLI_BIN" agent --config "$WORK/dev.json"
for name in a b; do
    wait_for 15 "tunnel $name served" \
        bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: $name.localhost' \
            http://127.0.0.1:$EDGE_PORT/ready)\" = 200 ]"
done
wait_for 10 "the probes' streams to settle in the pools" http_pooled_is 2
echo "both tunnels answer through the daemon's link; 2 streams pooled"

step "$PER_TUNNEL concurrent requests to each tunnel: $((2 * PER_TUNNEL)) streams end cleanly, $LINK_MAX stay pooled"
"$PY" - "$EDGE_PORT" "$PER_TUNNEL" <<'EOF' || fail "the concurrent requests failed"
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for host in ("a.localhost", "b.localhost"):
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(("GET /slow?ms=4000 HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        socks.append(s)
bad = 0
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        bad += 1
        print("answer:", data[:200], file=sys.stderr)
for s in socks:
    s.close()
sys.exit(1 if bad else 0)
EOF
for name in a b; do
    n=$(conns_of "$name" "^/slow" | wc -l)
    # All in flight at once (each on a stream of its own): otherwise the
    # pool would have handed a finished stream to a later request.
    [ "$n" = "$PER_TUNNEL" ] || fail "tunnel $name: $n target connections for $PER_TUNNEL concurrent requests"
done
# The probes' two pooled streams carried the first requests: 1,200 streams
# in all, every one of them with a /slow request.
want_closed=$((2 * PER_TUNNEL - LINK_MAX))
wait_for 10 "the pools to settle at $LINK_MAX" http_pooled_is "$LINK_MAX"
wait_eq 10 "the targets to see $want_closed connections close" "$want_closed" closed_total
sleep 1 # nothing more closes
http_pooled_is "$LINK_MAX" || fail "connect_http_pooled_streams is $(http_pooled), want $LINK_MAX"
[ "$(closed_total)" = "$want_closed" ] || fail "$(closed_total) target connections closed, want $want_closed"
echo "$(http_pooled) streams pooled on the link; $want_closed target connections closed"

step "a request still finds a pooled stream"
for name in a b; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $name.localhost" \
        "http://127.0.0.1:$EDGE_PORT/after")" = 200 ] || fail "GET /after on $name"
    c=$(awk '$2 == "/after" { print $3 }' "$WORK/$name/requests")
    conns_of "$name" "^/slow" | grep -qx "$c" || fail "GET /after on $name took a new target connection ($c)"
done
http_pooled_is "$LINK_MAX" || fail "connect_http_pooled_streams is $(http_pooled) after, want $LINK_MAX"
echo "each went out on a pooled stream"
echo "PASS"
