#!/usr/bin/env python3
"""A CI job's tunnel step: start the app under test, open a short-lived
tunnel to it, run a check through its public URL and through a read-only
share link (what an outside tester or a webhook sender would use), then
close everything, whatever happened. Exit status 0 when every check passed.

The job needs an enrolled agent (a config written once by `connect enroll`,
kept as a CI secret file) and libconnect with this package installed:

    # e.g. a GitHub Actions step
    - run: python3 examples/ci_tunnel.py
      env:
        CONNECT_CONFIG: ${{ runner.temp }}/connect.json   # from a secret
        CI_APP_DIR: ./public                                # what the app serves

The TTL bounds what a killed job leaves behind: the hub expires the tunnel
(and its shares stop answering) after CI_TUNNEL_TTL seconds even if this
script never reaches its cleanup. tests/integration/test_python.sh runs this
script against a real hub."""
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse

from connect import ConnectError, Hub, Tunnel


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, method="GET"):
    """(status, body). A NAME.localhost URL (a hub on this machine with its
    default public domain) is sent to 127.0.0.1 with its Host header:
    Python's resolver, unlike curl and browsers, does not map *.localhost."""
    u = urllib.parse.urlsplit(url)
    host = "127.0.0.1" if u.hostname.endswith(".localhost") else u.hostname
    conn = http.client.HTTPConnection(host, u.port or 80, timeout=10)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(host, u.port or 443, timeout=10)
    try:
        conn.request(method, u.path or "/", headers={"Host": u.netloc})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def start_app(directory):
    """The app under test: here python3's http.server on a free port."""
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                            "--directory", directory],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return app, port
        except OSError:
            time.sleep(0.05)
    app.terminate()
    raise RuntimeError("the app did not start")


def check(name, ok):
    print(f"{'ok  ' if ok else 'FAIL'} {name}", flush=True)
    return ok


def main():
    directory = os.environ.get("CI_APP_DIR", ".")
    ttl = int(os.environ.get("CI_TUNNEL_TTL", "900"))
    expected = open(os.path.join(directory, "index.html"), "rb").read()
    app, port = start_app(directory)
    passed = True
    try:
        with Tunnel(local_port=port, ttl=ttl) as tunnel:
            print(f"tunnel {tunnel.tunnel_id}: {tunnel.url}", flush=True)
            passed &= check("GET / through the public URL", fetch(tunnel.url) == (200, expected))
            hub = Hub()
            share = hub.share(tunnel.tunnel_id, expires_in="1h", methods=["GET"],
                              name="ci", description="CI smoke test")
            try:
                passed &= check("GET / through the share", fetch(share["shareUrl"]) == (200, expected))
                passed &= check("POST refused by the share (405)",
                                fetch(share["shareUrl"], "POST")[0] == 405)
            finally:
                hub.revoke_share(share["id"])
            passed &= check("the revoked share answers 410", fetch(share["shareUrl"])[0] == 410)
        # Leaving the with block deleted the tunnel on the hub.
    except ConnectError as e:
        where = f" ({e.field}: {e.details})" if e.field else ""
        print(f"FAIL connect: {e.message}{where}", file=sys.stderr)
        passed = False
    finally:
        app.terminate()
        app.wait(timeout=10)
    print("all checks passed" if passed else "some checks failed", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
