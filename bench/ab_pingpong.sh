#!/usr/bin/env bash
# A/B check for regressions on the latency path: two builds of Connect side by
# side, each with its own hub and agent exposing the same echo server through a
# public TCP tunnel, and 64-byte ping-pong at c=1 and c=50 alternating between
# them, ROUNDS times, so that both see the same machine noise. Prints one line a
# run with req/s, p50/p99 and the CPU microseconds the hub and the agent spent
# per request (user+system ticks from /proc, the steadier figure on a busy box).
#
# usage: bench/ab_pingpong.sh A_BUILD_DIR B_BUILD_DIR
#   ROUNDS=5   alternations        SECS=4   seconds per run
# Both build dirs need hub/connect-hub, agent/connect and bench/bench_pingpong
# (RelWithDebInfo). Everything listens on 127.0.0.1 and is stopped by PID by
# tests/integration/lib.sh's EXIT trap.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 A_BUILD_DIR B_BUILD_DIR" >&2; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-5} SECS=${SECS:-4}
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
    hub_init
    hub_start
    agent_enroll a
    expose a "127.0.0.1:$ECHO" --public --protocol tcp --name echo
    PORT[$side]=$TUNNEL_PORT
    PROCS[$side]="$HUB_PID $EXPOSE_PID"
done
WORK=$TOP
hz=$(getconf CLK_TCK)
for _ in $(seq 1 "$ROUNDS"); do
    for side in A B; do
        for n in 1 50; do
            # shellcheck disable=SC2086
            t0=$(ticks ${PROCS[$side]})
            line=$("$PP" client 127.0.0.1 "${PORT[$side]}" --conns "$n" --secs "$SECS" --warmup 1 2>&1)
            # shellcheck disable=SC2086
            t1=$(ticks ${PROCS[$side]})
            reqs=$(tr ' ' '\n' <<<"$line" | awk -F= '$1 == "reqs" { print $2 }')
            echo "$side c=$n $line cpu_us_per_req=$(((t1 - t0) * 1000000 / hz / ${reqs:-1}))"
        done
    done
done
