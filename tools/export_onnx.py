"""``python tools/export_onnx.py ARGS`` is ``instacolor export ARGS`` (``instacolor export -h``)."""

import sys

from instacolor.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
