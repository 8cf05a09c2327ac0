"""Free loopback ports for the integration tests, below the kernel's
ephemeral range: a port bind(0) hands out is one the kernel also hands to
outgoing connections, and a concurrent test's client socket took such a port
before the server bound it (test_udp's dnsmasq).

usage: freeport.py N [FROM [BELOW]]
  prints a base port with N consecutive ports after it free for TCP and UDP
  alike (a UDP tunnel binds its hub port for both), taken from FROM (default
  20000) up to BELOW (default 65536) and below the ephemeral range.
  lib.sh: free_range N = freeport.py N; free_port = freeport.py 1 10000 20000.
"""
import random
import socket
import sys


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    n = int(sys.argv[1])
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    below = int(sys.argv[3]) if len(sys.argv) > 3 else 65536
    try:
        lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except OSError:
        lo = 32768
    top = max(min(lo, below), start + 2 * n) - n - 1
    for _ in range(200):
        base = random.randint(start, top)
        socks = []
        try:
            for p in range(base, base + n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        print(base)
        return
    sys.exit("freeport: no %d free ports in a row" % n)


if __name__ == "__main__":
    main()
