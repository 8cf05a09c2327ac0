"""An HTTP/1.1 target that counts its connections, for the HTTP edge's
upstream keep-alive pool (test_http_pool.sh).

usage: pooltarget.py PORT DIR [--close] [--idle-close MS] [--drop-second]

Every accepted connection appends a line to DIR/conns; every request to
DIR/requests ("METHOD PATH CONN_NO"); a connection's end to DIR/closed.
  --close        answer every request with Connection: close and close
  --idle-close   close a keep-alive connection idle for MS milliseconds
  --drop-second  close a connection, unanswered, when its second request
                 arrives (the pool's race, made certain: the target closed
                 an idle connection just as a request went out on it)
Paths: /slow?ms=N answers after N ms; anything else answers "ok PATH".
"""
import os
import select
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
DIR = sys.argv[2]
CLOSE = "--close" in sys.argv
DROP_SECOND = "--drop-second" in sys.argv
IDLE_MS = int(sys.argv[sys.argv.index("--idle-close") + 1]) if "--idle-close" in sys.argv else 0
lock = threading.Lock()
nconns = 0


def log(name, line):
    with lock:
        with open(os.path.join(DIR, name), "a") as f:
            f.write(line + "\n")


def serve(sock, no):
    buf = b""
    served = 0
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                if served and IDLE_MS:
                    r, _, _ = select.select([sock], [], [], IDLE_MS / 1000.0)
                    if not r:
                        return  # idle too long: close
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for l in lines[1:]:
                k, v = l.split(":", 1)
                if k.strip().lower() == "content-length":
                    length = int(v)
            while len(buf) < length:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            if DROP_SECOND and served == 1:
                log("dropped", "%s %s %d" % (method, path, no))
                return
            served += 1
            log("requests", "%s %s %d %d" % (method, path, no, len(body)))
            if path.startswith("/slow"):
                time.sleep(int(path.split("ms=")[1]) / 1000.0)
            out = ("ok %s\n" % path).encode()
            hdrs = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Conn: %d\r\n" % (len(out), no)
            if CLOSE:
                hdrs += "Connection: close\r\n"
            sock.sendall((hdrs + "\r\n").encode() + (b"" if method == "HEAD" else out))
            if CLOSE:
                return
    except OSError:
        pass
    finally:
        sock.close()
        log("closed", str(no))


def main():
    global nconns
    for name in ("conns", "requests", "closed", "dropped"):
        open(os.path.join(DIR, name), "w").close()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", PORT))
    ls.listen(1024)  # test_http_pool_link.sh: 600 connections at once
    open(os.path.join(DIR, "ready"), "w").close()  # no probe connection is counted
    while True:
        s, _ = ls.accept()
        nconns += 1
        log("conns", str(nconns))
        threading.Thread(target=serve, args=(s, nconns), daemon=True).start()


main()
