#!/usr/bin/env bash
# HTTP edge benchmark on loopback, side by side in one run: wrk against a
# fast target (nginx serving a 1 KiB file) directly, through nginx as a
# reverse proxy, through a public HTTP tunnel of Connect (hub edge, agent),
# and through a share of that tunnel with its policy on (methods, paths,
# per-minute limit, checked on every request). Two loads: keep-alive
# (wrk -t2 -c50) and a new connection per request (the same with
# "Connection: close"). Each load runs BENCH_RUNS times per path, the paths
# interleaved run by run, and the table shows the median req/s with every
# run and the median p99.
#
# usage: bench/http_edge.sh            (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR   build directory (default: build-rel next to bench/)
#   BENCH_SECS=10      length of each wrk run
#   BENCH_RUNS=3       runs per path and load
#   BENCH_PERF=DIR     also record perf profiles of the hub and the agent during
#                      the tunnel and share keep-alive runs (top functions)
#   BENCH_OUT=FILE     also write the table there
#   CONNECT_LOG=warn   log level of hub and agent (default warn: the edge logs
#                      nothing per request at warn)
#   BENCH_HUB_ARGS=... extra `connect-hub serve` options, e.g. "--http-pool 0"
#                      (no upstream keep-alive pool: a target connection per
#                      request, the edge before the pool)
#   BENCH_PATHS=...    the paths to measure (default "direct nginx tunnel share")
#   BENCH_MODES=keep   the loads to run (default "keep close"); a load not run
#                      shows – in the table
#   BENCH_PERF_MODE=keep  which load BENCH_PERF profiles (keep or close)
#   BENCH_PERF_PATHS="tunnel share"  which paths BENCH_PERF profiles
#   BENCH_PERF_CG="--call-graph dwarf"  perf record's call-graph option (default -g)
#   BENCH_PERF_ALL=1   profile the whole machine (perf record -a), not only
#                      the hub and the agent
#   BENCH_FIFO=1       run wrk, the hub, the agent and the nginx workers
#                      SCHED_FIFO (chrt -f 1; root): on a machine shared with
#                      other work, the nearest to a quiet one, where the hub's
#                      loop is busy on every turn (docs/performance.md, "wrk's
#                      socket errors: cause")
#
# Beside req/s, each cell gives the CPU time per request of the forwarding
# processes (from /proc/PID/stat before and after the run): the nginx
# proxy's worker, or the hub and the agent; and of the target nginx's
# worker. On two cores shared with wrk, a path's rate follows its CPU per
# request as much as its latency. Below the table, a line per tunnel or
# share load gives every run's figure and the hub's part of it.
#
# The share's limit: the API allows at most 1,000 requests a minute per
# share, far below what wrk sends, so each share run gets BENCH_SHARES new
# shares (default 1,000) of the tunnel, each with GET only, paths /1k.bin
# and /x/*, and 1,000 a minute, and a wrk script sends each request to the
# next share (Host share-TOKEN.localhost). Every request is checked against
# its share's full policy; none may be refused (the table flags non-2xx
# answers): a run must stay under BENCH_SHARES x 1,000 requests (1,000,000
# for the default: 10 s at 100,000 a second). New shares per run, because
# a share's limit counts a minute: runs that reused one set
# (BENCH_SAME_SHARES=1, as before) went over the limit after a few runs and
# got 429s.
#
# Everything listens on 127.0.0.1; every process is started in the
# background by PID and stopped by the EXIT trap of tests/integration/lib.sh.
# Needs wrk and nginx (bench/install-bench-deps.sh).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CN_SOURCE_DIR=$SRC
export CN_BUILD_DIR=${CN_BUILD_DIR:-$SRC/build-rel}
export CONNECT_LOG=${CONNECT_LOG:-warn}
SECS=${BENCH_SECS:-10}
RUNS=${BENCH_RUNS:-3}
NSHARES=${BENCH_SHARES:-1000}
PERF_DIR=${BENCH_PERF:-}

# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"
bench_need_tools wrk nginx python3 curl
bench_need_build "$CN_BUILD_DIR/hub/connect-hub"
bench_need_perf
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- nginx: the target, and a reverse proxy in front of it --------------------------
TARGET_PORT=$(free_port)
PROXY_PORT=$(free_port)
nginx_serve target "server { listen 127.0.0.1:$TARGET_PORT; root $WORK/target/www; }"
# The usual reverse-proxy set-up: HTTP/1.1 to the upstream with a pool of
# kept-alive connections, X-Forwarded-* headers as the edge sets them.
nginx_serve proxy "upstream target { server 127.0.0.1:$TARGET_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://target;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }"
wait_port 127.0.0.1 "$TARGET_PORT"
wait_port 127.0.0.1 "$PROXY_PORT"
curl -sf "http://127.0.0.1:$PROXY_PORT/1k.bin" -o /dev/null || fail "the nginx proxy does not serve 1k.bin"

# ---- Connect: a hub, an agent exposing the target, shares -----------------------------
hub_init
EDGE_PORT=$(free_port)
# shellcheck disable=SC2086 # BENCH_HUB_ARGS is a list of words
hub_start --http-port "$EDGE_PORT" --rate-limit 0 ${BENCH_HUB_ARGS:-}
agent_enroll bench
expose bench "127.0.0.1:$TARGET_PORT" --public --protocol http --name web
WEB_ID=$TUNNEL_ID
AGENT_PID=$EXPOSE_PID
curl -sf -H "Host: web.localhost" "http://127.0.0.1:$EDGE_PORT/1k.bin" -o /dev/null ||
    fail "the tunnel does not serve 1k.bin"
# make_shares FILE: NSHARES new shares of the tunnel, their hosts in FILE.
make_shares() {
    "$PY" - "$HUB_URL" "$ADMIN_TOKEN" "$WEB_ID" "$NSHARES" >"$1" <<'EOF'
import http.client, json, sys, urllib.parse
url, token, tid, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
body = json.dumps({"allowedMethods": ["GET"], "allowedPaths": ["/1k.bin", "/x/*"],
                   "rateLimitPerMinute": 1000, "expiresIn": "1h"})
for i in range(n):
    c.request("POST", f"/api/v1/tunnels/{tid}/shares", body=body,
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    d = json.loads(r.read())
    assert r.status == 201, (r.status, d)
    print(urllib.parse.urlparse(d["shareUrl"]).hostname)
EOF
}
log "creating $NSHARES shares"
make_shares "$WORK/share-hosts.txt"
FIRST_SHARE=$(head -1 "$WORK/share-hosts.txt")
curl -sf -H "Host: $FIRST_SHARE" "http://127.0.0.1:$EDGE_PORT/1k.bin" -o /dev/null ||
    fail "a share does not serve 1k.bin"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Host: $FIRST_SHARE" \
    "http://127.0.0.1:$EDGE_PORT/1k.bin")" = 405 ] || fail "the share's policy is not on"

# The wrk script: HOSTS (one per line) round-robin in the Host header, from
# a random start per thread; CLOSE=1 adds "Connection: close".
cat >"$WORK/hosts.lua" <<'EOF'
local hosts, i = {}, 0
local close = os.getenv("CLOSE") == "1"
for line in io.lines(os.getenv("HOSTS")) do hosts[#hosts + 1] = line end
function init(args) i = math.random(#hosts) end
function request()
    i = i % #hosts + 1
    local h = { ["Host"] = hosts[i] }
    if close then h["Connection"] = "close" end
    return wrk.format("GET", "/1k.bin", h)
end
EOF
echo web.localhost >"$WORK/tunnel-hosts.txt"
echo 127.0.0.1 >"$WORK/plain-hosts.txt"

declare -A URL HOSTS R P99 NON2XX
URL[direct]=http://127.0.0.1:$TARGET_PORT
URL[nginx]=http://127.0.0.1:$PROXY_PORT
URL[tunnel]=http://127.0.0.1:$EDGE_PORT
URL[share]=http://127.0.0.1:$EDGE_PORT
HOSTS[direct]=$WORK/plain-hosts.txt
HOSTS[nginx]=$WORK/plain-hosts.txt
HOSTS[tunnel]=$WORK/tunnel-hosts.txt
HOSTS[share]=$WORK/share-hosts.txt
PATHS=${BENCH_PATHS:-direct nginx tunnel share}
declare -A LABEL=([direct]="direct to nginx" [nginx]="nginx reverse proxy"
    [tunnel]="Connect public HTTP tunnel" [share]="Connect share (policy on)")

PERF_PID=
# CPU accounting (bench/lib.sh cpu_ticks): the nginx workers (the masters
# only wait), the hub and the agent, in µs per request.
PROXY_WORKER=$(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | head -1)
TARGET_WORKER=$(pgrep -P "$(cat "$WORK/target/nginx.pid")" | head -1)
[ -n "$PROXY_WORKER" ] && [ -n "$TARGET_WORKER" ] || fail "no nginx worker found"
WRK_PREFIX=()
if [ -n "${BENCH_FIFO:-}" ]; then
    for pid in "$HUB_PID" "$AGENT_PID" "$PROXY_WORKER" "$TARGET_WORKER"; do
        chrt -f -p 1 "$pid" >/dev/null || fail "chrt -f -p 1 $pid (BENCH_FIFO needs root)"
    done
    WRK_PREFIX=(chrt -f 1)
fi
# The machine's idle and busy CPU ticks (/proc/stat: idle + iowait, and the
# rest), read around each run: on two saturated cores a path's rate follows
# its CPU per request only while nothing waits with a core idle.
cpu_idle_busy() { awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# The machine's TCP resets sent (/proc/net/snmp), read around each run: wrk's
# socket errors come with resets, and which side sent them says why.
tcp_out_rsts() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "OutRsts") c = i; h = 1 } else print $c }' /proc/net/snmp; }
us_per() { awk -v t="$1" -v n="$2" -v hz="$CLK" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }'; }
declare -A FWUS TGUS HUBUS
perf_start() { # perf_start NAME: the hub and the agent (BENCH_PERF_ALL: everything)
    [ -n "$PERF_DIR" ] || return 0
    local who=(-p "$HUB_PID,$AGENT_PID")
    [ -n "${BENCH_PERF_ALL:-}" ] && who=(-a)
    # shellcheck disable=SC2086 # BENCH_PERF_CG is a list of words
    perf record -q ${BENCH_PERF_CG:--g} -o "$PERF_DIR/$1.data" "${who[@]}" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.5
}
perf_stop() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
}

# wrk_run PATH MODE RUN: one run; MODE keep or close.
wrk_run() {
    local path=$1 mode=$2 run=$3 out rps p99 bad
    out=$WORK/wrk-$path-$mode-$run.txt
    if [ "$path" = share ] && [ -z "${BENCH_SAME_SHARES:-}" ]; then
        # Shares no earlier run used: a share's limit counts a minute.
        HOSTS[share]=$WORK/share-hosts-$mode-$run.txt
        make_shares "${HOSTS[share]}"
    fi
    [ "$run" = 1 ] && [ "$mode" = "${BENCH_PERF_MODE:-keep}" ] &&
        [[ " ${BENCH_PERF_PATHS:-tunnel share} " == *" $path "* ]] && perf_start "$path"
    local fw=() q
    case $path in
    nginx) fw=("$PROXY_WORKER") ;;
    tunnel | share) fw=("$HUB_PID" "$AGENT_PID") ;;
    esac
    local fw0=$(cpu_ticks "${fw[@]}") tg0=$(cpu_ticks "$TARGET_WORKER") hub0=$(cpu_ticks "$HUB_PID")
    local rst0=$(tcp_out_rsts) ib0 ib1
    ib0=$(cpu_idle_busy)
    HOSTS=${HOSTS[$path]} CLOSE=$([ "$mode" = close ] && echo 1 || echo 0) \
        timeout $((SECS + 30)) "${WRK_PREFIX[@]}" wrk -t2 -c50 -d"${SECS}s" --latency -s "$WORK/hosts.lua" \
        "${URL[$path]}/1k.bin" >"$out" 2>&1 || true
    local fw1=$(cpu_ticks "${fw[@]}") tg1=$(cpu_ticks "$TARGET_WORKER") hub1=$(cpu_ticks "$HUB_PID")
    local rsts=$(($(tcp_out_rsts) - rst0))
    ib1=$(cpu_idle_busy)
    local idle=$(awk -v a="$ib0" -v b="$ib1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        i = y[1] - x[1]; u = y[2] - x[2]; printf "%.0f", (i + u > 0 ? 100 * i / (i + u) : 0) }')
    perf_stop
    local n=$(awk '/requests in/ {print $1}' "$out")
    FWUS[$path:$mode]+="$(us_per "$((fw1 - fw0))" "${n:-0}") "
    TGUS[$path:$mode]+="$(us_per "$((tg1 - tg0))" "${n:-0}") "
    HUBUS[$path:$mode]+="$(us_per "$((hub1 - hub0))" "${n:-0}") "
    rps=$(wrk_rps "$out")
    p99=$(wrk_p99_ms "$out")
    # wrk's "Socket errors: connect N, read N, write N, timeout N", kept
    # whole (as sock:connect N/read N/...): which kind says where to look.
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}
        /Socket errors/ {sub(/.*Socket errors: */, ""); gsub(/, /, "/"); print "sock:" $0}' "$out" | paste -sd' ')
    log "wrk $path $mode run $run: ${rps:-?} req/s, p99 ${p99:-?} ms, $(us_per "$((fw1 - fw0))" "${n:-0}") µs/req, machine idle $idle%, $rsts TCP resets on the machine ${bad}"
    R[$path:$mode]+="${rps:-0} "
    P99[$path:$mode]+="${p99:-0} "
    [ -n "$bad" ] && NON2XX[$path:$mode]+="$bad "
    return 0
}

MODES=${BENCH_MODES:-keep close}
for mode in $MODES; do
    for run in $(seq 1 "$RUNS"); do
        for p in $PATHS; do wrk_run "$p" "$mode" "$run"; done
    done
done
kill -0 "$HUB_PID" || fail "the hub died"

if [ -n "$PERF_DIR" ]; then
    for p in tunnel share; do
        [ -f "$PERF_DIR/$p.data" ] || continue
        perf report -i "$PERF_DIR/$p.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null |
            grep -v '^#' | grep '%' | head -40 >"$PERF_DIR/$p-top.txt" || true
    done
fi

# ---- table --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "–"), a / b }'; }
{
    echo
    echo "Loopback, $(nproc) cores${BENCH_HUB_ARGS:+, hub with $BENCH_HUB_ARGS} ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), wrk -t2 -c50 -d${SECS}s, $RUNS runs per cell interleaved, load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); hub and agent at CONNECT_LOG=$CONNECT_LOG."
    echo
    echo "| path | keep-alive req/s: median (runs) | p99 ms | CPU µs/req: forwarder, target | new connection per request req/s: median (runs) | p99 ms | CPU µs/req: forwarder, target |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in $PATHS; do
        line="| ${LABEL[$p]} |"
        for mode in keep close; do
            if [ -z "${R[$p:$mode]:-}" ]; then # not in BENCH_MODES
                line+=" – | – | – |"
                continue
            fi
            m=$(median <<<"${R[$p:$mode]}")
            runs=$(for v in ${R[$p:$mode]}; do fmt_int "$v" && echo; done | paste -sd'/')
            fwus=$([ "$p" = direct ] && echo – || median <<<"${FWUS[$p:$mode]}")
            line+=" **$(fmt_int "$m")** ($runs)${NON2XX[$p:$mode]:+ ⚠ non-2xx/errors: ${NON2XX[$p:$mode]}} | $(median <<<"${P99[$p:$mode]}") | $fwus, $(median <<<"${TGUS[$p:$mode]}") |"
        done
        echo "$line"
    done
    echo
    for mode in $MODES; do
        for p in tunnel share; do
            [ -n "${HUBUS[$p:$mode]:-}" ] || continue
            echo "- ${LABEL[$p]}, $([ "$mode" = keep ] && echo keep-alive || echo "new connections"): CPU µs/req of the hub and the agent by run ${FWUS[$p:$mode]% }, of the hub alone ${HUBUS[$p:$mode]% } (median $(median <<<"${HUBUS[$p:$mode]}"))"
        done
    done
    for mode in keep close; do
        [ -n "${R[tunnel:$mode]:-}" ] || continue
        t=$(median <<<"${R[tunnel:$mode]}")
        s=$(median <<<"${R[share:$mode]:-}")
        n=$(median <<<"${R[nginx:$mode]:-}")
        echo "- $([ "$mode" = keep ] && echo keep-alive || echo "new connections"):${R[share:$mode]:+ share / tunnel = $(ratio "$s" "$t") (goal ≥ 0.90)}${R[nginx:$mode]:+, tunnel / nginx proxy = $(ratio "$t" "$n") (goal ≥ 0.80)}"
    done
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
