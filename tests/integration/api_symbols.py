#!/usr/bin/env python3
"""Lists the functions the given libconnect headers export (declared
CN_EXTERN), one per line, sorted. Fails when an exported declaration has no
doc comment right above it: an export nobody documented is a leak too.

usage: api_symbols.py HEADER..."""
import re
import sys

DECL = re.compile(r"CN_EXTERN\b[^;{]*?\b([A-Za-z_]\w*)\s*\(")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def exports(path):
    text = open(path, encoding="utf-8").read()
    # Match on a copy with comments blanked (same offsets), so that prose
    # naming CN_EXTERN is not taken for a declaration.
    code = COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    names = []
    for m in DECL.finditer(code):
        if code.startswith("#define", code.rfind("\n", 0, m.start()) + 1):
            continue  # the macro's own definition
        before = text[: m.start()].rstrip()
        if not before.endswith("*/"):
            line = text.count("\n", 0, m.start()) + 1
            sys.exit(f"{path}:{line}: {m.group(1)} is exported without a doc comment")
        names.append(m.group(1))
    return names


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    names = sorted({n for path in sys.argv[1:] for n in exports(path)})
    if not names:
        sys.exit("no CN_EXTERN declaration found")
    print("\n".join(names))


if __name__ == "__main__":
    main()
