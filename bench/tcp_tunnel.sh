#!/usr/bin/env bash
# End-to-end benchmark of a public TCP tunnel on loopback, side by side with
# reach (a second agent's `connect reach` of the same targets: two agents and
# the hub's relay, end-to-end encrypted between the agents), direct loopback,
# socat -b 131072 and ssh -L (aes128-gcm@openssh.com):
# iperf3 single stream both ways, 64-byte ping-pong at 1 and 50 connections,
# wrk keep-alive c=50 against nginx (1 KiB file), new connections per second,
# PSS per idle connection and CPU seconds per GB. Prints a markdown table.
#
# usage: bench/tcp_tunnel.sh            (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR    build directory (default: build-rel next to bench/)
#   BENCH_SECS=10       length of each timed load
#   BENCH_IDLE=1000     idle connections for the memory measurement
#   BENCH_IDLE_PP=950   idle connections held open during a second c=50
#                       ping-pong (950 + 50 stays under the hub's default
#                       1,024 connections per tunnel); 0 skips it
#   BENCH_RATE_PAR="1 16"  parallel slots for the connection-rate runs
#   BENCH_PATHS="direct connect reach socat ssh" (reach needs connect before it)
#   BENCH_PERF=DIR      also record perf profiles of the hub and the agent
#                       during the Connect runs and write top-function reports
#   BENCH_OUT=FILE      also write the table there
#   BENCH_WINDOW=BYTES  stream window of the hub (serve --stream-window) and the
#                       agents (CONNECT_STREAM_WINDOW); default: theirs (512 KiB)
#   BENCH_WINDOW_UPDATE=BYTES  credit-return threshold of both (--window-update,
#                       CONNECT_WINDOW_UPDATE); default: a quarter of the window
#   (bench/tcp_window.sh runs the iperf3 rows over a list of windows)
#   BENCH_BUSY_POLL=US  the hub and the agents busy-poll (serve --busy-poll,
#                       CONNECT_BUSY_POLL); default: off
#   CONNECT_LOG=info    log level of the hub and agents (the default; the agent
#                       logs one line per stream, at no measurable cost)
#
# Everything listens on 127.0.0.1; every process is started in the
# background by PID and stopped by the EXIT trap of tests/integration/lib.sh;
# every load is bounded in time. Needs iperf3, socat, wrk, nginx, sshd, ssh
# (bench/install-bench-deps.sh).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-info}
SECS=${BENCH_SECS:-10}
IDLE=${BENCH_IDLE:-1000}
IDLE_PP=${BENCH_IDLE_PP:-950}
RATE_PAR=${BENCH_RATE_PAR:-1 16}
PATHS=${BENCH_PATHS:-direct connect reach socat ssh}
PERF_DIR=${BENCH_PERF:-}
PP=$CN_BUILD_DIR/bench/bench_pingpong

for tool in iperf3 socat wrk nginx ssh ssh-keygen /usr/sbin/sshd python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "tcp_tunnel.sh: $tool is missing (bench/install-bench-deps.sh)" >&2
        exit 2
    }
done
[ -x "$PP" ] || {
    echo "tcp_tunnel.sh: $PP is missing: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-rel -j2" >&2
    exit 2
}
if [ -n "$PERF_DIR" ]; then
    command -v perf >/dev/null 2>&1 || { echo "tcp_tunnel.sh: BENCH_PERF needs perf" >&2; exit 2; }
    mkdir -p "$PERF_DIR"
    PERF_DIR=$(cd "$PERF_DIR" && pwd)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"

# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"

# ---- targets --------------------------------------------------------------------

IPERF_PORT=$(free_port)
ECHO_PORT=$(free_port)
HTTP_PORT=$(free_port)

start_targets() {
    bg iperf3-server iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
    bg echo-server "$PP" server "$ECHO_PORT" --host 127.0.0.1 --secs 7200
    nginx_start "$HTTP_PORT"
    wait_port 127.0.0.1 "$IPERF_PORT"
    wait_port 127.0.0.1 "$ECHO_PORT"
    wait_port 127.0.0.1 "$HTTP_PORT"
    curl -sf "http://127.0.0.1:$HTTP_PORT/1k.bin" -o /dev/null || fail "nginx does not serve 1k.bin"
}

# ---- paths ------------------------------------------------------------------------
# PORT[path:target] is where a client connects; FWD_PIDS[path] are the
# forwarding processes whose CPU and memory are counted.
declare -A PORT FWD_PIDS LABEL
LABEL[direct]="direct"
LABEL[connect]="Connect tunnel"
[ -z "${BENCH_BUSY_POLL:-}" ] || LABEL[connect]="Connect tunnel, busy-poll $BENCH_BUSY_POLL us"
LABEL[reach]="Connect reach (E2E)"
LABEL[socat]="socat -b 131072"
LABEL[ssh]="ssh -L aes128-gcm"

setup_direct() {
    PORT[direct:iperf]=$IPERF_PORT
    PORT[direct:echo]=$ECHO_PORT
    PORT[direct:http]=$HTTP_PORT
}

setup_connect() {
    hub_init
    # One client address opens all the idle connections: lift the
    # per-client and per-workspace caps (512 and 1,000 by default).
    local win=()
    [ -z "${BENCH_WINDOW:-}" ] || { win+=(--stream-window "$BENCH_WINDOW"); export CONNECT_STREAM_WINDOW=$BENCH_WINDOW; }
    [ -z "${BENCH_WINDOW_UPDATE:-}" ] || { win+=(--window-update "$BENCH_WINDOW_UPDATE"); export CONNECT_WINDOW_UPDATE=$BENCH_WINDOW_UPDATE; }
    [ -z "${BENCH_BUSY_POLL:-}" ] || { win+=(--busy-poll "$BENCH_BUSY_POLL"); export CONNECT_BUSY_POLL=$BENCH_BUSY_POLL; }
    hub_start --max-conns-per-client 4096 --max-conns-per-workspace 4096 "${win[@]}"
    local t
    for t in iperf echo http; do
        agent_enroll "bench-$t"
    done
    expose bench-iperf "127.0.0.1:$IPERF_PORT" --public --protocol tcp --name bench-iperf
    PORT[connect:iperf]=$TUNNEL_PORT
    AGENT_PID[iperf]=$EXPOSE_PID
    expose bench-echo "127.0.0.1:$ECHO_PORT" --public --protocol tcp --name bench-echo
    PORT[connect:echo]=$TUNNEL_PORT
    AGENT_PID[echo]=$EXPOSE_PID
    expose bench-http "127.0.0.1:$HTTP_PORT" --public --protocol tcp --name bench-http
    PORT[connect:http]=$TUNNEL_PORT
    AGENT_PID[http]=$EXPOSE_PID
    # The hub logs the negotiated cipher at info; otherwise cn_chan's auto
    # choice: AES-256-GCM where libsodium has it (AES-NI and PCLMUL).
    CIPHER=$(grep -o 'connected ([^,)]*' "$WORK/hub.log" 2>/dev/null | head -1 | sed 's/connected (//' || true)
    if [ -z "$CIPHER" ]; then
        if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
            CIPHER="AES-256-GCM (auto)"
        else
            CIPHER="ChaCha20-Poly1305 (auto)"
        fi
    fi
}
declare -A AGENT_PID REACH_PID

# A second agent reaches the three tunnels of setup_connect: its local ports
# are what clients use; hub and both agents forward.
setup_reach() {
    [ -n "${HUB_PID:-}" ] || fail "reach needs the connect path set up first (BENCH_PATHS)"
    agent_enroll bench-reacher
    local t
    for t in iperf echo http; do
        reach bench-reacher "bench-$t"
        REACH_PID[$t]=$REACH_PID
        PORT[reach:$t]=$REACH_PORT
    done
}

setup_socat() {
    local t p
    for t in iperf echo http; do
        p=$(free_port)
        case $t in iperf) dst=$IPERF_PORT ;; echo) dst=$ECHO_PORT ;; http) dst=$HTTP_PORT ;; esac
        bg "socat-$t" socat -b 131072 "TCP4-LISTEN:$p,bind=127.0.0.1,fork,reuseaddr,backlog=4096" \
            "TCP4:127.0.0.1:$dst"
        FWD_PIDS[socat:$t]=$LAST_PID
        wait_port 127.0.0.1 "$p"
        PORT[socat:$t]=$p
    done
}

setup_ssh() {
    local lp_iperf lp_echo lp_http
    lp_iperf=$(free_port)
    lp_echo=$(free_port)
    lp_http=$(free_port)
    ssh_forward_start "$lp_iperf:$IPERF_PORT" "$lp_echo:$ECHO_PORT" "$lp_http:$HTTP_PORT"
    PORT[ssh:iperf]=$lp_iperf
    PORT[ssh:echo]=$lp_echo
    PORT[ssh:http]=$lp_http
}

# The processes that forward for PATH and TARGET (CPU and memory).
fwd_pids() {
    case $1 in
    connect) echo "$HUB_PID ${AGENT_PID[$2]}" ;;
    reach) echo "$HUB_PID ${AGENT_PID[$2]} ${REACH_PID[$2]}" ;;
    socat) echo "${FWD_PIDS[socat:$2]}" ;;
    ssh) echo "$SSH_PID $SSHD_PID" ;;
    *) echo "" ;;
    esac
}

# ---- perf (optional) ------------------------------------------------------------------

PERF_PIDS=()
perf_start() { # perf_start TAG (Connect path only)
    [ -n "$PERF_DIR" ] || return 0
    local p
    PERF_PIDS=()
    for p in hub:$HUB_PID "agent:${AGENT_PID[$2]}"; do
        perf record -q -F 999 -g -p "${p#*:}" -o "$PERF_DIR/$1-${p%%:*}.data" \
            >"$PERF_DIR/$1-${p%%:*}.log" 2>&1 &
        PIDS+=($!)
        PERF_PIDS+=($!)
    done
    sleep 0.5
}
perf_stop() {
    [ -n "$PERF_DIR" ] || return 0
    local p
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PERF_PIDS=()
}
perf_reports() {
    [ -n "$PERF_DIR" ] || return 0
    local f
    for f in "$PERF_DIR"/*.data; do
        [ -f "$f" ] || continue
        perf report -i "$f" --stdio --no-children --sort symbol --percent-limit 0.7 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"${f%.data}.top.txt" || true
        perf report -i "$f" --stdio --children --sort symbol --percent-limit 3 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"${f%.data}.children.txt" || true
    done
}

# ---- measurements --------------------------------------------------------------------

declare -A R # R[metric:path] = table cell

iperf_run() { # iperf_run PATH [-R]
    local path=$1 rev=${2:-} out pids t0 t1 bytes gbps tag
    tag=up
    [ -n "$rev" ] && tag=down
    pids=$(fwd_pids "$path" iperf)
    [ -n "$pids" ] && t0=$(cpu_ticks $pids)
    out=$WORK/iperf-$path-$tag.json
    local j0
    j0=$(machine_jiffies)
    timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "${PORT[$path:iperf]}" -t "$SECS" -J $rev \
        >"$out" 2>&1 || { log "iperf3 $path $tag failed: $(tail -3 "$out")"; R[iperf-$tag:$path]="failed"; return 0; }
    R[idle-$tag:$path]=$(machine_idle_pct "$j0" "$(machine_jiffies)")
    sleep 1 # socat's children exit and are reaped
    read -r bytes gbps < <(python3 -c 'import json,sys
e=json.load(open(sys.argv[1]))["end"]["sum_received"]
print(e["bytes"], "%.2f" % (e["bits_per_second"]/1e9))' "$out")
    R[iperf-$tag:$path]="$gbps"
    if [ -n "$pids" ]; then
        t1=$(cpu_ticks $pids)
        R[cpu-$tag:$path]=$(python3 -c 'import sys
t,c,b=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3])
print("%.2f" % (t/c/(b/1e9)))' "$((t1 - t0))" "$CLK" "$bytes")
    fi
    log "iperf3 $path $tag: $gbps Gbit/s (${R[cpu-$tag:$path]:-} CPU s/GB, machine ${R[idle-$tag:$path]}% idle)"
}

# The forwarding processes of a Connect path, named, for the CPU split:
# the public tunnel's hub and agent; reach's hub, exposing and reaching
# agent (the two agents carry the end-to-end layer, the hub only relays).
split_pids() { # split_pids PATH
    case $1 in
    connect) echo "hub:$HUB_PID agent:${AGENT_PID[iperf]}" ;;
    reach) echo "hub:$HUB_PID exposing:${AGENT_PID[iperf]} reaching:${REACH_PID[iperf]}" ;;
    esac
}

# Connect paths: each forwarding process's CPU separately.
iperf_split() { # iperf_split PATH [-R]
    local path=$1 rev=${2:-} tag=up out bytes gbps np
    local -a names pids t0 t1
    [ -n "$rev" ] && tag=down
    for np in $(split_pids "$path"); do
        names+=("${np%%:*}")
        pids+=("${np#*:}")
        t0+=("$(cpu_ticks "${np#*:}")")
    done
    [ "$path" = connect ] && perf_start "iperf-$tag" iperf
    out=$WORK/iperf-$path-$tag.json
    local j0
    j0=$(machine_jiffies)
    if ! timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "${PORT[$path:iperf]}" -t "$SECS" -J $rev >"$out" 2>&1; then
        [ "$path" = connect ] && perf_stop
        log "iperf3 $path $tag failed: $(tail -3 "$out")"
        R[iperf-$tag:$path]="failed"
        return 0
    fi
    [ "$path" = connect ] && perf_stop
    R[idle-$tag:$path]=$(machine_idle_pct "$j0" "$(machine_jiffies)")
    sleep 1
    for np in "${pids[@]}"; do t1+=("$(cpu_ticks "$np")"); done
    read -r bytes gbps < <(python3 -c 'import json,sys
e=json.load(open(sys.argv[1]))["end"]["sum_received"]
print(e["bytes"], "%.2f" % (e["bits_per_second"]/1e9))' "$out")
    R[iperf-$tag:$path]="$gbps"
    local args=() i
    for i in "${!pids[@]}"; do args+=("${names[$i]}" "$((t1[i] - t0[i]))"); done
    R[cpu-$tag:$path]=$(python3 -c 'import sys
c, b = int(sys.argv[1]), int(sys.argv[2]) / 1e9
parts = list(zip(sys.argv[3::2], (int(x) / c / b for x in sys.argv[4::2])))
print("%.2f (%s)" % (sum(v for _, v in parts), " + ".join("%s %.2f" % p for p in parts)))' \
        "$CLK" "$bytes" "${args[@]}")
    log "iperf3 $path $tag: $gbps Gbit/s (${R[cpu-$tag:$path]} CPU s/GB, machine ${R[idle-$tag:$path]}% idle)"
}

pingpong_run() { # pingpong_run PATH CONNS
    local path=$1 n=$2 line
    [ "$path" = connect ] && perf_start "pingpong-c$n" echo
    line=$(timeout $((SECS + 30)) "$PP" client 127.0.0.1 "${PORT[$path:echo]}" --conns "$n" \
        --secs "$SECS" --warmup 1 2>&1) || true
    [ "$path" = connect ] && perf_stop
    log "ping-pong $path c=$n: $line"
    if [ "$(kv errors <<<"$line")" = 0 ]; then
        R[pp$n:$path]="$(fmt_int "$(kv req_s <<<"$line")") ($(kv p50_us <<<"$line") / $(kv p99_us <<<"$line"))"
    else
        R[pp$n:$path]="$(fmt_int "$(kv req_s <<<"$line")") ($(kv errors <<<"$line") errors)"
    fi
}

wrk_run() { # wrk_run PATH
    local path=$1 out rps p99
    out=$WORK/wrk-$path.txt
    [ "$path" = connect ] && perf_start wrk http
    timeout $((SECS + 30)) wrk -t2 -c50 -d"${SECS}s" --latency \
        "http://127.0.0.1:${PORT[$path:http]}/1k.bin" >"$out" 2>&1 || true
    [ "$path" = connect ] && perf_stop
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' "$out")
    local errs
    errs=$(awk '/Socket errors|Non-2xx/ {print}' "$out" | paste -sd' ')
    log "wrk $path: $rps req/s, p99 $p99 ms ${errs}"
    R[wrk:$path]="$(fmt_int "${rps:-0}") (${p99:-?} ms)${errs:+ ⚠}"
}

connrate_run() { # connrate_run PATH PAR
    local path=$1 par=$2 line
    [ "$path" = connect ] && perf_start "connrate-p$par" echo
    line=$(timeout $((SECS + 30)) "$PP" connrate 127.0.0.1 "${PORT[$path:echo]}" --par "$par" \
        --secs "$SECS" 2>&1) || true
    [ "$path" = connect ] && perf_stop
    log "connrate $path par=$par: $line"
    local e
    e=$(kv errors <<<"$line")
    R[rate$par:$path]="$(fmt_int "$(kv conn_s <<<"$line")") ($(kv p50_us <<<"$line") / $(kv p99_us <<<"$line"))"
    [ "${e:-1}" = 0 ] || R[rate$par:$path]+=" ${e} errors"
    sleep 2 # let TIME_WAIT and forked children settle a little
}

# Idle connections: PSS of the forwarder(s) before and with IDLE connections
# open through PATH (each has done one 64-byte round trip, so every hop is
# established), in KB per connection.
idle_run() { # idle_run PATH
    local path=$1 out pid before after k ready
    local -a pids
    read -r -a pids <<<"$(fwd_pids "$path" echo)"
    [ ${#pids[@]} -gt 0 ] || return 0
    sleep 1
    before=()
    for pid in "${pids[@]}"; do before+=("$(pss_kb "$pid")"); done
    out=$WORK/hold-$path.out
    hold_start 127.0.0.1 "${PORT[$path:echo]}" "$IDLE" 120 "$out"
    local hold=$HOLD_PID
    ready=$HOLD_READY
    sleep 2
    after=()
    for pid in "${pids[@]}"; do after+=("$(pss_kb "$pid")"); done
    stop_pid "$hold"
    log "idle $path: $(cat "$out"); PSS before ${before[*]} KB, with connections ${after[*]} KB"
    [ "${ready:-0}" = "$IDLE" ] || { R[idle:$path]="only ${ready:-0}/$IDLE opened"; return 0; }
    local cell="" i name
    for i in "${!pids[@]}"; do
        case $path:$i in
        connect:0) name=hub ;; connect:1) name=agent ;; ssh:0) name=ssh ;; ssh:1) name=sshd ;;
        reach:0) name=hub ;; reach:1) name=exposing ;; reach:2) name=reaching ;; *) name=$path ;;
        esac
        cell+="${cell:+, }$name $(python3 -c 'import sys; print("%.1f" % ((int(sys.argv[2])-int(sys.argv[1]))/int(sys.argv[3])))' "${before[$i]}" "${after[$i]}" "$IDLE")"
        MEM[$path:$name:before]=${before[$i]}
        MEM[$path:$name:after]=${after[$i]}
    done
    R[idle:$path]="$cell"
    sleep 2
}
declare -A MEM

# The c=50 ping-pong again with IDLE_PP idle connections open through the
# same path: event loops that scan every socket per wake-up slow down.
pingpong_idle_run() { # pingpong_idle_run PATH
    local path=$1 out line hold
    out=$WORK/hold-pp-$path.out
    hold_start 127.0.0.1 "${PORT[$path:echo]}" "$IDLE_PP" $((SECS + 120)) "$out"
    hold=$HOLD_PID
    if [ "$HOLD_READY" != "$IDLE_PP" ]; then
        log "ping-pong $path c=50 +idle: could not open $IDLE_PP idle connections: $(cat "$out")"
        R[pp50idle:$path]="idle open failed"
        stop_pid "$hold"
        return 0
    fi
    [ "$path" = connect ] && perf_start pingpong-c50-idle echo
    line=$(timeout $((SECS + 30)) "$PP" client 127.0.0.1 "${PORT[$path:echo]}" --conns 50 \
        --secs "$SECS" --warmup 1 2>&1) || true
    [ "$path" = connect ] && perf_stop
    stop_pid "$hold"
    log "ping-pong $path c=50 with $IDLE_PP idle: $line"
    R[pp50idle:$path]="$(fmt_int "$(kv req_s <<<"$line")") ($(kv p50_us <<<"$line") / $(kv p99_us <<<"$line"))"
    [ "$(kv errors <<<"$line")" = 0 ] || R[pp50idle:$path]+=" $(kv errors <<<"$line") errors"
    sleep 2
}

# ---- run ----------------------------------------------------------------------------------

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
start_targets
for p in $PATHS; do
    log "setting up $p"
    "setup_$p"
done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Memory first, on freshly started forwarders.
if [[ " $PATHS " == *" connect "* ]]; then
    sleep 1
    IDLE_AGENT_PSS=$(pss_kb "${AGENT_PID[echo]}")
    IDLE_HUB_PSS=$(pss_kb "$HUB_PID")
    IDLE_AGENT_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/${AGENT_PID[echo]}/status")
    log "idle agent (connected, no streams): PSS $IDLE_AGENT_PSS KB, RSS $IDLE_AGENT_RSS KB; hub PSS $IDLE_HUB_PSS KB"
fi
for p in $PATHS; do [ "$p" = direct ] || idle_run "$p"; done

for p in $PATHS; do
    case $p in connect | reach) iperf_split "$p" ;; *) iperf_run "$p" ;; esac
done
for p in $PATHS; do
    case $p in connect | reach) iperf_split "$p" -R ;; *) iperf_run "$p" -R ;; esac
done
for p in $PATHS; do pingpong_run "$p" 1; done
for p in $PATHS; do pingpong_run "$p" 50; done
if [ "$IDLE_PP" -gt 0 ]; then
    for p in $PATHS; do pingpong_idle_run "$p"; done
fi
for p in $PATHS; do wrk_run "$p"; done
for par in $RATE_PAR; do
    for p in $PATHS; do connrate_run "$p" "$par"; done
done
perf_reports

for p in $PATHS; do
    case $p in connect) kill -0 "$HUB_PID" || fail "the hub died" ;; esac
done

# ---- table --------------------------------------------------------------------------------

{
    echo
    echo "Loopback, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), ${SECS} s per load, load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."
    [ -n "${CIPHER:-}" ] && echo "Connect link cipher: $CIPHER; hub and agents at CONNECT_LOG=$CONNECT_LOG."
    echo
    hdr="| measurement |"
    sep="| --- |"
    for p in $PATHS; do hdr+=" ${LABEL[$p]} |"; sep+=" ---: |"; done
    echo "$hdr"
    echo "$sep"
    row() { # row METRIC TITLE
        local line="| $2 |" p
        for p in $PATHS; do line+=" ${R[$1:$p]:-–} |"; done
        echo "$line"
    }
    row iperf-up "iperf3 1 stream, client → server (Gbit/s)"
    row iperf-down "iperf3 1 stream -R, server → client (Gbit/s)"
    row pp1 "ping-pong 64 B, 1 conn: req/s (p50 / p99 µs)"
    row pp50 "ping-pong 64 B, 50 conns: req/s (p50 / p99 µs)"
    [ "$IDLE_PP" -gt 0 ] && row pp50idle "ping-pong 64 B, 50 conns + $IDLE_PP idle open: req/s (p50 / p99 µs)"
    row wrk "wrk -t2 -c50 keep-alive, nginx 1 KiB: req/s (p99)"
    for par in $RATE_PAR; do
        row "rate$par" "new connections/s, $par in parallel (p50 / p99 µs per connect+1 B+close)"
    done
    row cpu-up "forwarder CPU s per GB, iperf3 →"
    row cpu-down "forwarder CPU s per GB, iperf3 -R"
    row idle-up "machine idle % during iperf3 → (both cores)"
    row idle-down "machine idle % during iperf3 -R"
    row idle "PSS per idle open connection (KB), $IDLE connections"
    if [ -n "${IDLE_AGENT_PSS:-}" ]; then
        echo
        echo "| Connect memory (PSS, KB) | no connections | $IDLE idle connections | per connection |"
        echo "| --- | ---: | ---: | ---: |"
        for n in hub agent; do
            b=${MEM[connect:$n:before]:-}
            a=${MEM[connect:$n:after]:-}
            [ -n "$b" ] && [ -n "$a" ] &&
                echo "| $n | $(fmt_int "$b") | $(fmt_int "$a") | $(python3 -c "print('%.1f' % (($a-$b)/$IDLE))") |"
        done
        echo "| one idle agent (connected, no streams) | $(fmt_int "$IDLE_AGENT_PSS") (RSS $(fmt_int "$IDLE_AGENT_RSS")) | | |"
    fi
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
