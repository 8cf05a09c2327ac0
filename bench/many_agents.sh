#!/usr/bin/env bash
# Many agents linked to one hub (bench/many_agents.c does the linking): for
# each N, a fresh hub (`serve --event-loop epoll`, temporary database, free
# ports), one real `connect expose` agent with a public TCP tunnel to an echo
# server, then N agents created through the API (POST /api/v1/agents),
# enrolled and linked by one many_agents process, each with its own key and
# Noise handshake. Measured per N: hub RSS and PSS before and with all N
# linked, hub (and many_agents) CPU at idle, the time to admit all N and the
# admission rate per bucket of 100 (the "no knee" check), and 64-byte
# ping-pong at c=1 and c=50 through the exposed tunnel, with 0 and with N
# other agents linked. Prints a markdown table.
#
# usage: bench/many_agents.sh         (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR       build directory (default: build-rel next to bench/)
#   BENCH_AGENTS="100 1000 5000"  the values of N, one fresh hub each
#   BENCH_RATE=0           links started per second, 0 = as fast as
#                          BENCH_INFLIGHT handshakes in flight allow
#   BENCH_INFLIGHT=12      handshakes in flight at once (the hub admits 16
#                          pending links per client address)
#   BENCH_SECS=10          each ping-pong, and the idle CPU window
#   BENCH_OUT=FILE         also write the table there
#   BENCH_KEEP=DIR         also keep many_agents' output (the admission buckets) there
#   CONNECT_LOG=info       the hub's and the agent's log level
#
# Limits raised for the bench, all explicit below: --max-agents 0 (100 per
# workspace by default), --max-links N+64 (1,024), --conn-rate 0 (600 new
# agent/API connections per address per minute), --rate-limit 0 (API
# requests per token per minute, for the N creations). The fd limit is the
# hard one for every process (the hub itself keeps 8,192).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-info}
AGENTS=${BENCH_AGENTS:-100 1000 5000}
RATE=${BENCH_RATE:-0}
INFLIGHT=${BENCH_INFLIGHT:-12}
SECS=${BENCH_SECS:-10}
PP=$CN_BUILD_DIR/bench/bench_pingpong
MA=$CN_BUILD_DIR/bench/many_agents

for b in "$PP" "$MA" "$CN_BUILD_DIR/hub/connect-hub" "$CN_BUILD_DIR/agent/connect"; do
    [ -x "$b" ] || {
        echo "many_agents.sh: $b is missing: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-rel -j2" >&2
        exit 2
    }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# One N per run of this script (a fresh hub and work directory each): the
# outer run calls itself with BENCH_ONE=N and collects the result lines.
if [ -z "${BENCH_ONE:-}" ]; then
    RES=$(mktemp /tmp/cn-many.XXXXXX)
    trap 'rm -f "$RES"' EXIT
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    for n in $AGENTS; do
        BENCH_ONE=$n BENCH_RESULT=$RES bash "${BASH_SOURCE[0]}" || echo "n=$n failed" >>"$RES"
    done
    # shellcheck source=lib.sh
    source "$SRC/bench/lib.sh"
    {
        echo
        echo "Loopback, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')); load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); links started $( [ "$RATE" = 0 ] && echo "as fast as $INFLIGHT handshakes in flight allow" || echo "at $RATE per second, at most $INFLIGHT in flight"); hub at CONNECT_LOG=$CONNECT_LOG."
        echo
        echo "| agents linked | hub RSS / PSS before (MB) | hub RSS / PSS with all (MB) | per agent (KB RSS / PSS) | hub CPU idle (% of a core) | many_agents CPU idle | admit all (s) | agents/s | 100-agent buckets: first / median / last (ms) | handshake p50 / p99 (ms) | ping-pong c=1, 0 → N agents (req/s) | ping-pong c=50, 0 → N agents (req/s) | links lost |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        while read -r line; do
            case $line in *failed*) echo "| ${line%% *} | failed | | | | | | | | | | | |"; continue ;; esac
            g() { kv "$1" <<<"$line"; }
            echo "| $(fmt_int "$(g n)") | $(g rss0) / $(g pss0) | $(g rss1) / $(g pss1) | $(g per_rss) / $(g per_pss) | $(g cpu_hub) | $(g cpu_ma) | $(g secs) | $(fmt_int "$(g per_s)") | $(g buckets | tr _ ' ') | $(g hs | tr _ ' ') | $(fmt_int "$(g pp1_0)") → $(fmt_int "$(g pp1_n)") | $(fmt_int "$(g pp50_0)") → $(fmt_int "$(g pp50_n)") | $(g dropped) |"
        done <"$RES"
    } | tee ${BENCH_OUT:+"$BENCH_OUT"}
    exit 0
fi

N=$BENCH_ONE
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
pingpong() { # pingpong CONNS: req/s through the exposed tunnel
    local line
    line=$(timeout $((SECS + 30)) "$PP" client 127.0.0.1 "$TUNNEL_PORT" --conns "$1" --secs "$SECS" \
        --warmup 1 2>&1) || true
    log "ping-pong c=$1: $line"
    [ "$(kv errors <<<"$line")" = 0 ] || { echo 0; return 0; }
    kv req_s <<<"$line"
}

log "N=$N: machine $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
ECHO_PORT=$(free_port)
bg echo-server "$PP" server "$ECHO_PORT" --host 127.0.0.1 --secs 7200
wait_port 127.0.0.1 "$ECHO_PORT"
hub_init
hub_start --event-loop epoll --max-agents 0 --max-links $((N + 64)) --conn-rate 0 --rate-limit 0
agent_enroll bench-echo
expose bench-echo "127.0.0.1:$ECHO_PORT" --public --protocol tcp --name bench-echo
sleep 2

RSS0=$(rss_kb "$HUB_PID")
PSS0=$(pss_kb "$HUB_PID")
PP1_0=$(pingpong 1)
PP50_0=$(pingpong 50)

# N agents through the API, their enrollment tokens in a 0600 file that is
# deleted as soon as many_agents read it.
TOKENS=$WORK/tokens
(umask 077 && : >"$TOKENS")
log "creating $N agents through the API"
ADMIN_TOKEN=$ADMIN_TOKEN "$PY" - "$HUB_URL" "$N" "$TOKENS" <<'EOF'
import http.client, json, os, sys, urllib.parse
url, n, path = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tok = os.environ["ADMIN_TOKEN"]
c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
with open(path, "w") as f:
    for i in range(n):
        body = json.dumps({"name": "many-%05d" % i})
        c.request("POST", "/api/v1/agents", body,
                  {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 201:
            sys.exit("create agent %d: %d %s" % (i, r.status, data[:200]))
        f.write(json.loads(data)["enrollToken"] + "\n")
EOF
MA_OUT=$WORK/many_agents.out
"$MA" --port "$HUB_PORT" --tokens "$TOKENS" --rate "$RATE" --inflight "$INFLIGHT" --secs 600 \
    >"$MA_OUT" 2>"$WORK/many_agents.log" &
MA_PID=$!
PIDS+=("$MA_PID")
wait_for 600 "many_agents to enroll" grep -q '^enrolled' "$MA_OUT"
rm -f "$TOKENS"
log "$(grep '^enrolled' "$MA_OUT")"
wait_for 900 "many_agents to link all" grep -q '^ready' "$MA_OUT"
READY=$(grep '^ready' "$MA_OUT")
log "$READY"
[ "$(kv n <<<"$READY")" = "$N" ] || log "only $(kv n <<<"$READY") of $N agents linked: $(tail -3 "$WORK/many_agents.log")"
sleep 3

RSS1=$(rss_kb "$HUB_PID")
PSS1=$(pss_kb "$HUB_PID")
# Idle: N links pinging once a second each way, nothing else.
read -r CPU_HUB CPU_MA < <(cpu_pct "$SECS" "$HUB_PID" "$MA_PID")
PP1_N=$(pingpong 1)
PP50_N=$(pingpong 50)
stop_pid "$MA_PID"
forget_pid "$MA_PID"
kill -0 "$HUB_PID" || fail "the hub died"
DROPPED=$(awk -F= '/^dropped=/ {print $2}' "$MA_OUT")

# Bucket durations (ms): first, median, last.
BUCKETS=$(awk '/^admit / { for (i = 1; i <= NF; i++) if ($i ~ /^ms=/) { sub(/ms=/, "", $i); v[n++] = $i + 0 } }
    END { if (!n) { print "-"; exit }
          for (i = 0; i < n; i++) s[i] = v[i]
          for (i = 1; i < n; i++) { x = s[i]; j = i; while (j > 0 && s[j-1] > x) { s[j] = s[j-1]; j-- } s[j] = x }
          printf "%.0f / %.0f / %.0f", v[0], s[int(n / 2)], v[n-1] }' "$MA_OUT")
[ -z "${BENCH_KEEP:-}" ] || cp "$MA_OUT" "$BENCH_KEEP/many_agents-$N.out"
grep '^admit ' "$MA_OUT" >&2 || true
PER_RSS=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')
PER_PSS=$(awk -v a="$PSS0" -v b="$PSS1" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')
echo "n=$N rss0=$(mb "$RSS0") pss0=$(mb "$PSS0") rss1=$(mb "$RSS1") pss1=$(mb "$PSS1") per_rss=$PER_RSS per_pss=$PER_PSS cpu_hub=$CPU_HUB cpu_ma=$CPU_MA secs=$(kv secs <<<"$READY") per_s=$(kv per_s <<<"$READY") buckets=${BUCKETS// /_} hs=$(kv hs_p50_ms <<<"$READY")_/_$(kv hs_p99_ms <<<"$READY") pp1_0=$PP1_0 pp1_n=$PP1_N pp50_0=$PP50_0 pp50_n=$PP50_N dropped=${DROPPED:-?}" |
    tee -a "${BENCH_RESULT:-/dev/null}" >&2
