#!/usr/bin/env python3
"""A tiny DNS server for test_slow_dns.sh: UDP on ADDR:53.

  slowdns.py ADDR DELAY_S
Names under "slow.test." answer A 127.0.0.1 after DELAY_S seconds, names under
"fast.test." at once; AAAA questions get an empty answer (same delays);
anything else NXDOMAIN. Each question is answered from its own thread, so a
slow answer never delays another. Logs one line per answer.
"""
import socket
import struct
import sys
import threading
import time


def qname(data, off):
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower() + ".", off
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n


def answer(sock, data, peer, delay):
    (tid, _flags, qd) = struct.unpack(">HHH", data[:6])
    name, off = qname(data, 12)
    qtype, qclass = struct.unpack(">HH", data[off:off + 4])
    question = data[12:off + 4]
    if name.endswith("slow.test."):
        time.sleep(delay)
    known = name.endswith("slow.test.") or name.endswith("fast.test.")
    rcode = 0 if known else 3
    answers = b""
    an = 0
    if known and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
        an = 1
    head = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, an, 0, 0)
    sock.sendto(head + question + answers, peer)
    print(f"{time.monotonic():.3f} {name} type {qtype} -> {an} answer(s)", flush=True)


def main():
    addr, delay = sys.argv[1], float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        threading.Thread(target=answer, args=(sock, data, peer, delay), daemon=True).start()


if __name__ == "__main__":
    main()
