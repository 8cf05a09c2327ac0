# Shared set-up for the guide scripts: a throwaway hub on loopback with its
# state in a temporary directory, agents enrolled through the API, and a
# cleanup that stops every process the guide started (by PID) on exit.
#
#   CONNECT_BIN_DIR=D   where connect and connect-hub are, or a build directory
#                       (default: $PATH)
#   GUIDE_KEEP=1        keep the state directory (default: removed on exit)
set -euo pipefail

bin=${CONNECT_BIN_DIR:-}
connect_hub=${bin:+$bin/}connect-hub
connect=${bin:+$bin/}connect
if [ -n "$bin" ] && [ -x "$bin/hub/connect-hub" ]; then # a CMake build directory
    connect_hub=$bin/hub/connect-hub
    connect=$bin/agent/connect
fi
for b in "$connect_hub" "$connect"; do
    command -v "$b" >/dev/null || { echo "guide: $b not found (install Connect or set CONNECT_BIN_DIR)" >&2; exit 1; }
done
for t in curl python3; do
    command -v "$t" >/dev/null || { echo "guide: $t is needed" >&2; exit 1; }
done

state=$(mktemp -d)
chmod 700 "$state"
pids=()
guide_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${GUIDE_KEEP:-0}" = 1 ]; then echo "guide: state kept in $state"; else rm -rf "$state"; fi
}
trap guide_cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m## %s\033[0m\n' "$*"; }
run() { printf '$ %s %s\n' "$(basename "$1")" "${*:2}" >&2; "$@"; }
json() { python3 -c 'import json,sys
v=json.loads(sys.stdin.readline())
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # SECONDS CMD...: polls CMD until it succeeds
    local n=$(($1 * 10))
    shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "guide: timed out waiting for: $*" >&2
    return 1
}

# hub_up: a hub on 127.0.0.1 with its HTTP edge on the next free port; sets
# HUB (its URL), EDGE (the edge port) and ADMIN (the admin token, kept in a
# file readable by you only, never in argv).
hub_up() {
    local port
    port=$(free_port)
    EDGE=$(free_port)
    "$connect_hub" init --db "$state/hub.db" --json >"$state/admin.json"
    ADMIN=$(json token <"$state/admin.json")
    "$connect_hub" serve --db "$state/hub.db" --listen "127.0.0.1:$port" --http-port "$EDGE" \
        >"$state/hub.log" 2>&1 &
    pids+=($!)
    HUB=http://127.0.0.1:$port
    wait_for 10 curl -sf "$HUB/api/v1/health"
}

# admin_api METHOD PATH [JSON]: a REST call with the admin token.
admin_api() {
    local args=(-sf -X "$1" -H @"$state/auth.hdr")
    printf 'Authorization: Bearer %s\n' "$ADMIN" >"$state/auth.hdr"
    [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data "$3")
    curl "${args[@]}" "$HUB$2"
}

# agent_up NAME: registers an agent with the hub and enrolls a config file
# for it at $state/NAME.json (what `connect enroll` does on each machine).
agent_up() {
    local et
    et=$(admin_api POST /api/v1/agents "{\"name\":\"$1\"}" | json enrollToken)
    echo "$et" | "$connect" enroll --hub "$HUB" --token - --config "$state/$1.json" >/dev/null
}

# bg_json OUT CMD...: starts a long-running command that prints one JSON
# line once ready, and waits for that line.
bg_json() {
    local out=$1
    shift
    "$@" --json >"$out" 2>"$out.log" &
    pids+=($!)
    wait_for 20 grep -q '^{' "$out" || { cat "$out.log" >&2; return 1; }
}
