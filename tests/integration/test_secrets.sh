#!/usr/bin/env bash
# User story: a developer's config holds the API token its hub issued.
# Pointing a command at another hub (`--hub`, by mistake or by a hostile
# suggestion) never sends that token there: a listener that records every
# Authorization header sees none. Tokens given on the command line work but
# warn once that `ps` shows them; --token-file and `--token -` keep them out
# of argv.
source "$(dirname "$0")/lib.sh"

hub_init
hub_start
agent_enroll dev
STORED=$(json_get token <"$WORK/dev.json")
[ -n "$STORED" ] || fail "enroll stored no token"

step "a listener that records Authorization headers"
LPORT=$(free_port)
cat >"$WORK/listener.py" <<'EOF'
import http.server, sys
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write("%s %s\n" % (self.path, self.headers.get("Authorization", "-")))
        body = b'{"tunnels":[],"agents":[],"events":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
bg listener "$PY" "$WORK/listener.py" "$LPORT" "$WORK/auth.log"
wait_port 127.0.0.1 "$LPORT"
: >"$WORK/auth.log"

# The user's view: stderr holds only the command's own lines.
cli() { env -u CONNECT_LOG -u CONNECT_TOKEN -u CONNECT_HUB "$CLI_BIN" "$@"; }

step "--hub pointing elsewhere never gets the stored token"
for other in "http://127.0.0.1:$LPORT" "http://localhost:$LPORT"; do
    if cli ls --config "$WORK/dev.json" --hub "$other" >/dev/null 2>"$WORK/other.err"; then
        fail "connect ls --hub $other ran with the stored token"
    fi
    [ "$(wc -l <"$WORK/other.err")" = 1 ] || fail "not one line: $(cat "$WORK/other.err")"
    grep -q "never sent to another hub" "$WORK/other.err" || fail "unclear: $(cat "$WORK/other.err")"
done
if env -u CONNECT_LOG CONNECT_HUB="http://127.0.0.1:$LPORT" "$CLI_BIN" ls --config "$WORK/dev.json" \
    >/dev/null 2>"$WORK/other-env.err"; then
    fail "CONNECT_HUB elsewhere ran with the stored token"
fi
if grep -qF "$STORED" "$WORK/auth.log"; then
    fail "the stored token reached another hub"
fi
[ ! -s "$WORK/auth.log" ] || fail "a request went out without a token to use: $(cat "$WORK/auth.log")"
# The listener works: a token given for it is sent to it, and only that one.
echo "cnt_for_the_listener" >"$WORK/other.token"
cli ls --config "$WORK/dev.json" --hub "http://127.0.0.1:$LPORT" --token-file "$WORK/other.token" \
    >/dev/null 2>"$WORK/listener.err" || fail "ls against the listener: $(cat "$WORK/listener.err")"
grep -q "Bearer cnt_for_the_listener" "$WORK/auth.log" || fail "the listener saw no request"
grep -qF "$STORED" "$WORK/auth.log" && fail "the stored token reached another hub"

step "its own hub still gets it, however its URL is spelt"
cli ls --config "$WORK/dev.json" >/dev/null 2>"$WORK/own.err" || fail "own hub: $(cat "$WORK/own.err")"
cli ls --config "$WORK/dev.json" --hub "$HUB_URL/" >/dev/null 2>"$WORK/own2.err" ||
    fail "own hub with a trailing slash: $(cat "$WORK/own2.err")"

step "tokens out of argv: --token-file and --token -"
printf '%s\n' "$ADMIN_TOKEN" >"$WORK/admin.token"
chmod 600 "$WORK/admin.token"
cli ls --hub "$HUB_URL" --token-file "$WORK/admin.token" >/dev/null 2>"$WORK/tf.err" ||
    fail "--token-file: $(cat "$WORK/tf.err")"
[ ! -s "$WORK/tf.err" ] || fail "--token-file printed: $(cat "$WORK/tf.err")"
cli ls --hub "$HUB_URL" --token - <"$WORK/admin.token" >/dev/null 2>"$WORK/stdin.err" ||
    fail "--token -: $(cat "$WORK/stdin.err")"
[ ! -s "$WORK/stdin.err" ] || fail "--token - printed: $(cat "$WORK/stdin.err")"

step "a token in argv works, with one warning (also given before the command)"
cli --token "$ADMIN_TOKEN" ls --hub "$HUB_URL" >/dev/null 2>"$WORK/argv.err" ||
    fail "--token VALUE: $(cat "$WORK/argv.err")"
[ "$(wc -l <"$WORK/argv.err")" = 1 ] || fail "not one warning: $(cat "$WORK/argv.err")"
grep -q "warning: --token on the command line is visible to other users" "$WORK/argv.err" ||
    fail "no warning: $(cat "$WORK/argv.err")"
grep -qF "$ADMIN_TOKEN" "$WORK/argv.err" && fail "the warning repeats the token"
ET=$(api POST /api/v1/agents '{"name":"argv"}' && echo "$BODY" | json_get enrollToken)
env -u CONNECT_LOG "$CLI_BIN" enroll --hub "$HUB_URL" --token "$ET" --config "$WORK/argv.json" \
    >/dev/null 2>"$WORK/enroll-argv.err" || fail "enroll --token VALUE: $(cat "$WORK/enroll-argv.err")"
grep -q "warning: --token on the command line" "$WORK/enroll-argv.err" || fail "enroll did not warn"

step "events are pruned under the retention (--event-max), at start and on a timer"
for i in 1 2 3 4 5 6; do
    api POST /api/v1/agents "{\"name\":\"filler-$i\"}"
    [ "$HTTP_STATUS" = 201 ] || fail "create agent: $HTTP_STATUS $BODY"
done
count_events() {
    api GET "/api/v1/events?limit=1000"
    echo "$BODY" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))'
}
before=$(count_events)
[ "$before" -gt 6 ] || fail "expected more than 6 events, got $before"
stop_pid "$HUB_PID"
hub_start --event-max 3 --event-retention 30
[ "$(count_events)" = 3 ] || fail "events not capped at 3 (had $before): $(count_events)"
grep -q "events: pruned" "$WORK/hub.log" || fail "the hub did not log its pruning"

echo "PASS test_secrets"
