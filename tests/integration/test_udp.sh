#!/usr/bin/env bash
# User story: a team runs a DNS server and a UDP service on a staging
# machine. A public UDP tunnel serves them on a hub UDP port, and a teammate's
# laptop reaches them on a local UDP port (end to end encrypted between the
# two agents). dig gets the answers dnsmasq gives directly; a socat UDP echo
# returns 10,000 datagrams with no loss on loopback, and one of 60,000 bytes
# intact; each sender is its own flow; a paused tunnel drops datagrams.
source "$(dirname "$0")/lib.sh"
UDPTOOL=$SRC/tests/integration/udptool.py

command -v dnsmasq >/dev/null || fail "dnsmasq is not installed (scripts/install-deps.sh)"
command -v dig >/dev/null || fail "dig is not installed (dnsutils, scripts/install-deps.sh)"

free_udp_port() {
    "$PY" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SENDERS=()
hub_init
hub_start --udp-idle 2
agent_enroll dev
agent_enroll laptop

step "a DNS server (dnsmasq) and a UDP echo (socat) on the staging machine"
# dnsmasq binds the port for both UDP and TCP (DNS over TCP): both free, and
# below the ephemeral range, where a concurrent test's client socket cannot
# take it between the check and dnsmasq's bind (seen in a CI-like run).
DNS_PORT=$(free_range 1)
bg dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --port="$DNS_PORT" \
    --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user="$(id -un)" \
    --pid-file="$WORK/dnsmasq.pid" --address=/example.test/10.1.2.3 \
    --host-record=db.staging.test,10.9.8.7 --log-facility=-
ECHO_PORT=$(free_udp_port)
# -T 3: socat forks a child per sender, which would otherwise outlive the test.
bg socat socat -T 3 -b 65536 "UDP4-LISTEN:$ECHO_PORT,bind=127.0.0.1,fork,reuseaddr" PIPE
SOCAT_PID=$LAST_PID
wait_for 10 "dnsmasq answers" sh -c "dig @127.0.0.1 -p $DNS_PORT +short +tries=1 +time=1 db.staging.test | grep -q 10.9.8.7"
[ "$(dig @127.0.0.1 -p "$DNS_PORT" +short example.test)" = 10.1.2.3 ] || fail "dnsmasq direct"

step "dig through a public UDP tunnel"
expose dev "127.0.0.1:$DNS_PORT" --public --protocol udp --name dns-staging
DNS_TUNNEL=$TUNNEL_ID
DNS_HUB=$TUNNEL_PORT
[ -n "$DNS_HUB" ] || fail "the UDP tunnel has no hub port"
[ "$(dig @127.0.0.1 -p "$DNS_HUB" +short +tries=1 +time=2 example.test)" = 10.1.2.3 ] ||
    fail "dig example.test through the public UDP tunnel"
[ "$(dig @127.0.0.1 -p "$DNS_HUB" +short +tries=1 +time=2 db.staging.test)" = 10.9.8.7 ] ||
    fail "dig db.staging.test through the public UDP tunnel"
dig @127.0.0.1 -p "$DNS_HUB" +tries=1 +time=2 nonexistent.invalid | grep -q "status: NXDOMAIN\|status: REFUSED" ||
    fail "an error answer through the tunnel"
echo "dig: answers through hub UDP port $DNS_HUB"

step "dig through reach (a local UDP port, end-to-end encrypted)"
reach laptop dns-staging
DNS_REACH=$REACH_PORT
grep -q '"protocol":"udp"' "$WORK/reach-laptop-$REACHES.out" || fail "reach did not say udp"
[ "$(dig @127.0.0.1 -p "$DNS_REACH" +short +tries=1 +time=2 example.test)" = 10.1.2.3 ] ||
    fail "dig through reach"
[ "$(dig @127.0.0.1 -p "$DNS_REACH" +short +tries=1 +time=2 db.staging.test)" = 10.9.8.7 ] ||
    fail "dig db.staging.test through reach"
echo "dig: answers through reach on UDP port $DNS_REACH"

step "socat UDP echo: 10,000 datagrams, no loss, through the public tunnel and through reach"
expose dev "127.0.0.1:$ECHO_PORT" --public --protocol udp --name echo-staging
ECHO_HUB=$TUNNEL_PORT
reach laptop echo-staging
ECHO_REACH=$REACH_PORT
"$PY" "$UDPTOOL" echo 127.0.0.1 "$ECHO_PORT" 10000 || fail "direct echo lost datagrams"
"$PY" "$UDPTOOL" echo 127.0.0.1 "$ECHO_HUB" 10000 || fail "datagrams lost through the public UDP tunnel"
"$PY" "$UDPTOOL" echo 127.0.0.1 "$ECHO_REACH" 10000 || fail "datagrams lost through reach"
"$PY" "$UDPTOOL" big 127.0.0.1 "$ECHO_HUB" 60000 || fail "a 60,000-byte datagram through the public tunnel"
"$PY" "$UDPTOOL" big 127.0.0.1 "$ECHO_REACH" 60000 || fail "a 60,000-byte datagram through reach"

step "each sender is its own flow"
# A one-socket echo server: socat's fork per sender can hand a new sender's
# first datagram to another sender's child, which would blame the tunnel.
MULTI_PORT=$(free_udp_port)
bg multi-echo "$PY" "$UDPTOOL" server "$MULTI_PORT" 300
expose dev "127.0.0.1:$MULTI_PORT" --public --protocol udp --name multi-staging
MULTI_HUB=$TUNNEL_PORT
"$PY" "$UDPTOOL" echo 127.0.0.1 "$MULTI_HUB" 5 || fail "echo server through the tunnel"
for i in 1 2 3 4; do
    "$PY" "$UDPTOOL" echo 127.0.0.1 "$MULTI_HUB" 500 8 >"$WORK/multi-$i.out" 2>&1 &
    SENDERS+=($!)
done
for p in "${SENDERS[@]}"; do wait "$p" || fail "a concurrent sender: $(cat "$WORK"/multi-*.out)"; done
[ "$(grep -c "udp multi-staging flow 127.0.0.1:.*: opened" "$WORK/hub.log")" -ge 5 ] ||
    fail "expected a flow per sender in the hub log"
echo "4 concurrent senders, 500 datagrams each (8 in flight), each got its own back"

step "an idle flow ends (--udp-idle 2); the sender's next datagram opens a new one"
wait_for 10 "a flow to end for idleness" grep -q "idle for 2 s, closed" "$WORK/hub.log"
"$PY" "$UDPTOOL" echo 127.0.0.1 "$ECHO_HUB" 10 || fail "echo after the idle expiry"

step "a paused tunnel drops datagrams; resumed, it serves again"
api PATCH "/api/v1/tunnels/$DNS_TUNNEL" '{"status":"paused"}'
wait_for 10 "paused" status_is "$DNS_TUNNEL" paused
if dig @127.0.0.1 -p "$DNS_HUB" +short +tries=1 +time=1 example.test | grep -q 10.1.2.3; then
    fail "a paused UDP tunnel answered"
fi
grep -q "dropped: tunnel paused" "$WORK/hub.log" || fail "no log line for datagrams to a paused tunnel"
api PATCH "/api/v1/tunnels/$DNS_TUNNEL" '{"status":"active"}'
wait_for 10 "active" status_is "$DNS_TUNNEL" active
wait_for 10 "dig after resume" sh -c "dig @127.0.0.1 -p $DNS_HUB +short +tries=1 +time=1 example.test | grep -q 10.1.2.3"

# socat's per-sender children are not in PIDS: end them by their parent.
for c in $(pgrep -P "$SOCAT_PID" || true); do PIDS+=("$c"); done
kill -0 "$HUB_PID" || fail "hub died"
echo "test_udp: all checks passed"
