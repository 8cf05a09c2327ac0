#!/usr/bin/env bash
# Idle connections through one public TCP tunnel: a hub (`serve --event-loop
# epoll`) and one `connect expose` agent in front of an echo server; for
# each count, `bench_pingpong hold` opens that many connections through the
# tunnel (one 64-byte round trip each, so every hop is established) and
# holds them idle. Measured: hub and agent PSS and RSS with none and with
# them open (KB per connection), hub and agent CPU at idle with them open,
# and 64-byte ping-pong at c=50 beside them. Prints a markdown table.
#
# usage: bench/idle_conns.sh          (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR        build directory (default: build-rel next to bench/)
#   BENCH_IDLE="1000 10000" the connection counts, in one run of hub and agent
#   BENCH_SECS=10           each ping-pong, and the idle CPU window
#   BENCH_OUT=FILE          also write the table there
#   BENCH_PERF=DIR          also profile the hub and the agent (perf record -g)
#                           during each ping-pong beside idle connections
#   CONNECT_LOG=info        log level of the hub and the agent (the agent logs
#                           a line per stream at info)
#
# Limits raised for it, all explicit: every process gets the hard fd limit
# (`ulimit -n $(ulimit -Hn)`: the agent and the client need one descriptor
# per connection, the echo server one, the hub one); the hub's caps
# --max-conns, --max-conns-per-tunnel, --max-conns-per-workspace and
# --max-conns-per-client are lifted above the largest count (3,000, 1,024,
# 1,000 and 512 by default), and the hub sets its own fd limit from them.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-info}
COUNTS=${BENCH_IDLE:-1000 10000}
SECS=${BENCH_SECS:-10}
PP=$CN_BUILD_DIR/bench/bench_pingpong
[ -x "$PP" ] || {
    echo "idle_conns.sh: $PP is missing: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-rel -j2" >&2
    exit 2
}
ulimit -n "$(ulimit -Hn)"
MAX=0
for n in $COUNTS; do [ "$n" -gt "$MAX" ] && MAX=$n; done
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] || [ "$NOFILE" -ge $((MAX + 100)) ] || {
    echo "idle_conns.sh: $MAX connections need an fd limit above $((MAX + 100)); ulimit -Hn is $NOFILE" >&2
    exit 2
}

# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"

pingpong() { # pingpong CONNS -> "req/s (p50 / p99 µs)"
    local line
    line=$(timeout $((SECS + 30)) "$PP" client 127.0.0.1 "$TUNNEL_PORT" --conns "$1" --secs "$SECS" \
        --warmup 1 2>&1) || true
    log "ping-pong c=$1: $line"
    if [ "$(kv errors <<<"$line")" = 0 ]; then
        echo "$(fmt_int "$(kv req_s <<<"$line")") ($(kv p50_us <<<"$line") / $(kv p99_us <<<"$line"))"
    else
        echo "$(fmt_int "$(kv req_s <<<"$line")") ($(kv errors <<<"$line") errors)"
    fi
}
kb_per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n }'; }

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), fd limit $NOFILE"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ECHO_PORT=$(free_port)
bg echo-server "$PP" server "$ECHO_PORT" --host 127.0.0.1 --secs 7200
wait_port 127.0.0.1 "$ECHO_PORT"
hub_init
CAP=$((MAX + 1000))
hub_start --event-loop epoll --max-conns "$CAP" --max-conns-per-tunnel "$CAP" \
    --max-conns-per-workspace "$CAP" --max-conns-per-client "$CAP"
agent_enroll bench-echo
expose bench-echo "127.0.0.1:$ECHO_PORT" --public --protocol tcp --name bench-echo
AGENT=$EXPOSE_PID
log "hub fd limit: $(awk '/^Max open files/ {print $4}' "/proc/$HUB_PID/limits"), agent: $(awk '/^Max open files/ {print $4}' "/proc/$AGENT/limits")"
sleep 2
PP50_0=$(pingpong 50)
sleep 2
H_PSS0=$(pss_kb "$HUB_PID")
H_RSS0=$(rss_kb "$HUB_PID")
A_PSS0=$(pss_kb "$AGENT")
A_RSS0=$(rss_kb "$AGENT")
log "no connections: hub PSS $H_PSS0 KB RSS $H_RSS0 KB; agent PSS $A_PSS0 KB RSS $A_RSS0 KB"

ROWS=()
for n in $COUNTS; do
    hold_start 127.0.0.1 "$TUNNEL_PORT" "$n" $((SECS * 4 + 300)) "$WORK/hold-$n.out"
    if [ "$HOLD_READY" != "$n" ]; then
        log "only $HOLD_READY of $n opened: $(cat "$WORK/hold-$n.out"); $(grep -m3 -i 'refused\|error\|warn' "$WORK/hub.log" || true)"
        ROWS+=("| $(fmt_int "$n") | only $HOLD_READY opened | | | | | | |")
        stop_pid "$HOLD_PID"
        continue
    fi
    sleep 3
    H_PSS=$(pss_kb "$HUB_PID")
    H_RSS=$(rss_kb "$HUB_PID")
    A_PSS=$(pss_kb "$AGENT")
    A_RSS=$(rss_kb "$AGENT")
    CPU=$(cpu_pct "$SECS" "$HUB_PID" "$AGENT" | sed 's| | / |')
    PERFS=()
    if [ -n "${BENCH_PERF:-}" ]; then
        mkdir -p "$BENCH_PERF"
        for p in hub:$HUB_PID agent:$AGENT; do
            perf record -q -F 999 -g -p "${p#*:}" -o "$BENCH_PERF/idle$n-${p%%:*}.data" \
                -- sleep $((SECS + 1)) >/dev/null 2>&1 &
            PIDS+=($!)
            PERFS+=($!)
        done
    fi
    PP50=$(pingpong 50)
    for p in "${PERFS[@]}"; do wait "$p" || true; done
    stop_pid "$HOLD_PID"
    forget_pid "$HOLD_PID"
    HP=$(kb_per "$H_PSS0" "$H_PSS" "$n")
    AP=$(kb_per "$A_PSS0" "$A_PSS" "$n")
    SUM=$(awk -v a="$HP" -v b="$AP" 'BEGIN { printf "%.2f", a + b }')
    log "$n open: hub PSS $H_PSS RSS $H_RSS; agent PSS $A_PSS RSS $A_RSS; CPU $CPU %; c=50 $PP50"
    ROWS+=("| $(fmt_int "$n") | $HP / $(kb_per "$H_RSS0" "$H_RSS" "$n") | $AP / $(kb_per "$A_RSS0" "$A_RSS" "$n") | **$SUM** | $(fmt_int "$H_PSS") / $(fmt_int "$A_PSS") | $CPU | $PP50 |")
    sleep 3 # the closes settle
done
kill -0 "$HUB_PID" || fail "the hub died"
kill -0 "$AGENT" || fail "the agent died"

{
    echo
    echo "Loopback, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); hub and agent at CONNECT_LOG=$CONNECT_LOG, epoll."
    echo "No connections: hub PSS $(fmt_int "$H_PSS0") KB (RSS $(fmt_int "$H_RSS0")), agent PSS $(fmt_int "$A_PSS0") KB (RSS $(fmt_int "$A_RSS0")); ping-pong c=50 alone: $PP50_0 req/s (p50 / p99 µs)."
    echo
    echo "| idle connections | hub KB per connection, PSS / RSS | agent KB per connection, PSS / RSS | hub + agent PSS per connection (KB) | hub / agent PSS total (KB) | CPU at idle, hub / agent (% of a core) | ping-pong c=50 beside them: req/s (p50 / p99 µs) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
