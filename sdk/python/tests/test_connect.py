"""The Python binding against a real hub and a real `python3 -m http.server`
(tests/integration/test_python.sh sets them up and passes, in the
environment: CONNECT_CONFIG, the enrolled agent's config; CN_TEST_HTTP_PORT,
the web server serving "hello"; CN_TEST_EDGE_PORT, the hub's HTTP edge)."""
import asyncio
import base64
import http.client
import os
import subprocess
import sys
import urllib.parse

import pytest

import connect
from connect import ConnectError, Hub, Tunnel

HTTP_PORT = int(os.environ["CN_TEST_HTTP_PORT"])
EDGE_PORT = int(os.environ["CN_TEST_EDGE_PORT"])


def get(url, user=None, password=None, method="GET"):
    """(status, body) of one request, errors included. NAME.localhost is
    sent to 127.0.0.1 with its Host header: curl resolves *.localhost by
    itself, Python's resolver does not."""
    u = urllib.parse.urlsplit(url)
    headers = {"Host": u.netloc}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    host = "127.0.0.1" if u.hostname.endswith(".localhost") else u.hostname
    c = http.client.HTTPConnection(host, u.port or 80, timeout=10)
    try:
        c.request(method, u.path or "/", headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def ids(hub):
    return {t["id"] for t in hub.tunnels()}


def test_version():
    out = subprocess.run([sys.executable, "-m", "connect", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == f"connect {connect.__version__}\n"
    assert connect.__version__ == "0.1.0"


def test_with_exposes_and_deletes():
    hub = Hub()
    with Tunnel(local_port=HTTP_PORT) as t:
        assert t.status == "active"
        assert t.url.startswith("http://") and t.url.endswith(f".localhost:{EDGE_PORT}/")
        assert t.hub_port is None
        assert t.http_password is None
        assert get(t.url) == (200, "hello\n")
        assert t.tunnel_id in ids(hub)
        tid = t.tunnel_id
    assert tid not in ids(hub), "the tunnel outlived its with block"
    assert t.status == "idle" and t.url is None


def test_name_basic_auth_ttl_and_status_callbacks():
    seen = []
    t = Tunnel(local_port=HTTP_PORT, name="pyweb", http_user="alice", ttl=600,
               on_status=lambda s, why: seen.append(s))
    try:
        t.start(timeout=20)
        assert t.url == f"http://pyweb.localhost:{EDGE_PORT}/"
        assert len(t.http_password or "") >= 8
        assert get(t.url)[0] == 401
        assert get(t.url, "alice", t.http_password) == (200, "hello\n")
        info = Hub().tunnel(t.tunnel_id)
        assert info["name"] == "pyweb" and info["expiresAt"]
        assert seen[:2] == ["connecting", "active"], seen
    finally:
        t.stop()
        t.close()


def test_async_with():
    async def main():
        async with Tunnel(local_port=HTTP_PORT, name="pyasync") as t:
            loop = asyncio.get_running_loop()
            status, body = await loop.run_in_executor(None, get, t.url)
            return t.tunnel_id, status, body

    tid, status, body = asyncio.run(main())
    assert (status, body) == (200, "hello\n")
    assert tid not in ids(Hub())


def test_api_errors_carry_field_and_message():
    with pytest.raises(ConnectError) as e:
        Tunnel(local_port=HTTP_PORT, protocol="carrier-pigeon").start(timeout=10)
    assert e.value.code == connect.errors.EINVAL
    assert e.value.field == "protocol"
    assert "must be one of" in e.value.details

    hub = Hub()
    with pytest.raises(ConnectError) as e:
        hub.create_tunnel(target="127.0.0.1:0", agentId="not-a-uuid")
    assert e.value.status == 422
    assert {x["param"] for x in e.value.errors} >= {"target"}
    assert e.value.field in {x["param"] for x in e.value.errors}

    with pytest.raises(ConnectError) as e:
        hub.tunnel("00000000-0000-4000-8000-000000000000")
    assert e.value.status == 404 and e.value.code == connect.errors.ENOTFOUND

    with pytest.raises(ConnectError) as e:
        Tunnel(local_port=0)
    assert "local_port" in e.value.message


def test_hub_shares_events_and_reach():
    hub = Hub()
    with Tunnel(local_port=HTTP_PORT, name="pyshare") as t:
        share = hub.share(t.tunnel_id, expires_in="1h", methods=["GET"], name="ci")
        assert get(share["shareUrl"]) == (200, "hello\n")
        assert get(share["shareUrl"], method="POST")[0] == 405
        assert share["id"] in {s["id"] for s in hub.shares(t.tunnel_id)}
        hub.revoke_share(share["id"])
        assert get(share["shareUrl"])[0] == 410
        types = {e["type"] for e in hub.events(tunnel_id=t.tunnel_id)}
        assert {"tunnel.created", "share.created", "share.revoked"} <= types, types
        tid = t.tunnel_id
    assert "tunnel.deleted" in {e["type"] for e in hub.events(tunnel_id=tid)}

    with Tunnel(local_port=HTTP_PORT, name="pytcp", protocol="tcp") as t:
        assert t.hub_port and t.url == f"tcp://localhost:{t.hub_port}"
        me = hub.tunnel(t.tunnel_id)["agentId"]
        r = hub.reach(t.tunnel_id, me)
        # The default local port is the target's + 10000, or 0 (any) past 65535:
        # HTTP_PORT is picked at random, so both happen.
        want = HTTP_PORT + 10000 if HTTP_PORT + 10000 <= 65535 else 0
        assert r["localPort"] == want and r["connectionString"], r
