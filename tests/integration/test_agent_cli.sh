#!/usr/bin/env bash
# User story: an operator starts a hub, registers an agent over the REST API
# and hands its enrollment token to a developer, who runs `connect enroll`
# once and then `connect expose` on a local service; the service answers
# through the hub's public TCP port; the developer lists, inspects, pauses,
# resumes and removes tunnels with the CLI, reads the events, and runs the
# agent as a daemon that reconnects and stops cleanly. Every failure is one
# line on stderr and a non-zero exit; secrets stay out of argv and stdout.
#
# Runs the REAL hub (connect-hub serve); a hub whose `serve --help` fails is a
# broken build and fails the test (it never skips). CN_HUB_BIN overrides the
# hub binary.
set -uo pipefail

build=${CN_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build-asan}
hub=${CN_HUB_BIN:-$build/hub/connect-hub}
cli=$build/agent/connect
[ -x "$cli" ] || { echo "test_agent_cli: $cli not built" >&2; exit 1; }
[ -x "$hub" ] || { echo "test_agent_cli: $hub not built" >&2; exit 1; }
if ! "$hub" serve --help >/dev/null 2>&1; then
  echo "test_agent_cli: FAIL: '$hub serve --help' failed: the hub cannot serve" >&2
  exit 1
fi
py=$(command -v python3 || echo /usr/bin/python3)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cn-agent-cli-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "${fails:-0}" -ne 0 ] && [ -z "${CN_KEEP_TMP:-}" ]; then
    for f in "$tmp"/*.err "$tmp"/*.log; do
      [ -s "$f" ] && { echo "---- $f"; tail -n 20 "$f"; }
    done
  fi
  # The secrets grep (tests/integration/secrets_grep.py, as lib.sh does).
  "$py" "$(dirname "$0")/secrets_grep.py" check "$tmp" test_agent_cli "$build/tests/secrets" \
    "${enroll_token:-}" || secrets_leaked=1
  [ -n "${CN_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
  [ -z "${secrets_leaked:-}" ] || exit 1
}
trap cleanup EXIT

fails=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
# Below the kernel's ephemeral range, as lib.sh's (freeport.py says why).
free_port() { "$py" "$(dirname "$0")/freeport.py" 1 10000 20000; }
free_range() { "$py" "$(dirname "$0")/freeport.py" "$1"; }
# wait_for SECONDS COMMAND...: retries every 0.1 s.
wait_for() {
  local n=$(($1 * 10))
  shift
  for ((i = 0; i < n; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}
one_line() { test "$(wc -l <"$1")" -eq 1; }
quiet() { "$@" >/dev/null; }
# A run that must fail: non-zero, one line on stderr starting "connect:".
fails_cleanly() { # DESCRIPTION COMMAND...
  local d=$1
  shift
  "$@" >"$tmp/neg.out" 2>"$tmp/neg.err"
  local rc=$?
  check "$d: non-zero exit" test "$rc" -ne 0
  check "$d: one line on stderr" one_line "$tmp/neg.err"
  check "$d: says 'connect:'" grep -q '^connect: ' "$tmp/neg.err"
}

# ---- hub --------------------------------------------------------------------
db=$tmp/hub.db
"$hub" init --db "$db" --json >"$tmp/init.json" 2>"$tmp/init.err" || { echo "FAIL hub init"; exit 1; }
admin=$(jq -r .token "$tmp/init.json")
api_port=$(free_port)
tcp_lo=$(free_range 51)
hub_url=http://127.0.0.1:$api_port
"$hub" serve --db "$db" --listen "127.0.0.1:$api_port" --tcp-ports "$tcp_lo-$((tcp_lo + 50))" \
  >"$tmp/hub.log" 2>&1 &
hub_pid=$!
pids+=("$hub_pid")
check "hub answers /api/v1/health" wait_for 20 curl -fsS "$hub_url/api/v1/health"

rest() { # rest METHOD PATH [JSON]
  curl -sS -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$hub_url$2"
}

# ---- enroll -----------------------------------------------------------------
rest POST /api/v1/agents '{"name":"laptop"}' >"$tmp/agent.json"
enroll_token=$(jq -r .enrollToken "$tmp/agent.json")
agent_id=$(jq -r .id "$tmp/agent.json")
hub_key=$(jq -r '.hubPublicKey // empty' "$tmp/agent.json")
check "REST created an agent with an enroll token" test -n "$enroll_token" -a "$enroll_token" != null
key_args=()
case $enroll_token in *.*) ;; *) [ -n "$hub_key" ] && key_args=(--hub-key "$hub_key") ;; esac
cfg=$tmp/cfg/agent.json
(umask 022 && CONNECT_ENROLL_TOKEN="$enroll_token" "$cli" enroll --hub "$hub_url" \
  "${key_args[@]}" --config "$cfg" --json >"$tmp/enroll.out" 2>"$tmp/enroll.err")
rc=$?
check "connect enroll exits 0" test "$rc" -eq 0
check "enroll prints one JSON line" one_line "$tmp/enroll.out"
check "enroll prints the agent id" test "$(jq -r .agentId "$tmp/enroll.out" 2>/dev/null)" = "$agent_id"
check "enroll prints nothing on stderr" test ! -s "$tmp/enroll.err"
check "config is mode 600" test "$(stat -c %a "$cfg" 2>/dev/null)" = 600
check "config dir is mode 700" test "$(stat -c %a "$(dirname "$cfg")" 2>/dev/null)" = 700
check "config holds the agent id" test "$(jq -r .agentId "$cfg" 2>/dev/null)" = "$agent_id"
check "enroll output carries no secret" bash -c "! grep -q -e cne_ -e cnt_ '$tmp/enroll.out'"
check "the agent is enrolled (REST)" wait_for 5 bash -c \
  "curl -fsS -H 'Authorization: Bearer $admin' $hub_url/api/v1/agents/$agent_id | jq -e .enrolled"

fails_cleanly "enroll with a used token" env CONNECT_ENROLL_TOKEN="$enroll_token" "$cli" enroll \
  --hub "$hub_url" "${key_args[@]}" --config "$tmp/other.json" --timeout 5
fails_cleanly "enroll over an existing agent" env CONNECT_ENROLL_TOKEN="$enroll_token" "$cli" \
  enroll --hub "$hub_url" "${key_args[@]}" --config "$cfg"
fails_cleanly "enroll with an API token" env CONNECT_ENROLL_TOKEN="$admin" "$cli" enroll \
  --hub "$hub_url" --config "$tmp/other.json"
fails_cleanly "enroll against nothing" env CONNECT_ENROLL_TOKEN="$enroll_token" "$cli" enroll \
  --hub "http://127.0.0.1:$(free_port)" "${key_args[@]}" --config "$tmp/other.json"
# Classified by the link's close reason (an enum), not by its words.
check "enroll against nothing: says the hub cannot be reached" \
  grep -q "^connect: cannot reach the hub at http://127.0.0.1:" "$tmp/neg.err"

export CONNECT_CONFIG=$cfg
unset CONNECT_HUB CONNECT_TOKEN

# ---- a local service ----------------------------------------------------------
svc_port=$(free_port)
mkdir -p "$tmp/www"
head -c 300000 /dev/urandom | base64 >"$tmp/www/blob.txt"
(cd "$tmp/www" && exec "$py" -m http.server "$svc_port" --bind 127.0.0.1 >"$tmp/www.log" 2>&1) &
pids+=("$!")
check "local service is up" wait_for 10 curl -fsS "http://127.0.0.1:$svc_port/blob.txt" -o /dev/null

# ---- expose -------------------------------------------------------------------
"$cli" expose "$svc_port" --public --protocol tcp --name web --json >"$tmp/expose.out" \
  2>"$tmp/expose.err" &
expose_pid=$!
pids+=("$expose_pid")
check "expose prints the tunnel once active" wait_for 20 test -s "$tmp/expose.out"
check "expose prints one JSON line" one_line "$tmp/expose.out"
tunnel_id=$(jq -r .id "$tmp/expose.out" 2>/dev/null)
hub_port=$(jq -r .hubPort "$tmp/expose.out" 2>/dev/null)
check "the tunnel is active" test "$(jq -r .status "$tmp/expose.out" 2>/dev/null)" = active
check "the tunnel has a hub port" test "$hub_port" -ge "$tcp_lo" 2>/dev/null
check "the tunnel has a connection string" test -n "$(jq -r '.connectionString // empty' "$tmp/expose.out")"

through() { curl -fsS --max-time 5 "http://127.0.0.1:$hub_port/blob.txt" -o "$tmp/got.txt" && cmp -s "$tmp/got.txt" "$tmp/www/blob.txt"; }
check "data flows through the hub port" wait_for 10 through
check "and again (a second connection)" through

# ---- ls / status / pause / resume ---------------------------------------------
"$cli" ls >"$tmp/ls.out" 2>"$tmp/ls.err"
check "ls exits 0" test $? -eq 0
check "ls shows the tunnel" grep -q "web.*$tunnel_id.*active" "$tmp/ls.out"
"$cli" ls --json >"$tmp/ls.json"
check "ls --json is an array with the tunnel" \
  test "$(jq -r --arg id "$tunnel_id" '.[] | select(.id == $id) | .name' "$tmp/ls.json")" = web
check "status by name" bash -c "'$cli' status web | grep -q 'status *active'"
check "status --json by id" test "$("$cli" status "$tunnel_id" --json | jq -r .name)" = web
check "pause exits 0" quiet "$cli" pause web
check "status shows paused" test "$("$cli" status web --json | jq -r .status)" = paused
check "a paused tunnel carries no data" bash -c "! curl -fs --max-time 3 http://127.0.0.1:$hub_port/blob.txt -o /dev/null"
check "resume exits 0" quiet "$cli" resume "$tunnel_id" --json
check "status shows active again" wait_for 5 bash -c "'$cli' status web --json | jq -e '.status == \"active\"'"
check "data flows after resume" wait_for 10 through
fails_cleanly "status of an unknown tunnel" "$cli" status nope
fails_cleanly "ls with a bad token" env CONNECT_TOKEN=cnt_wrong "$cli" ls
# Global options before or after the command, as with git or kubectl: the
# config file is named on the command line, not taken from CONNECT_CONFIG.
check "connect --config F ls --json" test "$(env -u CONNECT_CONFIG HOME="$tmp/nohome" \
  "$cli" --config "$cfg" ls --json | jq -r --arg id "$tunnel_id" '.[] | select(.id == $id) | .name')" = web
check "connect ls --config F --json" test "$(env -u CONNECT_CONFIG HOME="$tmp/nohome" \
  "$cli" ls --config "$cfg" --json | jq -r --arg id "$tunnel_id" '.[] | select(.id == $id) | .name')" = web
check "connect --json --log-level warn status NAME" \
  test "$("$cli" --json --log-level warn status web | jq -r .id)" = "$tunnel_id"
"$cli" --log-level loud ls >/dev/null 2>"$tmp/glob.err"
check "a bad global option is a usage error (exit 2, one line)" \
  test $? -eq 2 -a "$(wc -l <"$tmp/glob.err")" -eq 1
"$cli" --token cnt_wrong ls >/dev/null 2>"$tmp/glob.err"
check "a global --token is used (exit 1)" test $? -eq 1
fails_cleanly "expose a bad target" "$cli" expose '::1:80'
fails_cleanly "unknown command" "$cli" frobnicate

# ---- events -------------------------------------------------------------------
"$cli" events --json >"$tmp/events.json"
check "events has tunnel.created" grep -q '"tunnel.created"' "$tmp/events.json"
check "events --tunnel filters" bash -c \
  "'$cli' events --tunnel web --json | jq -e --arg id '$tunnel_id' 'select(.tunnelId != null and .tunnelId != \$id)' | grep -q . && exit 1 || exit 0"
"$cli" events --follow --json --interval 1 >"$tmp/follow.json" 2>"$tmp/follow.err" &
follow_pid=$!
pids+=("$follow_pid")
sleep 1.5
"$cli" pause web >/dev/null
check "events --follow sees a new event" wait_for 10 grep -q '"to":"paused"' "$tmp/follow.json"
kill -INT "$follow_pid"
wait "$follow_pid"
check "events --follow stops on Ctrl-C with 0" test $? -eq 0
ids=$(jq -r .id "$tmp/follow.json" | sort | uniq -d)
check "events --follow prints each event once" test -z "$ids"
"$cli" resume web >/dev/null

# ---- Ctrl-C deletes the tunnel ------------------------------------------------
kill -INT "$expose_pid"
wait "$expose_pid"
rc=$?
check "expose exits 0 on Ctrl-C (and without leaks under ASan)" test "$rc" -eq 0
check "the tunnel is gone" bash -c "! '$cli' status '$tunnel_id' >/dev/null 2>&1"

# ---- --keep and rm --------------------------------------------------------------
"$cli" expose "127.0.0.1:$svc_port" --protocol tcp --public --name kept --keep --json \
  >"$tmp/keep.out" 2>"$tmp/keep.err" &
keep_pid=$!
pids+=("$keep_pid")
check "expose --keep becomes active" wait_for 20 test -s "$tmp/keep.out"
kill -TERM "$keep_pid"
wait "$keep_pid"
check "expose --keep exits 0 on SIGTERM" test $? -eq 0
check "the kept tunnel is still there" quiet "$cli" status kept
check "rm removes it" quiet "$cli" rm kept
check "rm'd tunnel is gone" bash -c "! '$cli' status kept >/dev/null 2>&1"

# ---- the daemon ---------------------------------------------------------------------
"$cli" agent --json >"$tmp/agent.out" 2>"$tmp/agent.log" &
agent_pid=$!
pids+=("$agent_pid")
check "agent prints one JSON line once connected" wait_for 20 test -s "$tmp/agent.out"
check "agent JSON says connected" test "$(jq -r .status "$tmp/agent.out" 2>/dev/null)" = connected
check "no secret in the agent's argv" bash -c "! grep -qa -e cnt_ -e cne_ /proc/$agent_pid/cmdline"
rest POST /api/v1/tunnels "{\"target\":\"127.0.0.1:$svc_port\",\"agentId\":\"$agent_id\",\"public\":true,\"protocol\":\"tcp\",\"name\":\"daemon\"}" >"$tmp/t2.json"
hub_port=$(jq -r .hubPort "$tmp/t2.json")
check "a tunnel created over REST is served by the running agent" wait_for 15 through
daemon_port=$hub_port
# `connect expose` beside the daemon, same identity: each link serves its own.
"$cli" expose "$svc_port" --public --protocol tcp --name side --json >"$tmp/side.out" \
  2>"$tmp/side.err" &
side_pid=$!
pids+=("$side_pid")
check "expose beside the daemon becomes active" wait_for 20 test -s "$tmp/side.out"
hub_port=$(jq -r .hubPort "$tmp/side.out" 2>/dev/null)
check "data flows through the expose's port" wait_for 10 through
hub_port=$daemon_port
check "and still through the daemon's port" through
kill -INT "$side_pid"
wait "$side_pid"
check "expose beside the daemon exits 0" test $? -eq 0
check "the daemon's tunnel still works after the expose left" wait_for 10 through
# The hub restarts: the agent comes back by itself.
kill -TERM "$hub_pid"
wait "$hub_pid" 2>/dev/null
"$hub" serve --db "$db" --listen "127.0.0.1:$api_port" --tcp-ports "$tcp_lo-$((tcp_lo + 50))" \
  >>"$tmp/hub.log" 2>&1 &
hub_pid=$!
pids+=("$hub_pid")
check "after a hub restart the agent reconnects and serves again" wait_for 40 through
kill -TERM "$agent_pid"
wait "$agent_pid"
check "agent exits 0 on SIGTERM (and without leaks under ASan)" test $? -eq 0
check "agent log names the agent" grep -q "agent ${agent_id:0:8}" "$tmp/agent.log"

# ---- config safety ----------------------------------------------------------------
chmod 644 "$cfg"
fails_cleanly "a config readable by others" "$cli" ls
check "... and says chmod 600" grep -q "chmod 600" "$tmp/neg.err"
chmod 600 "$cfg"

if [ "$fails" -ne 0 ]; then
  echo "test_agent_cli: $fails check(s) failed" >&2
  exit 1
fi
echo "test_agent_cli: all checks passed"
