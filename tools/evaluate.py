"""``python tools/evaluate.py ARGS`` is ``instacolor evaluate ARGS`` (see ``-h``)."""

import sys

from instacolor.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
