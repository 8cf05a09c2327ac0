#!/usr/bin/env bash
# User story: a workspace admin registers a webhook; a real receiver checks
# each delivery's HMAC signature with the secret shown once; while the
# receiver is down the hub retries with growing delays, and delivers once it
# is back; a delivery pending when the hub is killed with -9 arrives after
# the restart; a receiver that always fails gets its webhook disabled (with
# a webhook.disabled event), and re-enabling it resets it; share events
# reach a share.* webhook like the others.
source "$(dirname "$0")/lib.sh"

RECEIVER=$SRC/tests/integration/webhook_receiver.py

hub_init
HUB_PORT=$(free_port)
# Fast retries so the test sees several; never disabled in this phase.
hub_start --webhook-retry-base 200 --webhook-disable-after 1000

RPORT=$(free_port)
receiver_start() { # receiver_start NAME PORT SECRET_FILE LOG [mode]
    bg "$1" "$PY" "$RECEIVER" --port "$2" --secret-file "$3" --log "$4" --mode "${5:-ok}"
    RECEIVER_PID=$LAST_PID
    wait_port 127.0.0.1 "$2"
}
# received LOG TYPE [N]: at least N (default 1) verified deliveries of
# events of TYPE are in LOG.
received() {
    [ -f "$1" ] && "$PY" - "$1" "$2" "${3:-1}" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = sum(1 for r in rows if r["valid"] and r["type"] == sys.argv[2] and r["status"] == 204)
sys.exit(0 if n >= int(sys.argv[3]) else 1)
EOF
}
# delivery FIELD [index]: a field of the newest delivery of webhook $WH.
delivery() {
    api GET "/api/v1/webhooks/$WH/deliveries"
    echo "$BODY" | json_get "deliveries.${2:-0}.$1"
}
webhook() {
    api GET "/api/v1/webhooks/$1"
    echo "$BODY" | json_get "$2"
}

step "bad webhooks are refused with the field named"
for body in '{"url":"ftp://127.0.0.1/x"}' '{"url":"http://user:pw@127.0.0.1/"}' \
    '{"url":"http://127.0.0.1/#f"}' '{"url":"http://127.0.0.1/","events":["nope"]}' \
    '{"url":"http://127.0.0.1/","events":[]}' '{"events":["*"]}'; do
    api POST /api/v1/webhooks "$body"
    [ "$HTTP_STATUS" = 422 ] || fail "accepted $body: $HTTP_STATUS $BODY"
done
api POST "/api/v1/workspaces/$WS_ID/tokens" '{"name":"dev","scope":"member"}'
MEMBER=$(echo "$BODY" | json_get token)
TOKEN=$MEMBER api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$RPORT/\"}"
[ "$HTTP_STATUS" = 403 ] || fail "a member created a webhook: $HTTP_STATUS"

step "a webhook's secret is shown once; a real receiver verifies every delivery"
api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$RPORT/hook?src=connect\",\"events\":[\"agent.*\",\"webhook.*\"]}"
[ "$HTTP_STATUS" = 201 ] || fail "create webhook: $HTTP_STATUS $BODY"
WH=$(echo "$BODY" | json_get id)
echo "$BODY" | json_get secret >"$WORK/secret"
grep -q '^whsec_' "$WORK/secret" || fail "no secret in the answer"
api GET "/api/v1/webhooks/$WH"
case "$BODY" in *whsec_*) fail "the secret is shown again: $BODY" ;; esac
api GET /api/v1/webhooks
[ "$(echo "$BODY" | json_get webhooks.0.id)" = "$WH" ] || fail "list: $BODY"
receiver_start recv "$RPORT" "$WORK/secret" "$WORK/recv.jsonl"
R1=$RECEIVER_PID
api POST /api/v1/agents '{"name":"first"}'
wait_for 10 "agent.created delivered and verified" received "$WORK/recv.jsonl" agent.created
[ "$(delivery status)" = delivered ] || fail "delivery log: $BODY"
[ "$(delivery responseStatus)" = 204 ] || fail "delivery log status: $BODY"
"$PY" - "$WORK/recv.jsonl" "$WH" <<'EOF' || fail "headers of the delivery: $(cat "$WORK/recv.jsonl")"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["path"] == "/hook?src=connect" and r["webhook"] == sys.argv[2]
assert r["header_event"] == r["type"] == "agent.created" and r["delivery"] and r["eventId"]
EOF
# The receiver's check can fail: a forged or stale signature is refused.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Connect-Signature: t=1700000000,v1=00' \
    --data '{"type":"agent.created"}' "http://127.0.0.1:$RPORT/hook")
[ "$code" = 401 ] || fail "the receiver accepted a forged signature ($code)"
good=$("$PY" -c '
import hashlib, hmac, sys, time
t = str(int(time.time()) - 3600); body = b"{}"
print("t=%s,v1=%s" % (t, hmac.new(open(sys.argv[1]).read().strip().encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()))' "$WORK/secret")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Connect-Signature: $good" --data '{}' \
    "http://127.0.0.1:$RPORT/hook")
[ "$code" = 401 ] || fail "the receiver accepted a signature an hour old ($code)"

step "receiver down: retries with growing delays, then delivered once it is back"
stop_pid "$R1"
api POST /api/v1/agents '{"name":"second"}'
attempts_at_least() { [ "$(delivery attempts)" -ge "$1" ]; }
wait_for 20 "three failed attempts" attempts_at_least 3
[ "$(delivery status)" = pending ] || fail "not pending while the receiver is down: $BODY"
[ -n "$(delivery error)" ] || fail "no error recorded: $BODY"
[ "$(webhook "$WH" consecutiveFailures)" -ge 3 ] || fail "failures not counted: $BODY"
[ -n "$(webhook "$WH" nextAttemptAt)" ] || fail "no next attempt time: $BODY"
# The delays grow: the gaps between the hub's logged retries are not flat.
grep "webhook $WH: delivery" "$WORK/hub.log" | grep -o 'retry in [0-9]*' | awk '{print $3}' >"$WORK/delays"
"$PY" - "$WORK/delays" <<'EOF' || fail "retry delays do not grow: $(tr '\n' ' ' <"$WORK/delays")"
import sys
d = [int(x) for x in open(sys.argv[1])]
# base 200 ms, equal jitter: failure n waits within [100*2^(n-1), 200*2^(n-1)] ms
assert len(d) >= 3 and all(100 * 2**i <= v <= 200 * 2**i for i, v in enumerate(d[:6])), d
EOF
receiver_start recv2 "$RPORT" "$WORK/secret" "$WORK/recv.jsonl"
R2=$RECEIVER_PID
wait_for 20 "delivered after the receiver came back" received "$WORK/recv.jsonl" agent.created 2
[ "$(delivery status)" = delivered ] || fail "delivery log after recovery: $BODY"
[ "$(webhook "$WH" consecutiveFailures)" = 0 ] || fail "failures not reset: $BODY"

step "a delivery pending when the hub is killed -9 is delivered after the restart"
stop_pid "$R2"
api POST /api/v1/agents '{"name":"third"}'
wait_for 10 "a failed attempt for the third agent" attempts_at_least 1
[ "$(delivery status)" = pending ] || fail "not pending before the kill: $BODY"
kill -9 "$HUB_PID"
wait "$HUB_PID" 2>/dev/null || true
receiver_start recv3 "$RPORT" "$WORK/secret" "$WORK/recv.jsonl"
hub_start --webhook-retry-base 200 --webhook-disable-after 3
wait_for 20 "the pending delivery arrived after the restart" \
    received "$WORK/recv.jsonl" agent.created 3
[ "$(delivery status)" = delivered ] || fail "delivery log after the restart: $BODY"
"$PY" - "$WORK/recv.jsonl" <<'EOF' || fail "a delivery did not verify: $(cat "$WORK/recv.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Every request from the hub verified (the forged ones above had no
# X-Connect-Delivery header).
assert all(r["valid"] for r in rows if r["delivery"]), rows
EOF

step "share events reach webhooks like the others (share.* filter)"
SPORT=$(free_port)
api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$SPORT/\",\"events\":[\"share.*\"]}"
[ "$HTTP_STATUS" = 201 ] || fail "create share webhook: $HTTP_STATUS $BODY"
WS_HOOK=$(echo "$BODY" | json_get id)
echo "$BODY" | json_get secret >"$WORK/secret-share"
receiver_start recvshare "$SPORT" "$WORK/secret-share" "$WORK/share.jsonl"
RS=$RECEIVER_PID
api POST /api/v1/agents '{"name":"sharer"}'
SAGENT=$(echo "$BODY" | json_get id)
api POST /api/v1/tunnels "{\"agentId\":\"$SAGENT\",\"target\":\"127.0.0.1:9\",\"protocol\":\"http\",\"public\":true,\"name\":\"shared\"}"
[ "$HTTP_STATUS" = 201 ] || fail "create http tunnel: $HTTP_STATUS $BODY"
STUN=$(echo "$BODY" | json_get id)
api POST "/api/v1/tunnels/$STUN/shares" '{"name":"for-a-tester"}'
[ "$HTTP_STATUS" = 201 ] || fail "create share: $HTTP_STATUS $BODY"
SHARE=$(echo "$BODY" | json_get id)
api DELETE "/api/v1/shares/$SHARE"
[ "$HTTP_STATUS" = 200 ] || fail "revoke share: $HTTP_STATUS $BODY"
wait_for 10 "share.created delivered and verified" received "$WORK/share.jsonl" share.created
wait_for 10 "share.revoked delivered and verified" received "$WORK/share.jsonl" share.revoked
"$PY" - "$WORK/share.jsonl" "$SHARE" "$STUN" <<'PYEOF' || fail "share deliveries: $(cat "$WORK/share.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# The filter held (no agent.* or tunnel.* here), and each names its share.
assert rows and all(r["type"].startswith("share.") for r in rows), rows
assert [r["type"] for r in rows] == ["share.created", "share.revoked"], rows
assert all(r["valid"] and r["shareId"] == sys.argv[2] for r in rows), rows
PYEOF
[ "$(webhook "$WS_HOOK" consecutiveFailures)" = 0 ] || fail "share webhook failures: $BODY"
stop_pid "$RS"

step "a receiver that always fails gets its webhook disabled, with an event"
FPORT=$(free_port)
api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$FPORT/\",\"events\":[\"agent.created\"]}"
[ "$HTTP_STATUS" = 201 ] || fail "create failing webhook: $HTTP_STATUS $BODY"
WF=$(echo "$BODY" | json_get id)
echo "$BODY" | json_get secret >"$WORK/secret-fail"
receiver_start recvfail "$FPORT" "$WORK/secret-fail" "$WORK/fail.jsonl" fail
api POST /api/v1/agents '{"name":"fourth"}'
is_disabled() { [ "$(webhook "$WF" enabled)" = False ] || [ "$(webhook "$WF" enabled)" = false ]; }
wait_for 20 "the failing webhook disabled" is_disabled
[ "$(wc -l <"$WORK/fail.jsonl")" -eq 3 ] || fail "expected 3 attempts before disabling: $(cat "$WORK/fail.jsonl")"
grep -q '"valid": true' "$WORK/fail.jsonl" || fail "the failing receiver saw no valid signature"
[ -n "$(webhook "$WF" disabledAt)" ] || fail "no disabledAt: $BODY"
api GET /api/v1/events
echo "$BODY" | grep -q "\"webhook.disabled\"" || fail "no webhook.disabled event: $BODY"
echo "$BODY" | grep -q "$WF" || fail "the event does not name the webhook: $BODY"
wait_for 10 "the other webhook received webhook.disabled" received "$WORK/recv.jsonl" webhook.disabled
# Disabled: nothing more is queued or sent to it.
api POST /api/v1/agents '{"name":"fifth"}'
sleep 1
[ "$(wc -l <"$WORK/fail.jsonl")" -eq 3 ] || fail "a disabled webhook was called"
api PATCH "/api/v1/webhooks/$WF" '{"enabled":true}'
[ "$HTTP_STATUS" = 200 ] || fail "re-enable: $HTTP_STATUS $BODY"
[ "$(echo "$BODY" | json_get consecutiveFailures)" = 0 ] || fail "failures not reset: $BODY"
wait_for 10 "the queued delivery is retried once enabled" sh -c "[ \$(wc -l <'$WORK/fail.jsonl') -ge 4 ]"

step "a receiver that never answers: the attempt times out and is retried"
HPORT=$(free_port)
receiver_start hang-receiver "$HPORT" "$WORK/hang-secret" "$WORK/hang.jsonl" hang
HANG_PID=$RECEIVER_PID
api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$HPORT/\",\"events\":[\"agent.created\"]}"
[ "$HTTP_STATUS" = 201 ] || fail "create webhook: $HTTP_STATUS $BODY"
WH=$(echo "$BODY" | json_get id)
echo "$BODY" | json_get secret >"$WORK/hang-secret"
api POST /api/v1/agents '{"name":"sixth"}'
# The hub's lws context gives a peer 10 s to answer (server.c timeout_secs).
timed_out() { case "$(delivery error)" in "connection closed before an answer, after "1[0-9].*" s") ;; *) false ;; esac; }
wait_for 25 "the hanging delivery ended after 10 s without an answer" timed_out
[ "$(webhook "$WH" consecutiveFailures)" -ge 1 ] || fail "no failure counted: $BODY"
wait_for 10 "the timed-out delivery retried" sh -c "[ \$(wc -l <'$WORK/hang.jsonl') -ge 2 ]"
grep -q '"valid": true' "$WORK/hang.jsonl" || fail "the hanging receiver saw no valid signature"
stop_pid "$HANG_PID"
api DELETE "/api/v1/webhooks/$WH"
[ "$HTTP_STATUS" = 200 ] || fail "delete: $HTTP_STATUS $BODY"

step "webhook deliveries in /metrics; delete"
curl -s "$HUB_URL/metrics" >"$WORK/metrics.txt"
grep -Eq '^connect_webhook_deliveries_total\{result="delivered"\} [1-9]' "$WORK/metrics.txt" ||
    fail "no delivered count: $(grep webhook "$WORK/metrics.txt")"
grep -Eq '^connect_webhook_deliveries_total\{result="failed"\} [1-9]' "$WORK/metrics.txt" ||
    fail "no failed count: $(grep webhook "$WORK/metrics.txt")"
api DELETE "/api/v1/webhooks/$WF"
[ "$HTTP_STATUS" = 200 ] || fail "delete: $HTTP_STATUS $BODY"
api GET "/api/v1/webhooks/$WF"
[ "$HTTP_STATUS" = 404 ] || fail "deleted webhook still there: $HTTP_STATUS"
api GET "/api/v1/webhooks/$WF/deliveries"
[ "$HTTP_STATUS" = 404 ] || fail "deleted webhook's log still there: $HTTP_STATUS"
echo "PASS test_webhooks"
