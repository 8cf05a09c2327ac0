#!/usr/bin/env python3
"""Traffic for the integration tests: a target server and clients that check
what comes back. Every run is bounded in bytes and time.

  tcptool.py server PORT          threaded server; each connection starts with
                                  one line: "SINK", "ECHO", "SOURCE N SEED" or
                                  "WATCH NAME" (write "open" to $CN_TCPTOOL_DIR/NAME,
                                  read until the peer ends, then write "reset" or "eof"),
                                  "VERIFY SEED" (compare every byte received with the
                                  stream of SEED; append "verify SEED ok|CORRUPT BYTES
                                  eof|reset" to $CN_TCPTOOL_DIR/verify.log)
  tcptool.py sink HOST PORT N SEED     send N bytes, half-close, expect their SHA-256
  tcptool.py source HOST PORT N SEED   receive N bytes, check their SHA-256
  tcptool.py echo HOST PORT N SEED     send N bytes, half-close, read the echo to EOF
  tcptool.py many HOST PORT CONNS N    CONNS concurrent echo connections of N bytes each
  tcptool.py garbage HOST PORT N       N random bytes, then close
  tcptool.py refused HOST PORT         exit 0 when the connection is refused or reset at once
  tcptool.py cut HOST PORT N SEED AFTER READY GO
                                       download N bytes; after AFTER bytes stop reading, create
                                       READY and wait for GO to exist; then read to the end:
                                       exit 0 on ECONNRESET, 1 on a clean EOF (truncation hidden)
  tcptool.py hold HOST PORT LINE       send LINE, then wait (bounded) until the connection ends
  tcptool.py rst HOST PORT SECS        exit 0 when a new connection is reset (or refused) within
                                       SECS; 1 when it hangs longer or ends with a clean close
  tcptool.py soak HOST PORT STOP SECS  until the file STOP exists (at most SECS): uploads to
                                       VERIFY and downloads from SOURCE, reconnecting after every
                                       cut, each download compared byte by byte; prints one JSON
                                       line of counts; exit 1 if any downloaded byte differs
"""
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 20
DEADLINE = int(os.environ.get("CN_TCPTOOL_TIMEOUT", "60"))


def stream(n, seed):
    """Deterministic bytes in chunks."""
    rnd = random.Random(seed)
    left = n
    while left:
        k = min(CHUNK, left)
        yield rnd.randbytes(k)
        left -= k


def digest(n, seed):
    h = hashlib.sha256()
    for c in stream(n, seed):
        h.update(c)
    return h.hexdigest()


class Expected:
    """The stream of a seed, consumed piece by piece for comparison."""

    def __init__(self, seed):
        self.gen = stream(1 << 40, seed)
        self.buf = b""
        self.pos = 0

    def matches(self, data):
        """Whether data is the next part of the stream; -1 if so, else the
        offset of the first difference."""
        while len(self.buf) < len(data):
            self.buf += next(self.gen)
        exp, self.buf = self.buf[:len(data)], self.buf[len(data):]
        start = self.pos
        self.pos += len(data)
        if exp == data:
            return -1
        return start + next(k for k in range(len(data)) if exp[k] != data[k])


def readline(sock):
    buf = b""
    while not buf.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        buf += c
        if len(buf) > 200:
            break
    return buf.decode(errors="replace").strip()


def handle(conn):
    try:
        conn.settimeout(DEADLINE)
        cmd = readline(conn).split()
        if not cmd:
            return
        if cmd[0] == "SINK":
            h = hashlib.sha256()
            while True:
                d = conn.recv(CHUNK)
                if not d:
                    break
                h.update(d)
            conn.sendall(h.hexdigest().encode() + b"\n")
        elif cmd[0] == "ECHO":
            while True:
                d = conn.recv(CHUNK)
                if not d:
                    break
                conn.sendall(d)
        elif cmd[0] == "SOURCE":
            for c in stream(int(cmd[1]), int(cmd[2])):
                conn.sendall(c)
        elif cmd[0] == "WATCH" and len(cmd) == 2:
            path = os.path.join(os.environ.get("CN_TCPTOOL_DIR", "."), os.path.basename(cmd[1]))
            with open(path, "w") as f:
                f.write("open\n")
            how = "eof"
            try:
                while conn.recv(65536):
                    pass
            except ConnectionResetError:
                how = "reset"
            except OSError as e:
                how = f"error {e}"
            with open(path, "w") as f:
                f.write(how + "\n")
            return
        elif cmd[0] == "VERIFY" and len(cmd) == 2:
            exp, got, bad, how = Expected(int(cmd[1])), 0, -1, "eof"
            try:
                while True:
                    d = conn.recv(CHUNK)
                    if not d:
                        break
                    off = exp.matches(d)
                    if off >= 0 and bad < 0:
                        bad = off
                    got += len(d)
            except ConnectionResetError:
                how = "reset"
            except OSError as e:
                how = f"error-{e.errno}"
            path = os.path.join(os.environ.get("CN_TCPTOOL_DIR", "."), "verify.log")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(fd, f"verify {cmd[1]} {'ok' if bad < 0 else 'CORRUPT@' + str(bad)} {got} {how}\n".encode())
            os.close(fd)
            return
        conn.shutdown(socket.SHUT_WR)
        # Wait for the client to close, so the half-close is observed in order.
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def server(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1024)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def connect(host, port):
    s = socket.create_connection((host, port), 10)
    s.settimeout(DEADLINE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def sink(host, port, n, seed):
    s = connect(host, port)
    t0 = time.time()
    s.sendall(b"SINK\n")
    h = hashlib.sha256()
    for c in stream(n, seed):
        h.update(c)
        s.sendall(c)
    s.shutdown(socket.SHUT_WR)
    got = readline(s)
    s.close()
    dt = time.time() - t0
    ok = got == h.hexdigest()
    print(f"sink {n} bytes in {dt:.2f}s ({n / dt / 1e6:.0f} MB/s): {'sha256 equal' if ok else 'MISMATCH ' + got}")
    return ok


def source(host, port, n, seed):
    s = connect(host, port)
    t0 = time.time()
    s.sendall(f"SOURCE {n} {seed}\n".encode())
    h = hashlib.sha256()
    got = 0
    while True:
        d = s.recv(CHUNK)
        if not d:
            break
        h.update(d)
        got += len(d)
    s.close()
    dt = time.time() - t0
    ok = got == n and h.hexdigest() == digest(n, seed)
    print(f"source {got}/{n} bytes in {dt:.2f}s ({got / dt / 1e6:.0f} MB/s): {'sha256 equal' if ok else 'MISMATCH'}")
    return ok


def echo_one(host, port, n, seed, results, i):
    try:
        s = connect(host, port)
        data = b"".join(stream(n, seed))
        s.sendall(b"ECHO\n")

        def writer():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # half-close: the reply must still arrive whole

        w = threading.Thread(target=writer)
        w.start()
        buf = bytearray()
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            buf += d
        w.join()
        s.close()
        results[i] = bytes(buf) == data
        if not results[i]:
            bad = next((k for k in range(min(len(buf), len(data))) if buf[k] != data[k]), None)
            print(f"conn {i}: got {len(buf)} of {len(data)} bytes, first difference at {bad}",
                  file=sys.stderr)
    except OSError as e:
        print(f"conn {i}: {e}", file=sys.stderr)
        results[i] = False


def echo(host, port, n, seed):
    r = [False]
    echo_one(host, port, n, seed, r, 0)
    print(f"echo {n} bytes after half-close: {'intact' if r[0] else 'BROKEN'}")
    return r[0]


def many(host, port, conns, n):
    results = [False] * conns
    ts = [threading.Thread(target=echo_one, args=(host, port, n, 1000 + i, results, i))
          for i in range(conns)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ok = sum(results)
    print(f"{ok}/{conns} concurrent connections intact in {time.time() - t0:.2f}s")
    return ok == conns


def garbage(host, port, n):
    try:
        s = connect(host, port)
        s.sendall(random.randbytes(n))
        s.close()
    except OSError:
        pass
    return True


def refused(host, port):
    try:
        s = socket.create_connection((host, port), 3)
        s.settimeout(3)
        try:
            s.sendall(b"SINK\n")
            d = s.recv(1)
            return d == b""  # closed at once, nothing served
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False  # hangs: not acceptable
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def cut(host, port, n, seed, after, ready, go):
    """A download cut mid-way: the test kills something while we hold."""
    s = connect(host, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.sendall(f"SOURCE {n} {seed}\n".encode())
    got = 0
    try:
        while got < after:
            d = s.recv(min(CHUNK, after - got))
            if not d:
                print(f"cut: clean EOF after {got} bytes, before the cut")
                return False
            got += len(d)
        open(ready, "w").close()
        end = time.time() + DEADLINE
        while not os.path.exists(go) and time.time() < end:
            time.sleep(0.05)
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            got += len(d)
    except ConnectionResetError:
        print(f"cut: connection reset after {got} of {n} bytes")
        return True
    finally:
        s.close()
    print(f"cut: clean EOF after {got} of {n} bytes: a truncated transfer looks complete")
    return False


def hold(host, port, line):
    s = connect(host, port)
    s.sendall(line.encode() + b"\n")
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
    return True


def rst(host, port, secs):
    t0 = time.time()
    how = "hung"
    try:
        s = socket.create_connection((host, port), secs)
        s.settimeout(secs)
        try:
            s.sendall(b"SINK\n")
            how = "clean close" if s.recv(1) == b"" else "served"
        except (ConnectionResetError, BrokenPipeError):
            how = "reset"
        except socket.timeout:
            how = "hung"
        s.close()
    except ConnectionRefusedError:
        how = "refused"
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "hung"
    dt = time.time() - t0
    print(f"rst: {how} after {dt:.2f}s")
    return how in ("reset", "refused") and dt <= secs


def soak(host, port, stop, secs):
    end = time.time() + secs
    counts = {"up_conns": 0, "up_bytes": 0, "down_conns": 0, "down_bytes": 0, "down_corrupt": 0,
              "refused": 0}
    lock = threading.Lock()

    def add(k, n=1):
        with lock:
            counts[k] += n

    def running():
        return not os.path.exists(stop) and time.time() < end

    def loop(name, base, one):
        """Connections one after the other until stopped, each cut when the
        link dies; `one` moves the data of one connection."""
        k = 0
        while running():
            k += 1
            try:
                s = connect(host, port)
                add(name + "_conns")
                one(s, base + k)
                s.close()
            except OSError:
                add("refused")
                time.sleep(0.05)

    def up(s, seed):
        s.sendall(f"VERIFY {seed}\n".encode())
        for c in stream(1 << 30, seed):
            if not running():
                break
            s.sendall(c)
            add("up_bytes", len(c))

    def down(s, seed):
        s.sendall(f"SOURCE {1 << 30} {seed}\n".encode())
        exp = Expected(seed)
        while running():
            d = s.recv(CHUNK)
            if not d:
                break
            if exp.matches(d) >= 0:
                add("down_corrupt")
                print(f"soak: download {seed} differs from its stream", file=sys.stderr)
                break
            add("down_bytes", len(d))

    ts = [threading.Thread(target=loop, args=("up", 100000, up)),
          threading.Thread(target=loop, args=("down", 200000, down))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(counts))
    return counts["down_corrupt"] == 0


def main(a):
    if a[0] == "server":
        server(int(a[1]))
        return 0
    host, port = a[1], int(a[2])
    fns = {
        "sink": lambda: sink(host, port, int(a[3]), int(a[4])),
        "source": lambda: source(host, port, int(a[3]), int(a[4])),
        "echo": lambda: echo(host, port, int(a[3]), int(a[4])),
        "many": lambda: many(host, port, int(a[3]), int(a[4])),
        "garbage": lambda: garbage(host, port, int(a[3])),
        "refused": lambda: refused(host, port),
        "cut": lambda: cut(host, port, int(a[3]), int(a[4]), int(a[5]), a[6], a[7]),
        "hold": lambda: hold(host, port, a[3]),
        "rst": lambda: rst(host, port, float(a[3])),
        "soak": lambda: soak(host, port, a[3], float(a[4])),
    }
    return 0 if fns[a[0]]() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
