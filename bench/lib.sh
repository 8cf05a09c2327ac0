# shellcheck shell=bash
# Shell helpers the end-to-end benchmarks share (bench/tcp_tunnel.sh,
# bench/http_edge.sh, bench/http_inspect.sh, bench/many_agents.sh,
# bench/idle_conns.sh): the checks before a run (tools, build, perf),
# process accounting from /proc, key=value parsing, wrk's figures, number
# formatting, and holding idle connections open. The functions that start
# processes use tests/integration/lib.sh (PIDS, WORK, stop_pid) when called;
# the bench_need* checks do not, so a bench may run them before sourcing
# that file (nothing started yet).

log() { echo "[$(date +%T)] $*" >&2; }
CLK=$(getconf CLK_TCK)
BENCH_NAME=${0##*/}

# Exits 2 naming the first missing tool. usage: bench_need_tools TOOL...
bench_need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "$BENCH_NAME: $tool is missing (bench/install-bench-deps.sh)" >&2
            exit 2
        }
    done
}

# Exits 2 unless FILE, a program of the RelWithDebInfo build, is there.
bench_need_build() {
    [ -x "$1" ] || {
        echo "$BENCH_NAME: $1 is missing: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-rel -j2" >&2
        exit 2
    }
}

# With PERF_DIR set (BENCH_PERF), needs perf, makes the directory and makes
# PERF_DIR absolute; with it empty, does nothing.
bench_need_perf() {
    [ -n "${PERF_DIR:-}" ] || return 0
    command -v perf >/dev/null 2>&1 || { echo "$BENCH_NAME: BENCH_PERF needs perf" >&2; exit 2; }
    mkdir -p "$PERF_DIR"
    PERF_DIR=$(cd "$PERF_DIR" && pwd)
}

# PID and all its descendants.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END { for (p in parent) { x = p; n = 0
                while (x != root && (x in parent) && n++ < 64) x = parent[x]
                if (x == root) print p } }'
}

# Clock ticks (user+system, with reaped children) of the given PIDs and
# their descendants.
cpu_ticks() {
    local total=0 pid s
    for pid in $(for r in "$@"; do tree_pids "$r"; done | sort -u); do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    echo "$total"
}

# PSS in KB of the given PIDs and their descendants.
pss_kb() {
    local total=0 pid v
    for pid in $(for r in "$@"; do tree_pids "$r"; done | sort -u); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# RSS in KB of one PID.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# CPU of each given PID (and its descendants) over the same SECS seconds,
# in percent of one core, space-separated in order. usage: cpu_pct SECS PID...
cpu_pct() {
    local secs=$1 p
    shift
    local -a t0=()
    for p in "$@"; do t0+=("$(cpu_ticks "$p")"); done
    sleep "$secs"
    local i=0 out=""
    for p in "$@"; do
        out+="${out:+ }$(awk -v d=$(($(cpu_ticks "$p") - t0[i])) -v c="$CLK" -v s="$secs" \
            'BEGIN { printf "%.1f", 100 * d / c / s }')"
        i=$((i + 1))
    done
    echo "$out"
}

kv() { # kv KEY < "k=v k=v" line
    tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'
}

# wrk's requests per second in its output FILE (empty when it has none).
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

# wrk's 99th percentile latency in ms, with DECIMALS (default 2) places, from
# its --latency output FILE (empty when it has none). usage: wrk_p99_ms FILE [DECIMALS]
wrk_p99_ms() {
    awk -v d="${2:-2}" '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf ("%." d "f"), v}' "$1"
}

# The middle of the numbers on stdin (space- or line-separated; the lower
# middle of an even count); 0 for none.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

fmt_int() { # 12345.6 -> 12,346
    awk -v v="${1:-0}" 'BEGIN { printf "%.0f", v }' | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}

# Starts `bench_pingpong hold` with N connections to HOST:PORT for SECS
# seconds in the background (output in OUT) and waits until it reports them
# open or gives up; sets HOLD_PID and HOLD_READY (connections opened, 0 when
# it failed). usage: hold_start HOST PORT N SECS OUT
hold_start() {
    local out=$5
    "$PP" hold "$1" "$2" --conns "$3" --secs "$4" >"$out" 2>&1 &
    HOLD_PID=$!
    PIDS+=("$HOLD_PID")
    for _ in $(seq 1 1200); do
        grep -q '^ready' "$out" && break
        kill -0 "$HOLD_PID" 2>/dev/null || break
        sleep 0.1
    done
    HOLD_READY=$(awk '/^ready/ {print $2}' "$out")
    HOLD_READY=${HOLD_READY:-0}
}
