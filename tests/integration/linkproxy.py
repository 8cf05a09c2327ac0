#!/usr/bin/env python3
"""A man in the middle of the agent <-> hub link, for the integration tests.
Every run is bounded in bytes and time; it listens on 127.0.0.1 only.

  linkproxy.py flip PORT HUB_PORT EVERY_KIB LOG MAX
      Relays every connection to the hub. After the HTTP upgrade it parses
      the WebSocket frames in both directions and, once a connection has
      carried EVERY_KIB KiB of data-frame payload (randomised +-50%) in one
      direction, XORs one random byte of a data frame's payload (the
      channel's records: header, ciphertext or tag) with a random non-zero
      mask. One flip per connection, alternating the direction from one
      connection to the next. Control frames (ping, pong, close) are never
      touched: their payload is not the channel's. LOG gets one line per
      event, each after a timestamp (ms): "open CONN", "flip CONN up|down
      OFFSET", "close CONN flipped|clean|idle MS" (MS since the flip, or
      since the connection opened; idle: it carried no byte, e.g. a port
      probe). After MAX flips it relays unchanged.
  linkproxy.py record PORT HUB_PORT DIR
      Relays every connection unchanged and writes what the client sent to
      DIR/conn-N.json: a list of the chunks it sent, in order, each as hex.
  linkproxy.py replay HUB_PORT FILE
      Sends the recorded chunks of FILE to the hub, one by one, each after
      the hub answered the previous one (or 1 s passed), then waits up to 3 s
      for the hub to close. Prints one JSON line: whether the upgrade was
      accepted, bytes received, whether the hub closed and after how long.
"""
import json
import os
import random
import socket
import struct
import sys
import threading
import time

UPSTREAM = 0  # client (agent) -> hub
DOWNSTREAM = 1  # hub -> client
DATA_OPCODES = (0, 1, 2)  # continuation, text, binary


class WsScanner:
    """Follows one direction of a WebSocket connection byte by byte and
    says which bytes of each chunk are data-frame payload."""

    def __init__(self):
        self.http = b""
        self.in_http = True
        self.hdr = b""
        self.left = 0  # payload bytes left in the current frame
        self.data = False  # the current frame is a data frame

    def _hdr_len(self):
        h = self.hdr
        if len(h) < 2:
            return None
        n = 2 + (4 if h[1] & 0x80 else 0)
        ln = h[1] & 0x7F
        n += 2 if ln == 126 else 8 if ln == 127 else 0
        return n

    def _payload_len(self):
        h = self.hdr
        ln = h[1] & 0x7F
        if ln == 126:
            return struct.unpack(">H", h[2:4])[0]
        if ln == 127:
            return struct.unpack(">Q", h[2:10])[0]
        return ln

    def scan(self, chunk):
        """Yields (start, end) ranges of data payload inside chunk."""
        i = 0
        n = len(chunk)
        while i < n:
            if self.in_http:
                prev = len(self.http)
                self.http += chunk[i:]
                end = self.http.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.http) > 65536:
                        raise ValueError("no end of the HTTP head")
                    i = n
                    continue
                # Bytes after the blank line are the first frames.
                i += end + 4 - prev
                self.in_http = False
                continue
            if self.left:
                k = min(self.left, n - i)
                if self.data:
                    yield (i, i + k)
                self.left -= k
                i += k
                continue
            self.hdr += chunk[i:i + 1]
            i += 1
            want = self._hdr_len()
            if want is not None and len(self.hdr) == want:
                self.data = (self.hdr[0] & 0x0F) in DATA_OPCODES
                self.left = self._payload_len()
                self.hdr = b""


class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()

    def line(self, *fields):
        with self.lock:
            stamp = int(time.time() * 1000)
            os.write(self.fd, (" ".join(str(f) for f in (stamp,) + fields) + "\n").encode())


def serve(port, handler):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        threading.Thread(target=handler, args=(c, n), daemon=True).start()


def dial(hub_port):
    s = socket.create_connection(("127.0.0.1", hub_port), 5)
    s.settimeout(None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def pump(src, dst, on_chunk, done):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            dst.sendall(on_chunk(d))
    except OSError:
        pass
    finally:
        # Whichever side ends first ends the pair: the link is one unit.
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        done.set()


def relay(client, hub_port, up, down, on_open=None):
    """Relays one client to the hub through the chunk filters up and down
    until either side ends; False when the hub cannot be reached."""
    try:
        hub = dial(hub_port)
    except OSError:
        client.close()
        return False
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if on_open:
        on_open()
    done = (threading.Event(), threading.Event())
    threading.Thread(target=pump, args=(client, hub, up, done[0]), daemon=True).start()
    threading.Thread(target=pump, args=(hub, client, down, done[1]), daemon=True).start()
    done[0].wait()
    done[1].wait()
    client.close()
    hub.close()
    return True


def flip(port, hub_port, every_kib, log_path, max_flips):
    log = Log(log_path)
    flips = [0]
    rnd = random.Random(int(os.environ.get("CN_FLIP_SEED", "0")) or None)
    lock = threading.Lock()

    def handle(client, conn):
        with lock:
            direction = conn % 2
            at = int(every_kib * 1024 * rnd.uniform(0.5, 1.5))
            mask = rnd.randrange(1, 256)
        state = {"seen": 0, "flipped_at": None, "opened": time.time(), "bytes": 0}
        scanners = (WsScanner(), WsScanner())

        def make(d):
            def on_chunk(chunk):
                state["bytes"] += len(chunk)
                ranges = list(scanners[d].scan(chunk))
                if d != direction or state["flipped_at"] is not None or flips[0] >= max_flips:
                    return chunk
                total = sum(e - s for s, e in ranges)
                if state["seen"] + total <= at:
                    state["seen"] += total
                    return chunk
                # Any payload byte of this chunk: record headers, ciphertext
                # and tags are hit as often as their share of the bytes.
                with lock:
                    target = rnd.randrange(total)
                    flips[0] += 1
                offset = state["seen"] + target  # in this direction's payload
                for s, e in ranges:
                    if target < e - s:
                        pos = s + target
                        break
                    target -= e - s
                b = bytearray(chunk)
                b[pos] ^= mask
                state["flipped_at"] = time.time()
                log.line("flip", conn, "up" if d == UPSTREAM else "down", offset)
                state["seen"] += total
                return bytes(b)
            return on_chunk

        if not relay(client, hub_port, make(UPSTREAM), make(DOWNSTREAM),
                     lambda: log.line("open", conn)):
            return
        if state["flipped_at"] is not None:
            log.line("close", conn, "flipped", int((time.time() - state["flipped_at"]) * 1000))
        elif not state["bytes"]:
            log.line("close", conn, "idle", int((time.time() - state["opened"]) * 1000))
        else:
            log.line("close", conn, "clean", int((time.time() - state["opened"]) * 1000))

    serve(port, handle)


def record(port, hub_port, outdir):
    def handle(client, conn):
        chunks = []
        path = os.path.join(outdir, "conn-%d.json" % conn)

        def keep(d):
            chunks.append(d.hex())
            # Rewritten whole each time: the test may stop us at any point.
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(chunks, f)
            os.replace(tmp, path)
            return d

        relay(client, hub_port, keep, lambda d: d)

    serve(port, handle)


def replay(hub_port, path):
    with open(path) as f:
        chunks = [bytes.fromhex(c) for c in json.load(f)]
    s = dial(hub_port)
    got = b""
    closed = False
    t0 = time.time()
    sent = 0
    for c in chunks:
        try:
            s.sendall(c)
        except OSError:
            closed = True
            break
        sent += 1
        s.settimeout(1.0)
        try:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            got += d
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    end = time.time() + 3
    while not closed and time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(65536)
            if not d:
                closed = True
            got += d
        except socket.timeout:
            break
        except OSError:
            closed = True
    s.close()
    print(json.dumps({
        "chunks": len(chunks), "sent": sent, "upgraded": got.startswith(b"HTTP/1.1 101"),
        "received": len(got), "closed": closed, "ms": int((time.time() - t0) * 1000)}))
    return 0


def main(a):
    if a[0] == "flip" and len(a) == 6:
        flip(int(a[1]), int(a[2]), float(a[3]), a[4], int(a[5]))
    elif a[0] == "record" and len(a) == 4:
        record(int(a[1]), int(a[2]), a[3])
    elif a[0] == "replay" and len(a) == 3:
        return replay(int(a[1]), a[2])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
