# shellcheck shell=bash
# Shell helpers the end-to-end benchmarks share (bench/tcp_tunnel.sh,
# bench/many_agents.sh, bench/idle_conns.sh): process accounting from /proc,
# key=value parsing, number formatting, and holding idle connections open.
# Source it after tests/integration/lib.sh (PIDS, WORK, stop_pid).

log() { echo "[$(date +%T)] $*" >&2; }
CLK=$(getconf CLK_TCK)

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
