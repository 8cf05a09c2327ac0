#!/usr/bin/env bash
# What request recording (connect inspect) costs the HTTP edge: wrk -t2 -c50
# keep-alive through a public HTTP tunnel to nginx (1 KiB file), with
# `connect-hub serve --inspect on` and `--inspect off`, RUNS times each,
# alternating. Each run is a fresh hub, agent and nginx on loopback, all
# stopped by PID (tests/integration/lib.sh). Results go to stdout as a
# markdown table; docs/performance.md has the figures.
#
# usage: CN_BUILD_DIR=build-rel bench/http_inspect.sh [SECS] [RUNS]
#        (one mode: bench/http_inspect.sh --one on|off SECS)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != --one ]; then
    SECS=${1:-10}
    RUNS=${2:-3}
    for tool in wrk nginx curl python3; do
        command -v "$tool" >/dev/null || { echo "needs $tool (bench/install-bench-deps.sh)" >&2; exit 1; }
    done
    echo "| run | inspect on: req/s (p99 ms) hub CPU µs/req | inspect off: req/s (p99 ms) hub CPU µs/req |"
    echo "| --- | --- | --- |"
    for i in $(seq 1 "$RUNS"); do
        # The first line is the result; lib.sh's cleanup prints after it.
        on=$(bash "$0" --one on "$SECS")
        off=$(bash "$0" --one off "$SECS")
        on=${on%%$'\n'*}
        off=${off%%$'\n'*}
        echo "| $i | $on | $off |"
    done
    exit 0
fi

MODE=$2
SECS=$3
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$SRC/bench/lib.sh"
export CONNECT_LOG=warn

hub_init
EDGE_PORT=$(free_port)
hub_start --http-port "$EDGE_PORT" --inspect "$MODE" --rate-limit 0
agent_enroll bench

HTTP_PORT=$(free_port)
nginx_start "$HTTP_PORT"
expose bench "127.0.0.1:$HTTP_PORT" --public --protocol http --name web
HOST=web.localhost:$EDGE_PORT
curl -sf -H "Host: $HOST" "http://127.0.0.1:$EDGE_PORT/1k.bin" -o /dev/null ||
    fail "the tunnel does not serve 1k.bin"
cpu() { awk '{print $14 + $15}' "/proc/$HUB_PID/stat"; } # utime + stime, in ticks
cpu0=$(cpu)
timeout $((SECS + 30)) wrk -t2 -c50 -d"${SECS}s" --latency -H "Host: $HOST" \
    "http://127.0.0.1:$EDGE_PORT/1k.bin" >"$WORK/wrk.txt" 2>&1 || true
rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$WORK/wrk.txt")
p99=$(wrk_p99_ms "$WORK/wrk.txt" 1)
cpu1=$(cpu)
reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v n="${reqs:-0}" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "?" }')
errs=$(awk '/Socket errors|Non-2xx/ {print}' "$WORK/wrk.txt" | paste -sd' ')
echo "${rps:-0} (${p99:-?}) ${us}${errs:+ $errs}"
