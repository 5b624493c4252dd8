"""``python tools/tune_inference.py ARGS`` is ``instacolor tune ARGS`` (``instacolor tune -h``)."""

import sys

from instacolor.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
