#!/usr/bin/env python3
"""A webhook receiver for the integration tests: a real HTTP server that
checks each delivery's X-Connect-Signature with the verify() function
docs/guide.md gives users, run from the page itself so that a wrong example
fails the test (HMAC-SHA256 over "TIMESTAMP.BODY", constant-time
comparison, timestamp within 5 minutes), records every request as one JSON line, and
answers 204 (--mode ok) or 500 (--mode fail), or logs and never answers
(--mode hang). A request whose signature does
not verify is answered 401 and recorded with "valid": false.

usage: webhook_receiver.py --port N --secret-file F --log F [--mode ok|fail|hang]
The secret file is read on every request (the test writes it once the hub
has shown the secret)."""
import argparse
import json
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def guide_verify():
    """verify(secret, header, body) as the python block of docs/guide.md
    that defines it has it."""
    guide = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "guide.md")
    blocks = re.findall(r"```python\n(.*?)```", open(guide).read(), re.S)
    code = [b for b in blocks if "def verify(" in b]
    if len(code) != 1:
        sys.exit("webhook_receiver: docs/guide.md has %d python blocks defining verify()" % len(code))
    scope = {}
    exec(code[0], scope)
    return scope["verify"]


verify = guide_verify()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", choices=["ok", "fail", "hang"], default="ok")
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            try:
                with open(args.secret_file) as f:
                    secret = f.read().strip()
            except OSError:
                secret = ""
            valid = bool(secret) and verify(secret, self.headers.get("X-Connect-Signature", ""), body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            status = 401 if not valid else (204 if args.mode == "ok" else 500)
            rec = {
                "valid": valid,
                "status": status,
                "path": self.path,
                "delivery": self.headers.get("X-Connect-Delivery"),
                "header_event": self.headers.get("X-Connect-Event"),
                "webhook": self.headers.get("X-Connect-Webhook"),
                "type": event.get("type"),
                "eventId": event.get("id"),
                "workspaceId": event.get("workspaceId"),
                "shareId": (event.get("data") or {}).get("shareId"),
            }
            with open(args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            if args.mode == "hang":
                time.sleep(60)  # the test stops the receiver long before
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
