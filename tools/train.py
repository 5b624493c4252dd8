"""``python tools/train.py ARGS`` is ``instacolor train ARGS`` (see ``instacolor train --help``)."""

import sys

from instacolor.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
