#!/usr/bin/env bash
# One iperf3 stream through a public TCP tunnel, both ways, over a list of
# stream windows and credit-return thresholds (`connect-hub serve
# --stream-window/--window-update` and the agent's CONNECT_STREAM_WINDOW/
# CONNECT_WINDOW_UPDATE, both ends set alike), beside ssh -L aes128-gcm as the
# reference. Per cell: Gbit/s, the machine's idle share during the run (both
# cores, from /proc/stat: idle CPU while the stream runs means the stream
# waits on something other than CPU), and the hub's and agent's CPU seconds
# per GB, and for each of them the share of the run its event-loop thread
# ran / waited for a CPU / slept (/proc/PID/schedstat; a thread that sleeps
# while the stream runs waits on its peer: window or latency, not CPU). Each
# cell gets a fresh hub and agent; the cells alternate within a round (the
# windows in reverse order every other round), BENCH_ROUNDS rounds, so that
# drift on a shared machine hits all alike.
#
# usage: bench/tcp_window.sh   (after a RelWithDebInfo build in build-rel)
#   BENCH_WINDOWS="262144 524288 1048576 2097152 4194304"  windows in bytes;
#                     "default" = no setting (the build's own defaults)
#   BENCH_UPDATE_DIVS="4"   threshold = window / DIV, one cell per DIV
#                     (e.g. "2 4 8"; 4 is the built-in default)
#   BENCH_BUILDS="DIR..."   build directories to compare (default: CN_BUILD_DIR
#                     or build-rel); each build is a cell of its own
#   BENCH_SECS=5  BENCH_ROUNDS=2  BENCH_SSH=1 (0: no ssh -L cell)
#   BENCH_OUT=FILE          also write the table there
# Everything listens on 127.0.0.1; processes are stopped by PID (lib.sh).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-warn}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
WINDOWS=${BENCH_WINDOWS:-262144 524288 1048576 2097152 4194304}
DIVS=${BENCH_UPDATE_DIVS:-4}
BUILDS=${BENCH_BUILDS:-$CN_BUILD_DIR}
SSH=${BENCH_SSH:-1}
for tool in iperf3 python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "tcp_window.sh: $tool is missing" >&2; exit 2; }
done
for b in $BUILDS; do
    [ -x "$b/hub/connect-hub" ] || { echo "tcp_window.sh: build $b first (build-rel)" >&2; exit 2; }
done
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"

IPERF_PORT=$(free_port)
bg iperf3-server iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
wait_port 127.0.0.1 "$IPERF_PORT"
if [ "$SSH" = 1 ]; then
    SSH_LOCAL=$(free_port)
    ssh_forward_start "$SSH_LOCAL:$IPERF_PORT"
fi

# measure PORT -R|"" PID...: one iperf3 run; prints "GBIT IDLE% SCHED S/GB
# SPLIT" (SCHED: each PID's event-loop thread run/wait/sleep % of the run,
# joined with a comma; SPLIT: each PID's s/GB, joined with +).
measure() {
    local port=$1 rev=$2 out j0 p bytes gbps
    shift 2
    local -a t0=() t1=() s0=() s1=()
    local w0 w1
    local idle try sum
    out=$WORK/iperf.json
    # A run without a result (iperf3 through ssh -L sometimes ends its first
    # test without "sum_received") is run again, once.
    for try in 1 2; do
        t0=() s0=()
        for p in "$@"; do t0+=("$(cpu_ticks "$p")"); s0+=("$(sched_ns "$p")"); done
        j0=$(machine_jiffies)
        w0=$(date +%s%N)
        # shellcheck disable=SC2086 # -R or nothing
        timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$SECS" -J $rev >"$out" 2>&1 || true
        idle=$(machine_idle_pct "$j0" "$(machine_jiffies)")
        w1=$(date +%s%N)
        s1=()
        for p in "$@"; do s1+=("$(sched_ns "$p")"); done
        sum=$(python3 -c 'import json,sys
e=json.load(open(sys.argv[1]))["end"]["sum_received"]
print(e["bytes"], "%.2f" % (e["bits_per_second"]/1e9))' "$out" 2>/dev/null) && break
        cp "$out" "$WORK/iperf-failed-$try.json"
        log "iperf3 to $port $rev: no result (try $try): $(grep -m1 '"error"' "$out" || tail -c 200 "$out")"
        sum=
    done
    [ -n "$sum" ] || { echo "failed - - - -"; return 0; }
    for p in "$@"; do t1+=("$(cpu_ticks "$p")"); done
    read -r bytes gbps <<<"$sum"
    local args=() i sched=""
    for i in "${!t0[@]}"; do
        args+=("$((t1[i] - t0[i]))")
        sched+="${sched:+,}$(sched_split "${s0[$i]}" "${s1[$i]}" "$((w1 - w0))")"
    done
    echo "$gbps $idle $sched $(python3 -c 'import sys
c, b = int(sys.argv[1]), int(sys.argv[2]) / 1e9
v = [int(x) / c / b for x in sys.argv[3:]]
print("%.2f %s" % (sum(v), "+".join("%.2f" % x for x in v)))' "$CLK" "$bytes" "${args[@]}")"
}

# row ROUND PATH WINDOW UPDATE PORT PID...: both directions, one table row.
row() {
    local r=$1 path=$2 w=$3 u=$4 port=$5 up down
    shift 5
    up=$(measure "$port" "" "$@")
    down=$(measure "$port" -R "$@")
    read -r ug ui usched us usplit <<<"$up"
    read -r dg di dsched ds dsplit <<<"$down"
    log "round $r $path window $w update $u: → $ug Gbit/s idle $ui% $us s/GB ($usplit) run/wait/sleep $usched; ← $dg Gbit/s idle $di% $ds s/GB ($dsplit) run/wait/sleep $dsched"
    echo "| $r | $path | $w | $u | $ug | $ui | $us ($usplit) | $usched | $dg | $di | $ds ($dsplit) | $dsched |" >>"$WORK/rows"
}

# connect_cell ROUND BUILD WINDOW DIV: a fresh hub and agent of BUILD.
CELLS=0
connect_cell() {
    local r=$1 build=$2 w=$3 div=$4 u=default name
    local -a args=()
    CELLS=$((CELLS + 1))
    name=w$CELLS
    HUB_BIN=$build/hub/connect-hub
    CLI_BIN=$build/agent/connect
    if [ "$w" != default ]; then
        u=$((w / div))
        args=(--stream-window "$w" --window-update "$u")
        export CONNECT_STREAM_WINDOW=$w CONNECT_WINDOW_UPDATE=$u
    else
        unset CONNECT_STREAM_WINDOW CONNECT_WINDOW_UPDATE
    fi
    rm -f "$WORK/hub.db"*
    unset HUB_PORT TCP_BASE
    hub_init
    hub_start "${args[@]}"
    agent_enroll "$name"
    expose "$name" "127.0.0.1:$IPERF_PORT" --public --protocol tcp --name "$name"
    local label=connect
    [ "$(echo "$BUILDS" | wc -w)" -gt 1 ] && label="connect $(basename "$build")"
    row "$r" "$label" "$w" "$u" "$TUNNEL_PORT" "$HUB_PID" "$EXPOSE_PID"
    stop_pid "$EXPOSE_PID"
    stop_pid "$HUB_PID"
    unset CONNECT_STREAM_WINDOW CONNECT_WINDOW_UPDATE
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
    # sshd forwards in the session process it forked (the newest
    # descendant of the listener; the listener sleeps).
    [ "$SSH" = 1 ] && row "$r" "ssh -L aes128-gcm" - - "$SSH_LOCAL" "$SSH_PID" \
        "$(tree_pids "$SSHD_PID" | sort -n | tail -1)"
    # Odd rounds in the order given, even rounds reversed: drift over a
    # round does not line up with the window.
    order=$WINDOWS
    [ $((r % 2)) = 1 ] || order=$(echo "$WINDOWS" | tr ' ' '\n' | grep . | tac | tr '\n' ' ')
    for b in $BUILDS; do
        for w in $order; do
            if [ "$w" = default ]; then
                connect_cell "$r" "$b" default 4
                continue
            fi
            for d in $DIVS; do connect_cell "$r" "$b" "$w" "$d"; done
        done
    done
done
{
    echo
    echo "iperf3 -t $SECS, 1 stream; $(nproc) cores; load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| round | path | window | update | → Gbit/s | idle % | CPU s/GB (hub+agent) | run/wait/sleep % (hub, agent) | ← Gbit/s | idle % | CPU s/GB (hub+agent) | run/wait/sleep % |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"
    cat "$WORK/rows"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
