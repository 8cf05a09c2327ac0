"""The exception every call of this package raises."""
import re

# The CN_E* codes of <connect/cn_err.h> that callers branch on.
EINVAL = -1
EAUTH = -7
ESTATE = -9
ENOTFOUND = -10
EIO = -13
ETIMEOUT = -14
EAGAIN = -3

_FIELD = re.compile(r"^([A-Za-z][\w.\[\]-]*): (.+)$", re.S)


class ConnectError(Exception):
    """A failed call: `code` is the CN_E* code (negative), `name` its name
    ("invalid argument or malformed input", ...), `message` the line the
    library wrote, `status` the HTTP status when the hub answered (else
    None), `errors` the API's [{"param", "details"}, ...] list, and `field`
    and `details` its first entry (None when the hub named no field)."""

    def __init__(self, code, message, status=None, errors=None, name=None):
        self.code = code
        self.name = name
        self.message = message or ""
        self.status = status
        self.errors = list(errors or [])
        if not self.errors and code == EINVAL:
            # Only the line survived (the tunnel's start): "param: details".
            m = _FIELD.match(self.message)
            if m and ";" not in self.message:
                self.errors = [{"param": m.group(1), "details": m.group(2)}]
        first = self.errors[0] if self.errors else {}
        self.field = first.get("param") or None
        self.details = first.get("details") or None
        super().__init__(self.message or name or f"error {code}")
