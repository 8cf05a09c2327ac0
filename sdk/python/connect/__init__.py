"""Connect from Python: ctypes over the installed libconnect (no third-party
dependency).

    from connect import Tunnel, Hub, ConnectError

    with Tunnel(local_port=8000, ttl=3600) as t:     # creates, waits until active
        print(t.url, t.tunnel_id)                     # ... and deletes it on exit
        share = Hub().share(t.tunnel_id, expires_in="1h")
        print(share["shareUrl"])

Tunnel works with `with` and `async with`; Hub is a thin client for the
REST API (tunnels, shares, reach, events). Failures raise ConnectError with
the library's code and, from the hub, the API's field and message.
Credentials are the CLI's: CONNECT_HUB, CONNECT_TOKEN, CONNECT_CONFIG (the
file `connect enroll` writes). The library is found by the dynamic linker, or
at the path in CONNECT_LIBRARY."""
from .errors import ConnectError
from .hub import Hub
from .tunnel import Tunnel

__version__ = "0.1.0"
__all__ = ["Tunnel", "Hub", "ConnectError", "__version__"]
