#!/usr/bin/env python3
"""Load and audit for test_hub_crash.sh: API writes against a hub that gets
killed, then checks of what the database kept.

  crashtool.py write URL TOKEN AGENT_ID JOURNAL PREFIX THREADS
      Each thread creates, renames and deletes its own tunnels until the hub
      goes away. Before a request it appends "begin OP ID NAME" to JOURNAL,
      after a 2xx answer "ack OP ID NAME" (the write was acknowledged).
  crashtool.py check DB JOURNAL
      With the hub stopped: PRAGMA integrity_check is ok, every acknowledged
      write is in the database, and every stored change has its event
      (tunnel.created for every tunnel, tunnel.updated for every rename,
      tunnel.deleted for every tunnel that is gone). Prints one line of
      counts; exits 1 naming every violation.
"""
import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import urllib.parse


def write(url, token, agent, journal, prefix, nthreads):
    u = urllib.parse.urlparse(url)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def log(*fields):
        # One write() per line on an O_APPEND file: lines never interleave.
        os.write(fd, (" ".join(fields) + "\n").encode())

    def worker(n):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        mine = {}  # id -> name
        seq = 0
        rnd = random.Random()
        while True:
            seq += 1
            roll = rnd.random()
            if not mine or (len(mine) < 6 and roll < 0.45):
                op, tid, name = "create", "-", "%st%dn%d" % (prefix, n, seq)
                method, path = "POST", "/api/v1/tunnels"
                body = {"target": "127.0.0.1:9", "agentId": agent, "name": name,
                        "protocol": "tcp"}
            elif roll < 0.75:
                tid = rnd.choice(sorted(mine))
                op, name = "rename", "%st%dr%d" % (prefix, n, seq)
                method, path, body = "PATCH", "/api/v1/tunnels/" + tid, {"name": name}
            else:
                tid = rnd.choice(sorted(mine))
                op, name = "delete", mine[tid]
                method, path, body = "DELETE", "/api/v1/tunnels/" + tid, None
            log("begin", op, tid, name)
            try:
                conn.request(method, path, json.dumps(body) if body else None, hdr)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                return  # the hub is gone: this write stays unacknowledged
            if resp.status // 100 != 2:
                log("refused", op, tid, str(resp.status))
                continue
            if op == "create":
                tid = json.loads(data)["id"]
                mine[tid] = name
            elif op == "rename":
                mine[tid] = name
            else:
                del mine[tid]
            log("ack", op, tid, name)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check(db, journal):
    bad = []
    # Read-write: opening replays the WAL the killed hub left, as the hub's
    # next start would.
    con = sqlite3.connect(db)
    ic = con.execute("PRAGMA integrity_check").fetchall()
    if ic != [("ok",)]:
        bad.append("integrity_check: %r" % (ic,))
    stored = dict(con.execute("SELECT id, name FROM tunnels"))
    created, deleted, updated_name = {}, set(), {}
    for typ, tid, data in con.execute(
            "SELECT type, tunnel_id, data FROM events WHERE type LIKE 'tunnel.%' ORDER BY id"):
        d = json.loads(data or "{}")
        if typ == "tunnel.created":
            created[tid] = d.get("name")
        elif typ == "tunnel.deleted":
            deleted.add(tid)
        elif typ == "tunnel.updated" and "name" in d:
            updated_name[tid] = d["name"]
    con.close()

    # Replay the journal: per tunnel, the last acknowledged state and the
    # write that was in flight when the hub died (if any).
    acked = {}    # id -> ("live", name) or ("deleted", name)
    pending = {}  # id -> (op, name) begun, not acknowledged
    ack_count = 0
    with open(journal) as f:
        for line in f:
            kind, op, tid, name = line.split()
            if kind == "begin" and tid != "-":
                pending[tid] = (op, name)
            elif kind == "refused":
                pending.pop(tid, None)
            elif kind == "ack":
                ack_count += 1
                pending.pop(tid, None)
                acked[tid] = ("deleted" if op == "delete" else "live", name)

    # No acknowledged write may be lost.
    for tid, (state, name) in acked.items():
        p = pending.get(tid)
        if state == "deleted":
            if tid in stored:
                bad.append("acknowledged delete of %s lost" % tid)
        elif tid not in stored:
            if not (p and p[0] == "delete"):
                bad.append("acknowledged tunnel %s (%s) lost" % (tid, name))
        elif stored[tid] != name and not (p and p[0] == "rename" and stored[tid] == p[1]):
            bad.append("tunnel %s is named %s, acknowledged %s" % (tid, stored[tid], name))

    # Every stored change has its event.
    for tid, name in stored.items():
        if tid not in created:
            bad.append("tunnel %s (%s) stored without tunnel.created" % (tid, name))
            continue
        if updated_name.get(tid, created[tid]) != name:
            bad.append("tunnel %s renamed to %s without tunnel.updated" % (tid, name))
        if tid in deleted:
            bad.append("tunnel %s stored but has tunnel.deleted" % tid)
    for tid in set(created) | set(acked):
        if tid not in stored and tid not in deleted:
            bad.append("tunnel %s gone without tunnel.deleted" % tid)

    print("tunnels %d, acknowledged writes %d, events: %d created %d deleted" %
          (len(stored), ack_count, len(created), len(deleted)))
    for b in bad[:20]:
        print("VIOLATION:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
