"""``python -m instacolor``: the ``instacolor`` command."""

from instacolor.cli import main

raise SystemExit(main())
