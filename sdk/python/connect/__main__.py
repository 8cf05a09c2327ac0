"""python3 -m connect --version"""
import sys

from . import __version__


def main(argv):
    if argv[1:] in (["--version"], ["-V"]):
        print(f"connect {__version__}")
        return 0
    print("usage: python3 -m connect --version\n"
          "The package is a library: see `pydoc connect` (Tunnel, Hub, ConnectError).",
          file=sys.stderr)
    return 2


sys.exit(main(sys.argv))
