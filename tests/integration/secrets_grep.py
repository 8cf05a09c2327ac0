#!/usr/bin/env python3
"""The secrets grep: no token or password a test used may appear in plaintext
in a database, a log or a core file.

  secrets_grep.py check DIR NAME REPORT_DIR [SECRET...]
      Collects the secrets of one test run: every API or enroll token
      (cn?_ followed by 32+ base64url characters; the part after the prefix
      is what is searched, so a token logged without its prefix is found
      too) and every generated password ("password"/"httpPassword" fields)
      found in any file under DIR (API answers, config files, command
      output), plus the SECRETs given and the lines of DIR/.secrets. Then
      searches every database (*.db, *-wal, *-shm, *-journal, *.sqlite,
      the access logs *.db-log),
      log (*.log) and core file (core, core.*) under DIR for each of them.
      Writes REPORT_DIR/NAME.PID.report ("NAME SECRETS FILES HITS") and
      REPORT_DIR/NAME.PID.secrets (one per line, mode 0600) for the final
      summary. Prints one line per hit; exits 1 on any hit.
  secrets_grep.py summary REPORT_DIR [CORE_DIR...]
      Adds up every report of the run, searches the core files of each
      CORE_DIR (where crashed processes would leave them) for every secret
      collected, prints the totals; exits 1 on any hit, or when no secret
      was checked at all (a grep that checked nothing proves nothing).
"""
import glob
import os
import re
import sys

TOKEN = re.compile(rb"\bcn[a-z]_([A-Za-z0-9_-]{32,})")
PASSWORD = re.compile(rb'"(?:httpPassword|password)"\s*:\s*"([^"\\]{8,})"')
# Third-party data directories the tests create (PostgreSQL, MariaDB):
# large, and never written by Connect.
SKIP_DIRS = {"pg", "my", "www"}
MAX_FILE = 64 << 20


def files(top):
    for root, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for n in names:
            p = os.path.join(root, n)
            try:
                if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > MAX_FILE:
                    continue
            except OSError:
                continue
            yield p


def is_target(path):
    n = os.path.basename(path)
    return (n.endswith((".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".log",
                        ".db-log", ".db-log-wal", ".db-log-shm"))
            or n == "core" or n.startswith("core."))


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def harvest(top, extra):
    found = set(s.encode() for s in extra if len(s) >= 8)
    for p in files(top):
        data = read(p)
        for m in TOKEN.finditer(data):
            found.add(m.group(1))
        for m in PASSWORD.finditer(data):
            found.add(m.group(1))
    listed = os.path.join(top, ".secrets")
    for line in read(listed).splitlines():
        if len(line.strip()) >= 8:
            found.add(line.strip())
    return found


def search(paths, secrets):
    hits = []
    for p in paths:
        data = read(p)
        for s in secrets:
            if s in data:
                hits.append((p, s))
    return hits


def show(s):
    return s[:6].decode(errors="replace") + "..."


def check(top, name, report_dir, extra):
    secrets = harvest(top, extra)
    targets = [p for p in files(top) if is_target(p)]
    hits = search(targets, secrets)
    for p, s in hits:
        print(f"SECRET LEAK: {os.path.relpath(p, top)} contains a secret the test used ({show(s)})")
    print(f"secrets grep: {len(secrets)} secrets, {len(targets)} databases/logs/cores, {len(hits)} hits")
    os.makedirs(report_dir, exist_ok=True)
    base = os.path.join(report_dir, f"{name}.{os.getpid()}")
    with open(base + ".report", "w") as f:
        f.write(f"{name} {len(secrets)} {len(targets)} {len(hits)}\n")
    fd = os.open(base + ".secrets", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"".join(s + b"\n" for s in sorted(secrets)))
    os.close(fd)
    return 1 if hits else 0


def summary(report_dir, core_dirs):
    tests = secrets_n = files_n = hits_n = 0
    bad = []
    for p in sorted(glob.glob(os.path.join(report_dir, "*.report"))):
        for line in read(p).decode().splitlines():
            name, s, f, h = line.split()
            tests += 1
            secrets_n += int(s)
            files_n += int(f)
            hits_n += int(h)
            if int(h):
                bad.append(name)
    secrets = set()
    for p in glob.glob(os.path.join(report_dir, "*.secrets")):
        secrets.update(line for line in read(p).splitlines() if line)
    cores = []
    for d in core_dirs:
        cores += [p for p in glob.glob(os.path.join(d, "core")) + glob.glob(os.path.join(d, "core.*"))
                  if os.path.isfile(p)]
    core_hits = search(cores, secrets)
    for p, s in core_hits:
        print(f"SECRET LEAK: core file {p} contains a secret a test used ({show(s)})")
    print(f"secrets grep over the run: {tests} test runs, {len(secrets)} distinct secrets, "
          f"{files_n} databases/logs checked, {len(cores)} core files, {hits_n + len(core_hits)} hits")
    if bad:
        print("tests with leaks: " + " ".join(sorted(set(bad))))
    if hits_n or core_hits:
        return 1
    if not secrets:
        print("secrets grep: FAIL: no secret was collected; the grep checked nothing")
        return 1
    return 0


def main(a):
    if len(a) >= 4 and a[0] == "check":
        return check(a[1], a[2], a[3], a[4:])
    if len(a) >= 2 and a[0] == "summary":
        return summary(a[1], a[2:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
