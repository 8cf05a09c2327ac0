#!/usr/bin/env python3
"""Checks a man page against the help its binary prints (standard library
only), for tests/integration/test_man_pages.sh.

  man_check.py PAGE BINARY
      The commands `BINARY --help` lists are exactly the page's command
      subsections (".SS" in COMMANDS, named "PROG COMMAND ..."). For each
      command, every option `BINARY COMMAND --help` prints (in its usage
      line or its option list; -h/--help aside) is defined in the command's
      subsection or in GLOBAL OPTIONS, and every option the subsection
      defines is one the command prints. Every GLOBAL OPTIONS entry is an
      option some command prints, and every global option `BINARY --help`
      lists is in GLOBAL OPTIONS. An option is defined by a ".TP" entry
      whose tag line is .B/.BI/.BR starting with it.
Exit status 0 when all holds, 1 with one line per problem otherwise.
"""
import re
import subprocess
import sys

OPT = re.compile(r"--[a-z0-9][a-z0-9-]*")


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit(f"'{' '.join(args)}' exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def listed_commands(top):
    """Commands of a `--help` listing: 2-space indented lines after "commands:"."""
    out, on = [], False
    for line in top.splitlines():
        if line.strip() == "commands:":
            on = True
            continue
        if on:
            if not line.strip():
                break
            out.append(line.split()[0])
    return out


def listed_globals(top):
    out, on = set(), False
    for line in top.splitlines():
        if line.startswith("global options"):
            on = True
            continue
        if on and re.match(r"^\s+--", line):
            out.add(OPT.match(line.strip()).group(0))
    return out


def help_options(text):
    lines = text.splitlines()
    opts = set(OPT.findall(lines[0])) if lines and lines[0].startswith("usage:") else set()
    for line in lines[1:]:
        m = re.match(r"^\s+(?:-h, )?(--[a-z0-9][a-z0-9-]*)", line)
        if m:
            opts.add(m.group(1))
    opts.discard("--help")
    return opts


def unroff(s):
    return s.replace("\\-", "-").replace("\\e", "\\").replace('"', "").strip()


def parse_page(path):
    """{section: [lines]}, {command: set(options)}, set(global options)."""
    sections, cur = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".SH "):
                cur = unroff(line[4:])
                sections[cur] = []
            elif cur:
                sections[cur].append(line)

    def defined(lines):
        opts = set()
        for i, line in enumerate(lines[:-1]):
            if line.strip() == ".TP":
                tag = lines[i + 1]
                m = re.match(r"^\.(?:B|BI|BR)\s+(.*)$", tag)
                if m:
                    first = unroff(m.group(1)).split()[0] if unroff(m.group(1)) else ""
                    if first.startswith("--"):
                        opts.add(first.rstrip(","))
                    elif first == "-h," or first == "-h":
                        pass
        return opts

    commands, name, buf = {}, None, []
    for line in sections.get("COMMANDS", []) + [".SS END"]:
        if line.startswith(".SS "):
            if name:
                commands[name] = defined(buf)
            words = unroff(line[4:]).split()
            name = words[1] if len(words) > 1 else None
            buf = []
            if line == ".SS END":
                break
        else:
            buf.append(line)
    return sections, commands, defined(sections.get("GLOBAL OPTIONS", []))


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    page, binary = argv[1], argv[2]
    errs = []
    sections, man_cmds, man_globals = parse_page(page)
    if "COMMANDS" not in sections:
        errs.append(f"{page}: no COMMANDS section")
    top = run([binary, "--help"])
    cmds = listed_commands(top)
    if not cmds:
        errs.append(f"'{binary} --help' lists no command")
    for c in cmds:
        if c not in man_cmds:
            errs.append(f"{page}: command {c} ('{binary} --help') has no subsection")
    for c in man_cmds:
        if c not in cmds:
            errs.append(f"{page}: subsection for command {c}, which '{binary} --help' does not list")
    printed_anywhere = set()
    for c in cmds:
        opts = help_options(run([binary, c, "--help"]))
        printed_anywhere |= opts
        if c not in man_cmds:
            continue
        for o in sorted(opts - man_cmds[c] - man_globals):
            errs.append(f"{page}: {c}: option {o} ('{binary} {c} --help') is not documented")
        for o in sorted(man_cmds[c] - opts):
            errs.append(f"{page}: {c}: option {o} is documented but '{binary} {c} --help' does not print it")
    for o in sorted(man_globals - printed_anywhere):
        errs.append(f"{page}: global option {o} is printed by no command's --help")
    for o in sorted(listed_globals(top) - man_globals):
        errs.append(f"{page}: global option {o} ('{binary} --help') is not in GLOBAL OPTIONS")
    for e in errs:
        print(e)
    n = sum(len(v) for v in man_cmds.values()) + len(man_globals)
    if not errs:
        print(f"{page}: {len(man_cmds)} commands, {n} option entries agree with {binary} --help")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
