#!/usr/bin/env python3
"""UDP traffic for the integration tests, bounded in datagrams and time.

  udptool.py echo HOST PORT N [WINDOW]   send N numbered datagrams (16..1200 bytes,
                                         deterministic content) with at most WINDOW
                                         outstanding (default 1: an echo server that
                                         coalesces reads cannot merge two), wait for
                                         each echo up to 2 s; prints sent/received/lost
                                         and exits 0 only when every echo came back
                                         intact
  udptool.py big HOST PORT SIZE          one datagram of SIZE bytes, expects it echoed
  udptool.py server PORT [SECS]          echo server: every datagram goes back to its sender
                                         (one socket, so senders can never be mixed up),
                                         for SECS seconds at most (default 600)
"""
import os
import random
import socket
import sys
import time


def payload(seq):
    rnd = random.Random(seq)
    n = 16 + rnd.randrange(1185)
    return seq.to_bytes(8, "big") + rnd.randbytes(n - 8)


def echo(host, port, n, window):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect((host, port))
    s.settimeout(2.0)
    outstanding = {}
    received = bad = lost = 0
    nxt = 0
    t0 = time.time()
    while nxt < n or outstanding:
        while nxt < n and len(outstanding) < window:
            p = payload(nxt)
            s.send(p)
            outstanding[nxt] = p
            nxt += 1
        try:
            d = s.recv(65536)
        except socket.timeout:
            lost += len(outstanding)
            outstanding.clear()
            continue
        except ConnectionRefusedError:
            continue
        seq = int.from_bytes(d[:8], "big") if len(d) >= 8 else -1
        want = outstanding.pop(seq, None)
        if want is None or want != d:
            bad += 1
        else:
            received += 1
    dt = time.time() - t0
    print(f"udp echo: sent {n}, received {received}, lost {lost}, bad {bad} in {dt:.2f}s")
    return received == n and lost == 0 and bad == 0


def big(host, port, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(3.0)
    p = os.urandom(size)
    s.send(p)
    try:
        d = s.recv(65536)
    except (socket.timeout, ConnectionRefusedError):
        print(f"udp big: no echo of {size} bytes")
        return False
    print(f"udp big: {size} bytes sent, {len(d)} echoed, {'intact' if d == p else 'DIFFERENT'}")
    return d == p


def server(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", port))
    end = time.time() + secs
    s.settimeout(1.0)
    while time.time() < end:
        try:
            d, peer = s.recvfrom(65536)
        except socket.timeout:
            continue
        s.sendto(d, peer)
    return True


def main(a):
    if a[0] == "echo":
        return 0 if echo(a[1], int(a[2]), int(a[3]), int(a[4]) if len(a) > 4 else 1) else 1
    if a[0] == "server":
        return 0 if server(int(a[1]), int(a[2]) if len(a) > 2 else 600) else 1
    if a[0] == "big":
        return 0 if big(a[1], int(a[2]), int(a[3])) else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
