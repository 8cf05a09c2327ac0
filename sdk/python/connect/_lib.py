"""Loading libconnect (and jansson, whose values its REST client speaks) with
ctypes, and the C declarations this package uses. Nothing here is public.

The library is found as CONNECT_LIBRARY names it (a path), else as the
dynamic linker finds libconnect.so.0 (LD_LIBRARY_PATH, the ld.so cache),
else through ctypes.util.find_library. Every call below releases the GIL
(ctypes.CDLL), so a tunnel's thread may run Python callbacks while the
caller waits in cn_tunnel_start() or cn_tunnel_stop()."""
import ctypes
import ctypes.util
import os

from .errors import ConnectError

_lib = None
_jansson = None
_libc = None

# <jansson.h> flags.
_JSON_DECODE_ANY = 0x4
_JSON_COMPACT = 0x20
_JSON_ENCODE_ANY = 0x200

STATUS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class TunnelOptions(ctypes.Structure):
    """struct cn_tunnel_options (<connect/tunnel.h>), field for field."""

    _fields_ = [
        ("local_port", ctypes.c_int),
        ("local_host", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("protocol", ctypes.c_char_p),
        ("http_user", ctypes.c_char_p),
        ("ttl", ctypes.c_uint),
        ("private_only", ctypes.c_bool),
        ("hub_url", ctypes.c_char_p),
        ("token", ctypes.c_char_p),
        ("config_path", ctypes.c_char_p),
        ("ca_file", ctypes.c_char_p),
        ("allow_insecure", ctypes.c_bool),
        ("on_status", STATUS_FN),
        ("ctx", ctypes.c_void_p),
    ]


class _JsonHead(ctypes.Structure):
    """The head of jansson's json_t: json_decref() is an inline function, so
    the reference count is dropped here the way <jansson.h> does it."""

    _fields_ = [("type", ctypes.c_int), ("refcount", ctypes.c_size_t)]


def _open(names):
    last = None
    for name in names:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            last = e
    raise OSError(f"cannot load {names[0] or names[1]}: {last}")


def _declare(lib):
    c_int, c_uint, c_char_p, c_void_p, c_size_t = (
        ctypes.c_int, ctypes.c_uint, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
    err = (c_char_p, c_size_t)
    sigs = {
        "cn_strerror": (c_char_p, [c_int]),
        "cn_tunnel_new": (c_void_p, [ctypes.POINTER(TunnelOptions), *err]),
        "cn_tunnel_start": (c_int, [c_void_p, c_uint, *err]),
        "cn_tunnel_stop": (c_int, [c_void_p, *err]),
        "cn_tunnel_free": (None, [c_void_p]),
        "cn_tunnel_status": (c_int, [c_void_p]),
        "cn_tunnel_status_name": (c_char_p, [c_int]),
        "cn_tunnel_url": (c_char_p, [c_void_p]),
        "cn_tunnel_id": (c_char_p, [c_void_p]),
        "cn_tunnel_hub_port": (c_int, [c_void_p]),
        "cn_tunnel_connection_string": (c_char_p, [c_void_p]),
        "cn_tunnel_http_password": (c_char_p, [c_void_p]),
        "cn_api_new": (c_void_p, [c_char_p, c_char_p, *err]),
        "cn_api_free": (None, [c_void_p]),
        "cn_api_set_timeout": (None, [c_void_p, c_uint]),
        "cn_api_set_ca_file": (c_int, [c_void_p, c_char_p, *err]),
        "cn_api_set_allow_insecure": (None, [c_void_p, ctypes.c_bool]),
        "cn_api_call": (c_int, [c_void_p, c_char_p, c_char_p, c_void_p, ctypes.POINTER(c_int),
                                ctypes.POINTER(c_void_p), *err]),
        "cn_api_escape": (c_int, [c_char_p, c_char_p, c_size_t]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


def lib():
    """libconnect, loaded once (OSError when it cannot be found)."""
    global _lib, _jansson, _libc
    if _lib is None:
        found = ctypes.util.find_library("connect")
        _lib_ = _open([os.environ.get("CONNECT_LIBRARY"), "libconnect.so.0", found])
        _declare(_lib_)
        _jansson = _open(["libjansson.so.4", ctypes.util.find_library("jansson")])
        _jansson.json_loads.restype = ctypes.c_void_p
        _jansson.json_loads.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
        _jansson.json_dumps.restype = ctypes.c_void_p  # char *, freed with free()
        _jansson.json_dumps.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _jansson.json_delete.restype = None
        _jansson.json_delete.argtypes = [ctypes.c_void_p]
        _libc = ctypes.CDLL(None)
        _libc.free.argtypes = [ctypes.c_void_p]
        _libc.free.restype = None
        _lib = _lib_
    return _lib


def errbuf():
    return ctypes.create_string_buffer(1024)


def text(b):
    return b.decode("utf-8", "replace") if b is not None else None


def strerror(code):
    return text(lib().cn_strerror(code))


def json_from(value):
    """A Python value as a new json_t * (None for None)."""
    import json

    if value is None:
        return None
    lib()
    err = ctypes.create_string_buffer(256)  # json_error_t is smaller
    p = _jansson.json_loads(json.dumps(value).encode(), _JSON_DECODE_ANY, err)
    if not p:
        raise ConnectError(-1, "cannot encode the request body as JSON")
    return p


def json_take(p):
    """The Python value of a json_t * the caller owns, dropping that reference."""
    import json

    if not p:
        return None
    s = _jansson.json_dumps(p, _JSON_ENCODE_ANY | _JSON_COMPACT)
    try:
        return json.loads(ctypes.string_at(s).decode()) if s else None
    finally:
        if s:
            _libc.free(s)
        json_drop(p)


def json_drop(p):
    """json_decref() as <jansson.h> inlines it."""
    if not p:
        return
    head = _JsonHead.from_address(p)
    if head.refcount == ctypes.c_size_t(-1).value:
        return
    head.refcount -= 1
    if head.refcount == 0:
        _jansson.json_delete(p)
