#!/usr/bin/env bash
# The event loops of the hub and the agent, poll() against epoll (libev) and
# uv (libuv) (`serve --event-loop`, CONNECT_EVENT_LOOP), on the
# measure poll() is worst at: 64-byte ping-pong at c=50 through a public TCP
# tunnel while N more connections are held open and idle through the same
# tunnel, for each N of BENCH_IDLE_LIST. Each loop gets a fresh hub and agent
# per round; the loops alternate BENCH_ROUNDS times so that drift on a shared
# machine hits all alike.
#
# usage: bench/event_loop.sh   (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR  BENCH_SECS=8  BENCH_ROUNDS=3
#   BENCH_IDLE_LIST="0 950"  idle connections beside the c=50 load, in order,
#                     one hub and agent per loop and round (e.g. "0 1000 10000")
#   BENCH_IDLE_PP=950        the older knob: BENCH_IDLE_LIST="0 $BENCH_IDLE_PP"
#   BENCH_LOOPS="poll epoll uv"  BENCH_OUT=FILE (also write the table there)
# Limits raised for it, all explicit: every process gets the hard fd limit
# (ulimit -n $(ulimit -Hn); the largest count needs it above count + 100),
# and the hub's --max-conns, --max-conns-per-tunnel, --max-conns-per-workspace
# and --max-conns-per-client are lifted to the largest count + 1,000.
# Also measured: hub + agent CPU (% of one core) over 3 s with the idle
# connections held and no load: what each loop pays for idle sockets.
# Everything listens on 127.0.0.1; processes are stopped by PID (lib.sh).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-warn}
SECS=${BENCH_SECS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
IDLE_LIST=${BENCH_IDLE_LIST:-0 ${BENCH_IDLE_PP:-950}}
PP=$CN_BUILD_DIR/bench/bench_pingpong
[ -x "$PP" ] || { echo "event_loop.sh: build $PP first (build-rel)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
MAX=0
for n in $IDLE_LIST; do [ "$n" -gt "$MAX" ] && MAX=$n; done
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] || [ "$NOFILE" -ge $((MAX + 100)) ] || {
    echo "event_loop.sh: $MAX idle connections need an fd limit above $((MAX + 100)); ulimit -Hn is $NOFILE" >&2
    exit 2
}
CAP=$((MAX + 1000))
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"

ECHO_PORT=$(free_port)
bg echo-server "$PP" server "$ECHO_PORT" --host 127.0.0.1 --secs 7200
wait_port 127.0.0.1 "$ECHO_PORT"

one_round() { # LOOP ROUND: appends "| ROUND | LOOP | N | req/s | ratio | p99 | cpu |" rows
    local loop=$1 r=$2 name=echo-$1-$2 line n out hold=0 base=0 req cpu
    rm -f "$WORK/hub.db"*
    unset HUB_PORT TCP_BASE
    hub_init
    # One client address opens all the connections: lift the caps.
    hub_start --event-loop "$loop" --max-conns "$CAP" --max-conns-per-tunnel "$CAP" \
        --max-conns-per-workspace "$CAP" --max-conns-per-client "$CAP"
    export CONNECT_EVENT_LOOP=$loop # the exposing agent's loop too
    agent_enroll "$name"
    expose "$name" "127.0.0.1:$ECHO_PORT" --public --protocol tcp --name "$name"
    local port=$TUNNEL_PORT agent=$EXPOSE_PID
    for n in $IDLE_LIST; do
        cpu=-
        if [ "$n" -gt 0 ]; then
            out=$WORK/hold-$loop-$n.out
            hold_start 127.0.0.1 "$port" "$n" $((SECS * 2 + 600)) "$out"
            hold=$HOLD_PID
            if [ "$HOLD_READY" != "$n" ]; then
                log "$loop: only $HOLD_READY of $n idle connections opened: $(cat "$out")"
                echo "| $r | $loop | $n | open failed ($HOLD_READY) | | | |" >>"$WORK/rows"
                stop_pid "$hold"
                continue
            fi
            sleep 1
            cpu=$(cpu_pct 3 "$HUB_PID" "$agent" | awk '{ printf "%.1f", $1 + $2 }')
        fi
        line=$("$PP" client 127.0.0.1 "$port" --conns 50 --secs "$SECS" --warmup 1 2>&1) || true
        req=$(kv req_s <<<"$line")
        log "$loop round $r, $n idle: $line (idle CPU hub+agent $cpu%)"
        [ "$n" -gt 0 ] || base=$req
        echo "| $r | $loop | $n | $(fmt_int "${req:-0}") | $(awk -v a="$base" -v i="${req:-0}" 'BEGIN { if (a > 0) printf "%.2f", i / a; else printf "-" }') | $(kv p99_us <<<"$line") | $cpu |" >>"$WORK/rows"
        [ "$hold" = 0 ] || stop_pid "$hold"
        hold=0
    done
    stop_pid "$agent"
    stop_pid "$HUB_PID"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
    for loop in ${BENCH_LOOPS:-poll epoll uv}; do one_round "$loop" "$r"; done
done
{
    echo
    echo "c=50 64-byte ping-pong, ${SECS} s per cell; $(nproc) cores; load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| round | loop | idle connections | c=50 req/s | / 0 idle | p99 µs | hub+agent CPU % at idle |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    cat "$WORK/rows"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
