#!/usr/bin/env bash
# User story: an operator on a long fat network raises the per-stream window
# (or, short of memory, lowers it): `connect-hub serve --stream-window BYTES
# --window-update BYTES` sets the window the hub grants each stream on an agent
# link, CONNECT_STREAM_WINDOW / CONNECT_WINDOW_UPDATE the agent's. A tiny
# window in both directions (4 KiB, credit back every 1 KiB: thousands of
# credit round trips) still carries 10 MiB each way intact; a value out of
# range is refused at start with one line that names it.
source "$(dirname "$0")/lib.sh"

step "bad settings are refused with a clear line"
for args in "--stream-window 1023" "--stream-window 1073741825" "--stream-window 4096 --window-update 8192" \
    "--window-update 0"; do
    # shellcheck disable=SC2086 # one option and its value per word
    if "$HUB_BIN" serve --db "$WORK/none.db" $args >"$WORK/bad.out" 2>&1; then
        fail "serve accepted $args"
    fi
    [ "$(wc -l <"$WORK/bad.out")" -eq 1 ] || fail "serve $args: not one line: $(cat "$WORK/bad.out")"
    grep -q -- "--stream-window\|--window-update" "$WORK/bad.out" ||
        fail "serve $args: the error does not name the option: $(cat "$WORK/bad.out")"
done

hub_init
hub_start --stream-window 4096 --window-update 1024
grep -q "stream window 4096 bytes, credit returned every 1024 bytes" "$WORK/hub.log" ||
    fail "the hub does not report its window"
agent_enroll dev
TOOL_PORT=$(free_port)
bg tool "$PY" "$TCPTOOL" server "$TOOL_PORT"
wait_port 127.0.0.1 "$TOOL_PORT"

for bad in "CONNECT_STREAM_WINDOW=100" "CONNECT_STREAM_WINDOW=64k" "CONNECT_WINDOW_UPDATE=3000000"; do
    if env "$bad" timeout 20 "$CLI_BIN" expose "127.0.0.1:$TOOL_PORT" --config "$WORK/dev.json" \
        --public --protocol tcp --name never >"$WORK/bad.out" 2>"$WORK/bad.err"; then
        fail "expose accepted $bad"
    fi
    [ "$(wc -l <"$WORK/bad.err")" -eq 1 ] || fail "expose $bad: not one line: $(cat "$WORK/bad.err")"
    grep -q "CONNECT_STREAM_WINDOW\|CONNECT_WINDOW_UPDATE" "$WORK/bad.err" ||
        fail "expose $bad: the error does not name the variable: $(cat "$WORK/bad.err")"
done

step "a 4 KiB window both ways carries 10 MiB each way intact"
# At debug, the agent logs the window the hub granted each stream it opens.
CONNECT_STREAM_WINDOW=4096 CONNECT_WINDOW_UPDATE=1024 CONNECT_LOG=debug \
    expose dev "127.0.0.1:$TOOL_PORT" --public --protocol tcp --name small-window
grep -q "stream window 4096 bytes, credit returned every 1024 bytes" "$WORK/expose-dev-$EXPOSES.log" ||
    fail "the agent does not report its window"
"$PY" "$TCPTOOL" sink 127.0.0.1 "$TUNNEL_PORT" $((10 << 20)) 11 || fail "10 MiB upload"
"$PY" "$TCPTOOL" source 127.0.0.1 "$TUNNEL_PORT" $((10 << 20)) 12 || fail "10 MiB download"
"$PY" "$TCPTOOL" many 127.0.0.1 "$TUNNEL_PORT" 32 262144 || fail "32 concurrent connections"
# The hub's --stream-window reached its end of the link: every stream it
# opened announced 4096 bytes.
log=$WORK/expose-dev-$EXPOSES.log
granted=$(grep -c "the hub's window for this stream: 4096 bytes" "$log" || true)
[ "$granted" -ge 34 ] || fail "the hub's window: $granted streams announced 4096 bytes: $(grep -m3 "hub's window" "$log")"
! grep "the hub's window for this stream:" "$log" | grep -qv ": 4096 bytes" ||
    fail "a stream with another window: $(grep "hub's window" "$log" | grep -v ': 4096 bytes' | head -2)"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_stream_window: all checks passed"
