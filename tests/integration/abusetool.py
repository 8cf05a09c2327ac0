#!/usr/bin/env python3
"""Pre-authentication attackers for test_abuse.sh (loopback only).

  slow HOST PORT BYTES_PER_S   WebSocket upgrade on /agent, then a channel
                               handshake record announced as 1,000 bytes and
                               trickled at BYTES_PER_S. Prints the ms until the
                               hub dropped the connection (or "-1" after 30 s).
  slowmany HOST PORT N BYTES_PER_S SECS
                               N such handshakes from one process, held for
                               SECS: each one the hub drops is replaced. Prints
                               "ready <upgraded>" once the first N are up, then
                               "held <opened> <dropped>" at the end.
  silent HOST PORT N SRCS      N TCP connections that never send a byte, from
                               source addresses 127.0.0.2 .. 127.0.0.(1+SRCS);
                               prints "ready <open>" and holds them until killed.
  burst HOST PORT N            N back-to-back GET /api/v1/health connections
                               from 127.0.0.1; prints "<answered> <refused>".
  slowhdr HOST PORT N SRC      N HTTP requests whose headers trickle one byte a
                               second, from SRC; holds them until killed.
  conns HOST PORT N SRC        N echo connections (tcptool server) to a public
                               TCP port from SRC, each checked by a round trip;
                               prints "ready <served> <refused>" and holds the
                               served ones until killed.
  idle HOST PORT SECS          one echo connection that works, then stays
                               silent: prints "<ms> reset|eof" when the hub ends
                               it, "-1 open" after SECS.
  watch HOST PORT SECS         one working echo connection, then waits without
                               sending: prints "<ms> reset|eof" when it ends.
"""
import base64
import os
import socket
import sys
import time


def upgrade(host, port):
    s = socket.create_connection((host, port), 5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /agent HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: connect.v1\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("upgrade refused")
        buf += chunk
    if b" 101 " not in buf.split(b"\r\n")[0]:
        raise SystemExit("upgrade refused: " + buf.split(b"\r\n")[0].decode())
    return s


def ws_frame(payload):
    """One masked binary frame (payload < 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + body


def alive(s):
    """False once the peer closed (FIN or RST), without consuming data."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def slow(host, port, rate):
    s = upgrade(host, port)
    start = time.monotonic()
    # A handshake record header (type 1, 1000 bytes), then its body, slowly.
    pending = bytes([1, 0, 0x03, 0xE8]) + bytes(1000)
    next_send = start
    while time.monotonic() - start < 30:
        if not alive(s):
            print(int((time.monotonic() - start) * 1000))
            return
        now = time.monotonic()
        if pending and now >= next_send:
            try:
                s.sendall(ws_frame(pending[:1]))
            except OSError:
                print(int((time.monotonic() - start) * 1000))
                return
            pending = pending[1:]
            next_send += 1.0 / rate
        time.sleep(0.02)
    print(-1)


def slowmany(host, port, n, rate, secs):
    """slow() times N from one interpreter, held for SECS: each handshake
    the hub drops is replaced by a new one, so N stay pending as long as
    the hub lets them (N processes, as before, spent seconds of CPU
    starting Python on a loaded machine just as the real agent started,
    and their handshakes were cut at 2 s, often before it arrived)."""
    def fresh():
        try:
            return [upgrade(host, port), bytes([1, 0, 0x03, 0xE8]) + bytes(1000)]
        except (OSError, SystemExit):
            return None
    conns = [c for c in (fresh() for _ in range(n)) if c]
    print("ready", len(conns), flush=True)
    opened, dropped = len(conns), 0
    start = next_send = time.monotonic()
    while time.monotonic() - start < secs:
        send = time.monotonic() >= next_send
        if send:
            next_send += 1.0 / rate
        for c in list(conns):
            ok = alive(c[0])
            if ok and send and c[1]:
                try:
                    c[0].sendall(ws_frame(c[1][:1]))
                    c[1] = c[1][1:]
                except OSError:
                    ok = False
            if not ok:
                c[0].close()
                conns.remove(c)
                dropped += 1
        while len(conns) < n:
            c = fresh()
            if not c:
                break
            conns.append(c)
            opened += 1
        time.sleep(0.02)
    print("held", opened, dropped, flush=True)


def silent(host, port, n, srcs):
    socks = []
    for i in range(n):
        src = f"127.0.0.{2 + i % srcs}"
        s = socket.socket()
        s.bind((src, 0))
        try:
            s.connect((host, port))
            socks.append(s)
        except OSError:
            s.close()
    print("ready", len(socks), flush=True)
    while True:
        time.sleep(3600)


def burst(host, port, n):
    ok = refused = 0
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), 2)
            s.sendall(f"GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                refused += 1
            s.close()
        except OSError:
            refused += 1
    print(ok, refused)


def slowhdr(host, port, n, src):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        try:
            s.connect((host, port))
            s.sendall(b"G")
            socks.append(s)
        except OSError:
            s.close()
    print("ready", len(socks), flush=True)
    rest = b"ET /api/v1/health HTTP/1.1\r\nX-Slow: " + b"a" * 4096
    for i in range(len(rest)):
        for s in socks:
            try:
                s.sendall(rest[i:i + 1])
            except OSError:
                pass
        time.sleep(1)


def echo_ok(s):
    s.sendall(b"ECHO\n")
    s.sendall(b"ping")
    got = b""
    while len(got) < 4:
        d = s.recv(4 - len(got))
        if not d:
            return False
        got += d
    return got == b"ping"


def conns(host, port, n, src):
    socks, refused = [], 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.bind((src, 0))
            s.connect((host, port))
            if echo_ok(s):
                socks.append(s)
                continue
        except OSError:
            pass
        refused += 1
        s.close()
    print("ready", len(socks), refused, flush=True)
    while True:
        time.sleep(3600)


def ended(s, secs):
    """Waits (reading) until the connection ends: (ms, how)."""
    start = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - start < secs:
        try:
            if s.recv(4096) == b"":
                return int((time.monotonic() - start) * 1000), "eof"
        except socket.timeout:
            continue
        except OSError:
            return int((time.monotonic() - start) * 1000), "reset"
    return -1, "open"


def idle(host, port, secs, announce=False):
    s = socket.create_connection((host, port), 5)
    if not echo_ok(s):
        raise SystemExit("the tunnel does not echo")
    if announce:  # watch: say when the connection is live, for the caller to act
        print("open", flush=True)
    ms, how = ended(s, secs)
    print(ms, how)


def main():
    cmd = sys.argv[1]
    if cmd == "slow":
        slow(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "slowmany":
        slowmany(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                 float(sys.argv[6]))
    elif cmd == "silent":
        silent(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "burst":
        burst(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "conns":
        conns(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd in ("idle", "watch"):
        idle(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), cmd == "watch")
    elif cmd == "slowhdr":
        slowhdr(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
