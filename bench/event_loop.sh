#!/usr/bin/env bash
# The event loops of the hub and the agent, poll() against epoll (libev) and
# uv (libuv) (`serve --event-loop`, CONNECT_EVENT_LOOP), on the
# measure poll() is worst at: 64-byte ping-pong at c=50 through a public TCP
# tunnel, alone and with BENCH_IDLE_PP idle connections held open through the
# same tunnel. Each loop gets a fresh hub and agent; the loops alternate
# BENCH_ROUNDS times so that drift on a shared machine hits both alike.
#
# usage: bench/event_loop.sh   (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR  BENCH_SECS=8  BENCH_IDLE_PP=950  BENCH_ROUNDS=3
#   BENCH_LOOPS="poll epoll uv"
# Everything listens on 127.0.0.1; processes are stopped by PID (lib.sh).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-warn}
SECS=${BENCH_SECS:-8}
IDLE_PP=${BENCH_IDLE_PP:-950}
ROUNDS=${BENCH_ROUNDS:-3}
PP=$CN_BUILD_DIR/bench/bench_pingpong
[ -x "$PP" ] || { echo "event_loop.sh: build $PP first (build-rel)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"

ECHO_PORT=$(free_port)
bg echo-server "$PP" server "$ECHO_PORT" --host 127.0.0.1 --secs 7200
wait_port 127.0.0.1 "$ECHO_PORT"
kv() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }

one_round() { # LOOP ROUND: appends "LOOP ALONE IDLE HELD P99" to $WORK/rows
    local loop=$1 name=echo-$1-$2 line hold out alone idle
    rm -f "$WORK/hub.db"*
    unset HUB_PORT TCP_BASE
    hub_init
    # One client address opens all 1,000 connections: lift the per-client cap.
    hub_start --event-loop "$loop" --max-conns-per-client 4096 --max-conns-per-workspace 4096
    export CONNECT_EVENT_LOOP=$loop # the exposing agent's loop too
    agent_enroll "$name"
    expose "$name" "127.0.0.1:$ECHO_PORT" --public --protocol tcp --name "$name"
    local port=$TUNNEL_PORT agent=$EXPOSE_PID
    line=$("$PP" client 127.0.0.1 "$port" --conns 50 --secs "$SECS" --warmup 1 2>&1) || true
    alone=$(kv req_s <<<"$line")
    out=$WORK/hold-$loop.out
    "$PP" hold 127.0.0.1 "$port" --conns "$IDLE_PP" --secs $((SECS + 60)) >"$out" 2>&1 &
    hold=$!
    PIDS+=($hold)
    for _ in $(seq 1 600); do grep -q '^ready' "$out" && break; sleep 0.1; done
    line=$("$PP" client 127.0.0.1 "$port" --conns 50 --secs "$SECS" --warmup 1 2>&1) || true
    idle=$(kv req_s <<<"$line")
    echo "$loop $alone $idle $(awk '/^ready/ {print $2}' "$out") $(kv p99_us <<<"$line")" >"$WORK/row"
    stop_pid "$hold"
    stop_pid "$agent"
    stop_pid "$HUB_PID"
}

echo "| round | loop | c=50 req/s | c=50 + $IDLE_PP idle req/s | idle/alone | p99 µs with idle |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$ROUNDS"); do
    for loop in ${BENCH_LOOPS:-poll epoll uv}; do
        one_round "$loop" "$r"
        read -r l a i held p99 <"$WORK/row"
        echo "| $r | $l | $a | $i (${held:-0} held) | $(awk -v a="$a" -v i="$i" 'BEGIN { if (a > 0) printf "%.2f", i / a }') | $p99 |"
    done
done
