#!/usr/bin/env bash
# User story: the agent's hand-framed WebSocket client (cn_wsc) talks to an
# independent RFC 6455 implementation, not just to itself. A python3-websockets
# echo server (Debian 12 ships 10.4: websockets.serve(handler, ...) with a
# handler(ws, path) coroutine) pings us once, echoes binary messages up to
# 8 MiB (fragmenting the large ones), answers our ping and closes with 1000.
set -euo pipefail

build=${CN_BUILD_DIR:?CN_BUILD_DIR not set}
client="$build/tests/wsc_interop"
[ -x "$client" ] || { echo "FAIL: $client not built"; exit 1; }

# The python3 on PATH may be a separate install without Debian's packages.
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import websockets' 2>/dev/null; then
    py=$cand
    break
  fi
done
[ -n "$py" ] || { echo "FAIL: no python3 with the websockets module (apt-get install python3-websockets)"; exit 1; }
echo "using $py, websockets $("$py" -c 'import websockets; print(websockets.__version__)')"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$py" "$(dirname "$0")/freeport.py" 1 10000 20000) # below the ephemeral range

cat >"$work/server.py" <<'EOF'
import asyncio
import sys

import websockets

PORT = int(sys.argv[1])


async def handler(ws, path=None):
    if ws.subprotocol != "connect.v1":
        await ws.close(1002, "subprotocol")
        return
    # Ping once; the pong must echo the payload or the waiter never fires.
    waiter = await ws.ping(b"server-ping")
    await asyncio.wait_for(waiter, 10)
    await ws.send(b"pong-ok")
    async for msg in ws:
        if isinstance(msg, str):
            await ws.close(1003, "binary only")
            return
        if len(msg) > 65536:
            # An iterable is sent as a fragmented message: continuation frames.
            step = 100000
            await ws.send([msg[i:i + step] for i in range(0, len(msg), step)])
        else:
            await ws.send(msg)


async def main():
    async with websockets.serve(handler, "127.0.0.1", PORT, subprotocols=["connect.v1"],
                                max_size=None, compression=None, ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()


asyncio.run(main())
EOF

"$py" "$work/server.py" "$port" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  grep -q listening "$work/server.log" && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL: server exited"; cat "$work/server.log"; exit 1
  fi
  sleep 0.1
done
grep -q listening "$work/server.log" || { echo "FAIL: server not listening"; cat "$work/server.log"; exit 1; }

rc=0
timeout 120 "$client" "$port" || rc=$?
if grep -q Traceback "$work/server.log"; then
  echo "FAIL: server raised"; rc=1
fi
if [ "$rc" -ne 0 ]; then
  echo "--- server log"; cat "$work/server.log"
  echo "FAIL: wsc_interop exited $rc"
  exit 1
fi
echo "PASS: cn_wsc interoperates with python3-websockets"
