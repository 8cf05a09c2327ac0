#!/usr/bin/env bash
# User story: a developer exposes Redis, PostgreSQL and a plain TCP service
# through public TCP tunnels; real clients (redis-cli, psql, a hashing
# client) get exactly what they would get directly: PING, a 1 MiB value, 100k
# rows, large transfers with equal SHA-256, 256 concurrent connections, and a
# half-closed client still receiving its whole reply.
source "$(dirname "$0")/lib.sh"

BIG_MIB=${CN_BIG_MIB:-1024}

hub_init
hub_start
agent_enroll dev

step "Redis through a public TCP tunnel"
redis_start
expose dev "127.0.0.1:$REDIS_PORT" --public --protocol tcp --name redis-dev
REDIS_TUNNEL=$TUNNEL_PORT
# The event loops in use: epoll by default (lws's libev plugin), poll() or
# libuv when asked for (the test_tcp_tunnel_poll and _uv entries run this
# script on both the hub and the agent).
for who in "hub $HUB_PID ${CN_HUB_EVENT_LOOP:-epoll}" "agent $EXPOSE_PID ${CONNECT_EVENT_LOOP:-epoll}"; do
    read -r name pid loop <<<"$who"
    fds=$(ls -l "/proc/$pid/fd") # not piped into grep -q: SIGPIPE under pipefail
    if grep -q 'anon_inode:\[eventpoll\]' <<<"$fds"; then has=epoll; else has=poll; fi
    [ "$has" = "$([ "$loop" = poll ] && echo poll || echo epoll)" ] ||
        fail "the $name runs on $has, expected $loop"
    case $loop in epoll) plugin=ev ;; uv) plugin=uv ;; *) plugin= ;; esac
    [ -z "$plugin" ] || grep -q "libwebsockets-evlib_$plugin" "/proc/$pid/maps" ||
        fail "the $name has not loaded lws's $loop plugin (evlib_$plugin)"
done
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_TUNNEL" PING)" = PONG ] || fail "redis-cli PING"
"$PY" -c 'import random; print(random.Random(7).randbytes(1<<20).hex()[:1<<20], end="")' >"$WORK/value"
redis-cli -h 127.0.0.1 -p "$REDIS_TUNNEL" -x SET big <"$WORK/value" | grep -q OK || fail "SET 1 MiB"
# redis-cli prints the value and a newline; compare the value bytes (no pipe
# into head: a SIGPIPE would fail the test under pipefail).
redis-cli -h 127.0.0.1 -p "$REDIS_TUNNEL" GET big >"$WORK/got.raw" || fail "GET through the tunnel"
head -c $((1 << 20)) "$WORK/got.raw" >"$WORK/got"
cmp -s "$WORK/value" "$WORK/got" || fail "1 MiB value differs after GET through the tunnel"
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" STRLEN big)" = $((1 << 20)) ] ||
    fail "the value stored in Redis has the wrong length"
echo "redis: PING, 1 MiB SET/GET intact"
if [ -n "${CN_HUB_BUSY_POLL:-}" ]; then
    # Busy polling (test_tcp_tunnel_busypoll): on where asked, and round
    # trips one at a time (the path it is for) answered; it ends with the
    # traffic, so an idle hub and agent sleep in epoll_wait again.
    grep -q "busy polling up to $CN_HUB_BUSY_POLL us" "$WORK/hub.log" ||
        fail "the hub does not say it busy-polls"
    grep -q "busy polling up to $CONNECT_BUSY_POLL us" "$WORK"/expose-dev-*.log ||
        fail "the agent does not say it busy-polls"
    n=$(redis-cli -h 127.0.0.1 -p "$REDIS_TUNNEL" -r 3000 PING | grep -c PONG)
    [ "$n" = 3000 ] || fail "3,000 PINGs one at a time: $n PONGs"
    ticks() { # user+system clock ticks of the given PIDs (names without spaces)
        local t=0 p
        for p; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
        echo "$t"
    }
    sleep 0.5
    t0=$(ticks "$HUB_PID" "$EXPOSE_PID")
    sleep 3
    used=$((($(ticks "$HUB_PID" "$EXPOSE_PID") - t0) * 1000 / $(getconf CLK_TCK)))
    echo "busy polling: 3,000 PINGs answered; idle, hub and agent used $used ms of CPU in 3 s"
    [ "$used" -lt 300 ] || fail "idle with busy polling on, hub and agent used $used ms of CPU in 3 s"
fi

step "PostgreSQL through a public TCP tunnel"
pg_start
expose dev "127.0.0.1:$PG_PORT" --public --protocol tcp --name pg-dev
PG_TUNNEL=$TUNNEL_PORT
Q="select g, md5(g::text) from generate_series(1,100000) g"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -At -c "$Q" >"$WORK/direct.txt" || fail "psql direct"
psql -h 127.0.0.1 -p "$PG_TUNNEL" -U postgres -At -c "$Q" >"$WORK/tunnel.txt" || fail "psql through the tunnel"
[ "$(wc -l <"$WORK/tunnel.txt")" -eq 100000 ] || fail "expected 100000 rows"
cmp -s "$WORK/direct.txt" "$WORK/tunnel.txt" || fail "rows through the tunnel differ from direct"
echo "postgres: 100000 rows identical to direct"

step "bulk transfers, concurrency and half-close through a TCP tunnel"
TOOL_PORT=$(free_port)
bg tool "$PY" "$TCPTOOL" server "$TOOL_PORT"
wait_port 127.0.0.1 "$TOOL_PORT"
expose dev "127.0.0.1:$TOOL_PORT" --public --protocol tcp --name bulk
BULK=$TUNNEL_PORT
"$PY" "$TCPTOOL" sink 127.0.0.1 "$BULK" $((100 << 20)) 1 || fail "100 MiB upload"
"$PY" "$TCPTOOL" source 127.0.0.1 "$BULK" $((100 << 20)) 2 || fail "100 MiB download"
"$PY" "$TCPTOOL" sink 127.0.0.1 "$BULK" $((BIG_MIB << 20)) 3 || fail "${BIG_MIB} MiB upload"
"$PY" "$TCPTOOL" echo 127.0.0.1 "$BULK" $((8 << 20)) 4 || fail "half-close: reply after SHUT_WR"
"$PY" "$TCPTOOL" many 127.0.0.1 "$BULK" 256 65536 || fail "256 concurrent connections"

step "the agent's allow-list: a stream for another target is refused"
# Only tunnels of this agent are dialed; the hub never asks for anything else,
# and the agent unit tests cover forged stream opens. Here: everything still works.
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_TUNNEL" PING)" = PONG ] || fail "redis after the load"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_tcp_tunnel: all checks passed"
