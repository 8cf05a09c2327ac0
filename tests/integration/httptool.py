#!/usr/bin/env python3
"""HTTP traffic for the edge and share tests: a target server and clients
that check what comes back. Bounded in bytes and time.

  httptool.py server PORT                 threaded HTTP/1.1 target:
      /echo            JSON {method, path, headers}
      /sink            reads the body (Content-Length or chunked), answers its SHA-256
      /source?n=N      N deterministic bytes with Content-Length
      /chunked?n=N     N deterministic bytes, chunked
      /slow?s=S        answers after S seconds
      anything else    200 "ok PATH"
  httptool.py wsserver PORT               WebSocket echo server (needs python3-websockets)
  httptool.py wsecho PORT HOST            WebSocket client via 127.0.0.1:PORT, Host HOST: echoes
  httptool.py keepalive PORT HOST SPEC... one connection, requests "METHOD PATH STATUS[:HEADER]";
                                          fails unless every status matches and the
                                          connection was never reopened
  httptool.py pipeline PORT HOST N [STATUS]  N GETs written at once, N responses read in order
                                          (200 "ok /pI" each, or only STATUS when given)
  httptool.py upload PORT HOST PATH MIB [chunked]   streams MIB MiB, checks the SHA-256 echoed
  httptool.py download PORT HOST PATH MIB           reads MIB MiB, checks the SHA-256
  httptool.py deadlines PORT HOST SECS     the head deadline (SECS): two connections that send
                                          half a head, 3 s apart, each closed SECS after it
                                          opened; one with a request answered, still open
                                          then (idle keep-alive has its own, longer deadline)
  httptool.py closefin PORT HOST PATH N   N requests with "Connection: close", each on a new
                                          connection read to its end: fails unless each is a
                                          200 with "Connection: close" whose FIN came in the
                                          segment of the last response bytes (Linux TCP_INFO)
"""
import hashlib
import http.client
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

BLOCK = bytes((i * 7 + 13) & 0xFF for i in range(1 << 20))  # 1 MiB pattern


def pattern(n):
    """Yields n bytes of the pattern in 1 MiB pieces."""
    while n > 0:
        k = min(n, len(BLOCK))
        yield BLOCK[:k]
        n -= k


def pattern_sha(n):
    h = hashlib.sha256()
    for b in pattern(n):
        h.update(b)
    return h.hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body_chunks(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    d = self.rfile.read(min(left, 1 << 20))
                    if not d:
                        return
                    left -= len(d)
                    yield d
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                d = self.rfile.read(min(left, 1 << 20))
                if not d:
                    return
                left -= len(d)
                yield d

    def send_text(self, code, text, ctype="text/plain"):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/echo":
            for _ in self.body_chunks():
                pass
            self.send_text(200, json.dumps({"method": self.command, "path": self.path,
                                            "headers": [[k, v] for k, v in self.headers.items()]}),
                           "application/json")
        elif u.path == "/sink":
            h = hashlib.sha256()
            n = 0
            for d in self.body_chunks():
                h.update(d)
                n += len(d)
            self.send_text(200, "%s %d" % (h.hexdigest(), n))
        elif u.path == "/source" or u.path == "/chunked":
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if u.path == "/source":
                self.send_header("Content-Length", str(n))
                self.end_headers()
                for b in pattern(n):
                    self.wfile.write(b)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for b in pattern(n):
                    self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/slow":
            time.sleep(float(q.get("s", ["5"])[0]))
            self.send_text(200, "slow")
        else:
            for _ in self.body_chunks():
                pass
            self.send_text(200, "ok " + u.path)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def fail(msg):
    print("httptool: " + msg, file=sys.stderr)
    sys.exit(1)


def conn(port, timeout=60):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def download_started(port, host, total, first=1 << 20, rcvbuf=0):
    """For tests that act on a download in flight (imported from their
    inline scripts): GET /source?n=TOTAL through the edge at 127.0.0.1:PORT
    with Host HOST, read at least FIRST bytes; returns (socket, bytes read).
    RCVBUF, when set, shrinks the client's socket buffer first."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.sendall(("GET /source?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (total, host)).encode())
    got = 0
    while got < first:
        d = s.recv(65536)
        assert d, "ended early"
        got += len(d)
    return s, got


def main():
    cmd = sys.argv[1]
    if cmd == "server":
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
    elif cmd == "wsserver":
        import asyncio
        import websockets

        async def echo(ws, path=None):
            async for m in ws:
                await ws.send(m)

        async def run():
            async with websockets.serve(echo, "127.0.0.1", int(sys.argv[2])):
                await asyncio.Future()

        asyncio.run(run())
    elif cmd == "wsecho":
        import asyncio
        import websockets

        port, host = int(sys.argv[2]), sys.argv[3]

        async def run():
            sock = socket.create_connection(("127.0.0.1", port))
            async with websockets.connect("ws://%s/" % host, sock=sock, open_timeout=10) as ws:
                for i in range(20):
                    m = "message %d " % i + "x" * (i * 1000)
                    await ws.send(m)
                    if await asyncio.wait_for(ws.recv(), 10) != m:
                        fail("websocket echo differs")
                big = bytes(range(256)) * 4096  # 1 MiB binary message
                await ws.send(big)
                if await asyncio.wait_for(ws.recv(), 30) != big:
                    fail("websocket 1 MiB echo differs")

        asyncio.run(run())
        print("websocket: 21 echoes intact")
    elif cmd == "keepalive":
        port, host = int(sys.argv[2]), sys.argv[3]
        c = conn(port)
        first_sock = None
        for spec in sys.argv[4:]:
            method, path, want = spec.split(" ", 2)
            want_header = None
            if ":" in want:
                want, want_header = want.split(":", 1)
            c.request(method, path, headers={"Host": host})
            if first_sock is None:
                first_sock = c.sock
            elif c.sock is not first_sock:
                fail("the connection was reopened before %s" % spec)
            r = c.getresponse()
            r.read()
            if str(r.status) != want:
                fail("%s: got %d, want %s" % (spec, r.status, want))
            if want_header and r.getheader(want_header) is None:
                fail("%s: no %s header" % (spec, want_header))
            if r.will_close:
                if spec is not sys.argv[-1]:
                    fail("%s: the edge closed the keep-alive connection" % spec)
        print("keepalive: %d requests on one connection" % (len(sys.argv) - 4))
    elif cmd == "pipeline":
        port, host, n = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        want = sys.argv[5].encode() if len(sys.argv) > 5 else None
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        req = b"".join(b"GET /p%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host.encode()) for i in range(n))
        s.sendall(req)
        f = s.makefile("rb")
        for i in range(n):
            status = f.readline().split()
            length = 0
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            body = f.read(length)
            if want is not None:
                if len(status) < 2 or status[1] != want:
                    fail("pipelined response %d: %r, want %s" % (i, status, want.decode()))
            elif len(status) < 2 or status[1] != b"200" or body != b"ok /p%d" % i:
                fail("pipelined response %d: %r %r" % (i, status, body[:40]))
        print("pipeline: %d responses in order" % n)
    elif cmd == "upload":
        port, host, path, mib = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
        chunked = len(sys.argv) > 6 and sys.argv[6] == "chunked"
        n = mib << 20
        c = conn(port, 600)
        hdrs = {"Host": host, "Content-Type": "application/octet-stream"}
        if chunked:
            c.request("POST", path, body=pattern(n), headers=hdrs, encode_chunked=True)
        else:
            hdrs["Content-Length"] = str(n)
            c.request("POST", path, body=pattern(n), headers=hdrs)
        r = c.getresponse()
        got = r.read().decode()
        want = "%s %d" % (pattern_sha(n), n)
        if r.status != 200 or got != want:
            fail("upload: %d %r, want %r" % (r.status, got, want))
        print("upload: %d MiB%s, SHA-256 equal" % (mib, " chunked" if chunked else ""))
    elif cmd == "download":
        port, host, path, mib = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
        n = mib << 20
        c = conn(port, 600)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        h = hashlib.sha256()
        total = 0
        while True:
            d = r.read(1 << 20)
            if not d:
                break
            h.update(d)
            total += len(d)
        if r.status != 200 or total != n or h.hexdigest() != pattern_sha(n):
            fail("download: status %d, %d bytes of %d, digest %s" % (r.status, total, n, h.hexdigest()))
        print("download: %d MiB, SHA-256 equal" % mib)
    elif cmd == "deadlines":
        port, host, secs = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        t0 = time.monotonic()
        half = b"GET /slow-head HTTP/1.1\r\nHost: %s\r\n" % host.encode()
        a = socket.create_connection(("127.0.0.1", port), timeout=secs + 10)
        a.sendall(half)
        kept = socket.create_connection(("127.0.0.1", port), timeout=secs + 10)
        kept.sendall(b"GET /kept HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        got = b""
        while b"ok /kept" not in got:
            d = kept.recv(65536)
            if not d:
                fail("deadlines: the kept connection ended before its answer: %r" % got)
            got += d
        time.sleep(3)
        b_t0 = time.monotonic()
        b = socket.create_connection(("127.0.0.1", port), timeout=secs + 10)
        b.sendall(half)

        def closed_after(s, since):
            while s.recv(65536):
                pass
            return time.monotonic() - since

        ta = closed_after(a, t0)
        tb = closed_after(b, b_t0)
        for name, t in (("first", ta), ("second", tb)):
            if not secs - 0.5 <= t <= secs + 3:
                fail("deadlines: the %s half head was closed after %.1f s, want %.0f" % (name, t, secs))
        kept.setblocking(False)
        try:
            if kept.recv(1) == b"":
                fail("deadlines: the keep-alive connection was closed at the head deadline")
        except BlockingIOError:
            pass
        kept.close()
        print("deadlines: half heads closed after %.1f and %.1f s, the idle one kept" % (ta, tb))
    elif cmd == "closefin":
        port, host, path, n = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % (path.encode(), host.encode()))
            data = b""
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                data += d
            # struct tcp_info: tcpi_segs_in at byte 140, tcpi_data_segs_in at 152.
            ti = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            segs, data_segs = struct.unpack_from("I", ti, 140)[0], struct.unpack_from("I", ti, 152)[0]
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 ") or b"\r\nConnection: close" not in head:
                fail("closefin %d: %r" % (i, head[:200]))
            # Without payload: the SYN-ACK and at most one ACK of the request;
            # a third is a FIN sent on its own.
            if segs - data_segs > 2:
                fail("closefin %d: %d segments without payload of %d (a lone FIN)" % (i, segs - data_segs, segs))
        print("closefin: %d responses, each with its FIN in its last segment (%d bytes)" % (n, len(body)))
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
