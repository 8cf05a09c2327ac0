#!/usr/bin/env bash
# The main job on its embedded defaults: builds Connect, starts a hub on
# SQLite in ./.demo (loopback only), registers and enrolls an agent, exposes a
# small demo web service through a public HTTP tunnel, prints its URL and a
# share link, what to try, and
# stops everything it started on Ctrl-C.
#
#   CN_SKIP_DEPS=1   skip apt-get (packages already installed)
#   CN_BUILD_DIR=D   use binaries already built in D instead of building
#   CN_DEMO_CHECK=1  check the tunnel with curl, then exit (used by the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ -z "${CN_BUILD_DIR:-}" ]; then
    if [ "${CN_SKIP_DEPS:-0}" != 1 ]; then
        bash scripts/install-deps.sh
    fi
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCN_TESTS=OFF >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
    CN_BUILD_DIR=$top/build
fi
hub=$CN_BUILD_DIR/hub/connect-hub
cli=$CN_BUILD_DIR/agent/connect
py=python3
command -v "$py" >/dev/null 2>&1 || py=/usr/bin/python3

demo=${CN_DEMO_DIR:-$top/.demo}
mkdir -p "$demo"
chmod 700 "$demo"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo; echo "stopping..."; exit 0' INT TERM

free_port() {
    "$py" -c 'import socket,sys
p=int(sys.argv[1])
try:
    if not p: raise OSError()
    s=socket.socket(); s.bind(("127.0.0.1",p)); print(p)
except OSError:
    s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}
wait_ok() { # seconds cmd...
    local n=$(($1 * 10))
    shift
    for _ in $(seq 1 $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# 1. The hub: its database, keys and admin token live in .demo/.
if [ ! -f "$demo/hub.db" ]; then
    "$hub" init --db "$demo/hub.db" --json >"$demo/admin.json"
    chmod 600 "$demo/admin.json"
fi
token=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$demo/admin.json")
port=$(free_port 8080)
edge=$(free_port $((port + 1)))
"$hub" serve --db "$demo/hub.db" --listen "127.0.0.1:$port" --http-port "$edge" \
    --tcp-ports 20000-20099 >"$demo/hub.log" 2>&1 &
pids+=($!)
url=http://127.0.0.1:$port
wait_ok 10 curl -sf "$url/api/v1/health" || { tail "$demo/hub.log"; echo "demo: the hub did not start" >&2; exit 1; }

# 2. A demo service: a tiny web page on a private port.
svc=$(free_port 0)
mkdir -p "$demo/site"
echo "<h1>Hello through Connect</h1><p>Served on 127.0.0.1:$svc, reached through the hub.</p>" \
    >"$demo/site/index.html"
(cd "$demo/site" && exec "$py" -m http.server "$svc" --bind 127.0.0.1) >"$demo/site.log" 2>&1 &
pids+=($!)

# 3. An agent: registered through the API, enrolled once (its key pins the hub).
if [ ! -f "$demo/agent.json" ]; then
    et=$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data '{"name":"demo-agent"}' "$url/api/v1/agents" |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["enrollToken"])')
    "$cli" enroll --hub "$url" --token "$et" --config "$demo/agent.json" >/dev/null
fi

# 4. Expose the service through a public HTTP tunnel (NAME.localhost, no DNS
#    needed), and share it: a link with its own rules, for someone else.
"$cli" expose "127.0.0.1:$svc" --public --protocol http --config "$demo/agent.json" --json \
    >"$demo/expose.json" 2>"$demo/expose.log" &
pids+=($!)
wait_ok 15 grep -q '"publicUrl"' "$demo/expose.json" || { cat "$demo/expose.log"; echo "demo: expose failed" >&2; exit 1; }
public=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["publicUrl"])' "$demo/expose.json")
name=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["name"])' "$demo/expose.json")
"$cli" share "$name" --expires 24h --methods GET,HEAD --rate-limit 60 --config "$demo/agent.json" \
    --json >"$demo/share.json" 2>"$demo/share.log" || { cat "$demo/share.log"; echo "demo: share failed" >&2; exit 1; }
share=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["shareUrl"])' "$demo/share.json")

if [ "${CN_DEMO_CHECK:-0}" = 1 ]; then
    curl -sf "$public" | grep -q "Hello through Connect"
    curl -sf "$share" | grep -q "Hello through Connect"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$share")" = 405 ]
    echo "demo: ok (tunnel $name at $public, share link $share)"
    exit 0
fi

cat <<EOF

Connect is running (state in $demo, logs *.log there).

  hub         $url   (admin token in $demo/admin.json)
  public URL  $public -> demo web service 127.0.0.1:$svc
  share link  $share   (GET/HEAD only, 60 requests a minute, 24 h)

Try:
  curl $public
  curl $share
  curl -X POST $share              # 405: the share allows GET and HEAD only
  $cli ls --config $demo/agent.json
  $cli events --config $demo/agent.json
  $cli pause $name --config $demo/agent.json    # then curl again: 503 at once

Ctrl-C stops the hub, the agent and the demo service.
EOF
wait
