"""connect.Hub: a thin client for the hub's REST API (docs/api.md) over
libconnect's cn_api: the same transport rules as the CLI (https verified
against the system CAs or ca_file; plain http only to loopback unless
allow_insecure; redirects never followed, so the token stays with its hub).

    hub = Hub()                       # CONNECT_HUB / CONNECT_TOKEN, else the config file
    for t in hub.tunnels(): print(t["name"], t["status"])
    s = hub.share(tunnel_id, expires_in="1h", methods=["GET"])
    print(s["shareUrl"])

Answers are the API's JSON documents as Python values; a failed call raises
ConnectError with the HTTP status and the API's field and message. One Hub
may be shared between threads (calls take turns)."""
import ctypes
import json
import os
import threading

from . import _lib
from .errors import EINVAL, ConnectError


def _config_path(config):
    if config:
        return config
    if os.environ.get("CONNECT_CONFIG"):
        return os.environ["CONNECT_CONFIG"]
    return os.path.join(os.path.expanduser("~"), ".config", "connect", "config.json")


def _same_hub(a, b):
    return (a or "").rstrip("/").lower() == (b or "").rstrip("/").lower()


class Hub:
    """A client for the hub at `url` with API token `token`. Either, when
    not given, comes from CONNECT_HUB / CONNECT_TOKEN, else from the config
    file `connect enroll` wrote (config, else CONNECT_CONFIG, else
    ~/.config/connect/config.json); the file's token is used only for the
    file's own hub."""

    def __init__(self, url=None, token=None, *, config=None, ca_file=None, allow_insecure=False,
                 timeout=15.0):
        lib = _lib.lib()
        url = url or os.environ.get("CONNECT_HUB")
        token = token or os.environ.get("CONNECT_TOKEN")
        ca_file = ca_file or os.environ.get("CONNECT_CA_FILE")
        if not url or not token:
            try:
                with open(_config_path(config), encoding="utf-8") as f:
                    cfg = json.load(f)
            except (OSError, ValueError):
                cfg = {}
            if not url:
                url = cfg.get("hub")
            if not token and _same_hub(url, cfg.get("hub")):
                token = cfg.get("token")
                ca_file = ca_file or cfg.get("caFile")
        if not url:
            raise ConnectError(EINVAL, "no hub URL: pass url, set CONNECT_HUB, or run 'connect enroll'",
                               name=_lib.strerror(EINVAL))
        err = _lib.errbuf()
        self._api = lib.cn_api_new(url.encode(), (token or "").encode(), err, len(err))
        if not self._api:
            raise ConnectError(EINVAL, _lib.text(err.value), name=_lib.strerror(EINVAL))
        self.url = url
        self._mu = threading.Lock()
        lib.cn_api_set_timeout(self._api, max(1, int(timeout * 1000)))
        lib.cn_api_set_allow_insecure(self._api, bool(allow_insecure))
        if ca_file:
            rc = lib.cn_api_set_ca_file(self._api, ca_file.encode(), err, len(err))
            if rc < 0:
                self.close()
                raise ConnectError(rc, _lib.text(err.value), name=_lib.strerror(rc))

    def close(self):
        api, self._api = getattr(self, "_api", None), None
        if api:
            _lib.lib().cn_api_free(api)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- the one call --------------------------------------------------------

    def call(self, method, path, body=None):
        """One request: `path` below the hub URL ("/api/v1/tunnels"), `body`
        a JSON-able value. Returns the answer's JSON (None when empty)."""
        lib = _lib.lib()
        if not self._api:
            raise ConnectError(-9, "the client is closed", name=_lib.strerror(-9))
        req = _lib.json_from(body)
        status = ctypes.c_int(0)
        resp = ctypes.c_void_p(None)
        err = _lib.errbuf()
        try:
            with self._mu:
                rc = lib.cn_api_call(self._api, method.encode(), path.encode(), req,
                                     ctypes.byref(status), ctypes.byref(resp), err, len(err))
        finally:
            _lib.json_drop(req)
        answer = _lib.json_take(resp.value)
        if rc < 0:
            errors = answer.get("errors") if isinstance(answer, dict) else None
            raise ConnectError(rc, _lib.text(err.value), status=status.value or None,
                               errors=errors if isinstance(errors, list) else None,
                               name=_lib.strerror(rc))
        return answer

    # ---- typed helpers -------------------------------------------------------

    def health(self):
        return self.call("GET", "/api/v1/health")

    def tunnels(self, agent_id=None, status=None):
        """The workspace's tunnels (a list of tunnel objects)."""
        return self.call("GET", "/api/v1/tunnels" + _query(agentId=agent_id, status=status))["tunnels"]

    def tunnel(self, tunnel_id):
        return self.call("GET", f"/api/v1/tunnels/{_seg(tunnel_id)}")

    def create_tunnel(self, **spec):
        """POST /api/v1/tunnels with the API's fields (target, agentId, name,
        protocol, public, ttl, httpUser, ...)."""
        return self.call("POST", "/api/v1/tunnels", spec)

    def update_tunnel(self, tunnel_id, **changes):
        """PATCH: name, status ("active"/"paused"), metadata."""
        return self.call("PATCH", f"/api/v1/tunnels/{_seg(tunnel_id)}", changes)

    def delete_tunnel(self, tunnel_id):
        return self.call("DELETE", f"/api/v1/tunnels/{_seg(tunnel_id)}")

    def share(self, tunnel_id, expires_in="24h", *, name=None, description=None, methods=None,
              paths=None, rate_limit=None, http_user=None):
        """Shares an HTTP tunnel: the share object with its shareUrl (shown
        once)."""
        body = {"expiresIn": expires_in}
        for key, value in (("name", name), ("description", description),
                           ("allowedMethods", methods), ("allowedPaths", paths),
                           ("rateLimitPerMinute", rate_limit), ("httpUser", http_user)):
            if value is not None:
                body[key] = value
        return self.call("POST", f"/api/v1/tunnels/{_seg(tunnel_id)}/shares", body)

    def shares(self, tunnel_id=None):
        """The tunnel's shares, or the workspace's."""
        path = f"/api/v1/tunnels/{_seg(tunnel_id)}/shares" if tunnel_id else "/api/v1/shares"
        return self.call("GET", path)["shares"]

    def revoke_share(self, share_id):
        return self.call("DELETE", f"/api/v1/shares/{_seg(share_id)}")

    def share_logs(self, share_id, limit=None):
        return self.call("GET", f"/api/v1/shares/{_seg(share_id)}/logs" + _query(limit=limit))["logs"]

    def reach(self, tunnel_id, agent_id, local_port=None):
        """POST /api/v1/tunnels/{id}/connect: {localPort, connectionString}
        for the receiving agent (which serves it with `connect agent`)."""
        body = {"agentId": agent_id}
        if local_port is not None:
            body["localPort"] = int(local_port)
        return self.call("POST", f"/api/v1/tunnels/{_seg(tunnel_id)}/connect", body)

    def events(self, tunnel_id=None, since=None):
        """Lifecycle events, oldest first."""
        return self.call("GET", "/api/v1/events" + _query(tunnelId=tunnel_id, since=since))["events"]


def _seg(value):
    """A path segment, percent-encoded by libconnect."""
    out = ctypes.create_string_buffer(1024)
    if _lib.lib().cn_api_escape(str(value).encode(), out, len(out)) < 0:
        raise ConnectError(EINVAL, "identifier too long", name=_lib.strerror(EINVAL))
    return out.value.decode()


def _query(**params):
    parts = [f"{k}={_seg(v)}" for k, v in params.items() if v is not None]
    return "?" + "&".join(parts) if parts else ""
