#!/usr/bin/env bash
# A/B check for regressions on the latency path: two builds of Connect side by
# side, each with its own hub and agent exposing the same echo server through a
# public TCP tunnel, and 64-byte ping-pong at c=1 and c=50 alternating between
# them, ROUNDS times, so that both see the same machine noise. Prints one line a
# run with req/s, p50/p99 and the CPU microseconds the hub and the agent spent
# per request (user+system ticks from /proc, the steadier figure on a busy box).
#
# usage: bench/ab_pingpong.sh A_BUILD_DIR B_BUILD_DIR (the same one twice to
# compare settings)
#   ROUNDS=5   alternations        SECS=4   seconds per run
#   CONNS="1 50"                   connection counts per run
#   A_BUSY_POLL=US, B_BUSY_POLL=US that side's hub and agent busy-poll
#                                  (serve --busy-poll, CONNECT_BUSY_POLL; 0: off)
#   A_HUB_BUSY_POLL, A_AGENT_BUSY_POLL (and B_...) the hub's or the agent's
#                                  alone, over the side's
#   SOCAT=1    a socat -b 131072 forwarder to the same server, in each round
# Both build dirs need hub/connect-hub, agent/connect and bench/bench_pingpong
# (RelWithDebInfo). Everything listens on 127.0.0.1 and is stopped by PID by
# tests/integration/lib.sh's EXIT trap.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 A_BUILD_DIR B_BUILD_DIR" >&2; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-5} SECS=${SECS:-4} CONNS=${CONNS:-1 50}
export CN_BUILD_DIR=$B CN_SOURCE_DIR
CN_SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/integration/lib.sh
source "$CN_SOURCE_DIR/tests/integration/lib.sh"
PP=$B/bench/bench_pingpong

ticks() { # user+system clock ticks of the given PIDs
    local t=0 p s
    for p in "$@"; do
        s=$(cat "/proc/$p/stat")
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

ECHO=$(free_port)
bg echo "$PP" server "$ECHO" --host 127.0.0.1 --secs 7200
wait_port 127.0.0.1 "$ECHO"
declare -A PORT PROCS
TOP=$WORK
for side in A B; do
    dir=${!side}
    HUB_BIN=$dir/hub/connect-hub CLI_BIN=$dir/agent/connect
    WORK=$TOP/$side
    mkdir -p "$WORK"
    unset HUB_PORT TCP_BASE
    busy=${side}_BUSY_POLL
    busy=${!busy:-0}
    hub_busy=${side}_HUB_BUSY_POLL
    hub_busy=${!hub_busy:-$busy}
    agent_busy=${side}_AGENT_BUSY_POLL
    agent_busy=${!agent_busy:-$busy}
    hub_init
    hub_start --busy-poll "$hub_busy"
    agent_enroll a
    CONNECT_BUSY_POLL=$agent_busy expose a "127.0.0.1:$ECHO" --public --protocol tcp --name echo
    PORT[$side]=$TUNNEL_PORT
    PROCS[$side]="$HUB_PID $EXPOSE_PID"
done
WORK=$TOP
SIDES="A B"
if [ "${SOCAT:-0}" = 1 ]; then
    PORT[socat]=$(free_port)
    bg socat socat -b 131072 "TCP-LISTEN:${PORT[socat]},bind=127.0.0.1,reuseaddr,fork" \
        "TCP:127.0.0.1:$ECHO"
    PROCS[socat]=$LAST_PID # the listener: its forked children do the work
    wait_port 127.0.0.1 "${PORT[socat]}"
    SIDES+=" socat"
fi
hz=$(getconf CLK_TCK)
for _ in $(seq 1 "$ROUNDS"); do
    for side in $SIDES; do
        for n in $CONNS; do
            # shellcheck disable=SC2086
            t0=$(ticks ${PROCS[$side]})
            line=$("$PP" client 127.0.0.1 "${PORT[$side]}" --conns "$n" --secs "$SECS" --warmup 1 2>&1)
            # shellcheck disable=SC2086
            t1=$(ticks ${PROCS[$side]})
            reqs=$(tr ' ' '\n' <<<"$line" | awk -F= '$1 == "reqs" { print $2 }')
            cpu=$(((t1 - t0) * 1000000 / hz / ${reqs:-1}))
            [ "$side" != socat ] || cpu=- # its forked children are not counted
            echo "$side c=$n $line cpu_us_per_req=$cpu"
        done
    done
done
