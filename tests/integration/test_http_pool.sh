#!/usr/bin/env bash
# User story: a public HTTP tunnel in front of a keep-alive web server costs
# the target one connection, not one per request: the HTTP edge keeps the
# streams of finished exchanges in a per-tunnel pool (upstream keep-alive,
# docs/http-edge.md) and the next request, from any client, reuses one.
# A target that answers Connection: close gets a connection per request; a
# target that closes an idle connection just as a request goes out on it
# costs nothing visible (a GET is sent again once; a POST never rides a
# pooled stream, so it runs exactly once); the pool is bounded, idle
# streams expire, and pause, PATCH, delete and an agent restart drop it.
source "$(dirname "$0")/lib.sh"

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --http-pool 4 --http-pool-idle 4
agent_enroll dev

lines() { wc -l <"$WORK/$1"; }
nconns() { conns_of "$1" "$2" | wc -l; }
# get NAME PATH...: one curl (one client connection, keep-alive) per call;
# every answer must be 200.
get() {
    local name=$1 p
    shift
    local args=()
    for p in "$@"; do args+=(-o /dev/null "http://$name.localhost:$EDGE_PORT$p"); done
    local codes
    codes=$(curl -s -m 10 -w '%{http_code}\n' "${args[@]}" | sort -u | tr '\n' ' ')
    [ "$codes" = "200 " ] || fail "GET $name $*: status $codes"
}

pool_target keep
expose dev "127.0.0.1:$TPORT" --public --protocol http --name keep
KEEP_EXPOSE=$EXPOSE_PID
KEEP_ID=$TUNNEL_ID
KEEP_PORT=$TPORT
pool_target close --close
expose dev "127.0.0.1:$TPORT" --public --protocol http --name close
pool_target drop --drop-second
expose dev "127.0.0.1:$TPORT" --public --protocol http --name drop
pool_target idle --idle-close 200
expose dev "127.0.0.1:$TPORT" --public --protocol http --name idle
IDLE_ID=$TUNNEL_ID
IDLE_EXPOSE=$EXPOSE_PID

step "reuse: 20 requests from 11 client connections cost the target 1 connection"
for i in $(seq 1 10); do get keep "/a$i"; done
get keep /b1 /b2 /b3 /b4 /b5 /b6 /b7 /b8 /b9 /b10
[ "$(grep -c ' /[ab][0-9]' "$WORK/keep/requests")" = 20 ] || fail "the target saw: $(cat "$WORK/keep/requests")"
[ "$(nconns keep '^/[ab][0-9]')" = 1 ] || fail "20 requests took $(nconns keep '^/[ab][0-9]') target connections, want 1"
http_pooled_is 1 || fail "connect_http_pooled_streams is $(http_pooled), want 1"
[ "$(closed_of keep '^/[ab][0-9]')" = 0 ] || fail "the pooled connection was closed"
echo "1 target connection for 20 requests; 1 stream pooled"

step "a target answering Connection: close gets a connection per request"
for i in $(seq 1 5); do get close "/c$i"; done
get close /d1 /d2 /d3 /d4 /d5
[ "$(nconns close '^/[cd][0-9]')" = 10 ] || fail "10 requests took $(nconns close '^/[cd][0-9]') connections, want 10"
echo "10 connections for 10 requests"

step "idle pooled streams expire (--http-pool-idle 4) and close the target's connection"
wait_for 8 "the pool to empty" http_pooled_is 0
wait_eq 3 "the target to see its connection closed" 1 closed_of keep '^/[ab][0-9]'

step "each pooled stream expires after its own idle time, the longest idle first"
pids=()
for i in 1 2; do
    curl -s -o /dev/null -m 10 "http://keep.localhost:$EDGE_PORT/slow?ms=500" & # two streams
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
[ "$(nconns keep '^/slow[?]ms=500$')" = 2 ] || fail "2 concurrent requests took $(nconns keep '^/slow[?]ms=500$') connections"
http_pooled_is 2 || fail "connect_http_pooled_streams is $(http_pooled), want 2"
sleep 2
get keep /e3 # takes the newest stream and puts it back: its idle time starts again
wait_for 4 "the stream idle longest to expire" http_pooled_is 1
sleep 0.5
http_pooled_is 1 || fail "the stream used 2 s later expired with the other"
wait_for 4 "the other stream to expire" http_pooled_is 0
echo "one expired at 4 s, the other 2 s later"

step "the pool is bounded (--http-pool 4): 8 concurrent requests, 4 streams kept"
pids=()
for i in $(seq 1 8); do
    curl -s -o /dev/null -m 10 -w '%{http_code}\n' "http://keep.localhost:$EDGE_PORT/slow?ms=800" \
        >"$WORK/par$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 1 8); do [ "$(cat "$WORK/par$i")" = 200 ] || fail "concurrent request $i: $(cat "$WORK/par$i")"; done
[ "$(nconns keep '^/slow[?]ms=800$')" = 8 ] || fail "8 concurrent requests took $(nconns keep '^/slow[?]ms=800$') connections, want 8"
http_pooled_is 4 || fail "connect_http_pooled_streams is $(http_pooled) after 8 concurrent requests, want 4"
wait_eq 3 "the 4 streams beyond the bound to close" 4 closed_of keep '^/slow[?]ms=800$'
echo "4 kept, 4 closed"

step "the race: the target closes a pooled connection as a request goes out on it"
for i in $(seq 1 6); do
    get drop "/g$i"
    sleep 0.3
done
[ "$(lines drop/dropped)" -ge 3 ] || fail "the race happened $(lines drop/dropped) times, want 3 or more"
grep -c '^GET /g' "$WORK/drop/requests" | grep -qx 6 || fail "each GET answered once: $(cat "$WORK/drop/requests")"
echo "$(lines drop/dropped) GETs met a closed pooled connection; all 6 answered 200 (sent again once)"
for i in 1 2 3; do
    c=$(curl -s -o /dev/null -m 10 -w '%{http_code}' --data "body-$i" "http://drop.localhost:$EDGE_PORT/p$i")
    [ "$c" = 200 ] || fail "POST $i: $c"
    get drop "/h$i" # leaves a used stream in the pool for the next POST
done
[ "$(grep -c '^POST ' "$WORK/drop/requests")" = 3 ] || fail "POSTs executed: $(grep '^POST' "$WORK/drop/requests")"
! grep -q '^POST' "$WORK/drop/dropped" || fail "a POST went out on a pooled stream: $(cat "$WORK/drop/dropped")"
echo "3 POSTs, each on a new stream, each run exactly once"

step "a target closing idle connections after 200 ms, requests 250 ms apart"
for i in $(seq 1 8); do
    get idle "/i$i"
    sleep 0.25
done
echo "8 of 8 answered"

step "pause, PATCH and delete drop the tunnel's pool at once"
wait_for 8 "the pool to empty" http_pooled_is 0
get keep /p1
http_pooled_is 1 || fail "not pooled: $(http_pooled)"
api PATCH "/api/v1/tunnels/$KEEP_ID" '{"status":"paused"}'
[ "$HTTP_STATUS" = 200 ] || fail "pause: $HTTP_STATUS $BODY"
wait_for 2 "pause to drop the pool" http_pooled_is 0
wait_eq 2 "the target's connection to close" 1 closed_of keep '^/p1$'
api PATCH "/api/v1/tunnels/$KEEP_ID" '{"status":"active"}'
[ "$HTTP_STATUS" = 200 ] || fail "resume: $HTTP_STATUS $BODY"
get keep /p2
http_pooled_is 1 || fail "not pooled after resume: $(http_pooled)"
api PATCH "/api/v1/tunnels/$KEEP_ID" '{"metadata":{"team":"qa"}}'
[ "$HTTP_STATUS" = 200 ] || fail "PATCH metadata: $HTTP_STATUS $BODY"
wait_for 2 "PATCH to drop the pool" http_pooled_is 0
get keep /p3
get idle /p4
http_pooled_is 2 || fail "pooled: $(http_pooled), want 2"
api DELETE "/api/v1/tunnels/$IDLE_ID"
[ "$HTTP_STATUS" = 200 ] || fail "delete: $HTTP_STATUS $BODY"
wait_for 2 "delete to drop its pool" http_pooled_is 1
stop_pid "$IDLE_EXPOSE" # it leaves once its tunnel is deleted
forget_pid "$IDLE_EXPOSE"
echo "pause, PATCH and delete each dropped the pool"

step "an agent restart drops the pool; requests still work"
stop_pid "$KEEP_EXPOSE"
forget_pid "$KEEP_EXPOSE"
wait_for 5 "the link's pool to go" http_pooled_is 0
expose dev "127.0.0.1:$KEEP_PORT" --public --protocol http --name keep
get keep /r1 /r2
get keep /r3
[ "$(nconns keep '^/r[0-9]')" = 1 ] || fail "after the restart: $(nconns keep '^/r[0-9]') connections for 3 requests, want 1"
echo "a new pool on the new link"
echo "PASS"
