#!/usr/bin/env python3
"""Peers for the plugin tests (tests/integration/test_plugins.sh). Every
mode is bounded in time and bytes and listens on 127.0.0.1 only.

  plugin_peers.py record PORT FILE [IDLE_MS]  accept a connection, save what the
                                              client sends first (until IDLE_MS of
                                              silence, 64 KiB or EOF), then close
  plugin_peers.py greet PORT FILE             a server that sends FILE's bytes on
                                              every connection (a banner), then
                                              reads and discards until the client
                                              closes
  plugin_peers.py silent PORT                 a server that accepts and never answers
  plugin_peers.py mongo PORT                  a stand-in mongod: answers every OP_MSG
                                              or OP_QUERY command with a hello reply
                                              built per the OP_MSG and BSON specs
  plugin_peers.py hello-reply REQUEST_ID      print that constructed reply as hex
"""
import socket
import struct
import sys
import threading
import time

LIMIT = 65536
LIFETIME = 600  # seconds: a forgotten peer goes away by itself


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    s.settimeout(LIFETIME)
    return s


def record(port, path, idle_ms=700):
    """A connection that closes without sending anything (a readiness check
    such as lib.sh's wait_port) is not recorded: wait for the next one."""
    s = listen(port)
    while True:
        conn, _ = s.accept()
        conn.settimeout(idle_ms / 1000.0)
        data, eof = b"", False
        try:
            while len(data) < LIMIT:
                c = conn.recv(LIMIT - len(data))
                if not c:
                    eof = True
                    break
                data += c
        except socket.timeout:
            pass
        conn.close()
        if data or not eof:
            break
    with open(path, "wb") as f:
        f.write(data)


def serve(port, handler):
    s = listen(port)
    end = time.time() + LIFETIME
    while time.time() < end:
        try:
            conn, _ = s.accept()
        except socket.timeout:
            return
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def drain(conn):
    conn.settimeout(30)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    conn.close()


# ---- BSON and OP_MSG, just enough for a hello reply --------------------------

def cstring(s):
    return s.encode() + b"\0"


def bson(fields):
    """fields: list of (name, value); value: bool, int (int32), float, str,
    list of str (array) or dict (document)."""
    body = b""
    for name, v in fields:
        if isinstance(v, bool):
            body += b"\x08" + cstring(name) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x10" + cstring(name) + struct.pack("<i", v)
        elif isinstance(v, float):
            body += b"\x01" + cstring(name) + struct.pack("<d", v)
        elif isinstance(v, str):
            e = v.encode()
            body += b"\x02" + cstring(name) + struct.pack("<i", len(e) + 1) + e + b"\0"
        elif isinstance(v, list):
            body += b"\x04" + cstring(name) + bson([(str(i), x) for i, x in enumerate(v)])
        elif isinstance(v, dict):
            body += b"\x03" + cstring(name) + bson(list(v.items()))
        elif isinstance(v, tuple) and v[0] == "date":
            body += b"\x09" + cstring(name) + struct.pack("<q", v[1])
        else:
            raise TypeError(v)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def hello_doc():
    # The fields a standalone mongod 7.0 answers hello with (documented in
    # the MongoDB manual's hello page); values are plausible, not recorded.
    return bson([
        ("isWritablePrimary", True),
        ("topologyVersion", {"counter": 0}),
        ("maxBsonObjectSize", 16777216),
        ("maxMessageSizeBytes", 48000000),
        ("maxWriteBatchSize", 100000),
        ("localTime", ("date", 1700000000000)),
        ("logicalSessionTimeoutMinutes", 30),
        ("connectionId", 1),
        ("minWireVersion", 0),
        ("maxWireVersion", 21),
        ("readOnly", False),
        ("ok", 1.0),
    ])


def op_msg_reply(request_id, doc):
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 0x5eed, request_id, 2013) + body


def op_reply(request_id, doc):
    body = struct.pack("<iqii", 8, 0, 0, 1) + doc  # AwaitCapable, cursor 0, from 0, 1 doc
    return struct.pack("<iiii", 16 + len(body), 0x5eed, request_id, 1) + body


def mongo_conn(conn):
    conn.settimeout(30)
    buf = b""
    try:
        while True:
            c = conn.recv(LIMIT)
            if not c:
                break
            buf += c
            while len(buf) >= 16:
                mlen, rid, _, op = struct.unpack("<iiii", buf[:16])
                if mlen < 16 or mlen > LIMIT:
                    conn.close()
                    return
                if len(buf) < mlen:
                    break
                buf = buf[mlen:]
                if op == 2013:
                    conn.sendall(op_msg_reply(rid, hello_doc()))
                elif op == 2004:
                    conn.sendall(op_reply(rid, hello_doc()))
                else:
                    conn.close()
                    return
    except OSError:
        pass
    conn.close()


def main():
    mode = sys.argv[1]
    if mode == "record":
        record(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 700)
    elif mode == "greet":
        banner = open(sys.argv[3], "rb").read()

        def greet(conn):
            try:
                conn.sendall(banner)
            except OSError:
                pass
            drain(conn)
        serve(int(sys.argv[2]), greet)
    elif mode == "silent":
        serve(int(sys.argv[2]), drain)
    elif mode == "mongo":
        serve(int(sys.argv[2]), mongo_conn)
    elif mode == "hello-reply":
        print(op_msg_reply(int(sys.argv[2], 0), hello_doc()).hex())
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
