"""The ``instacolor`` command line (``instacolor colorize``, ``instacolor models``).

Layers: :mod:`~instacolor.cli.main` parses arguments and reports,
:mod:`~instacolor.cli.batch` finds inputs, maps outputs and keeps the manifest,
:mod:`~instacolor.cli.worker` colorizes one file. The library never imports this package.
"""

from instacolor.cli.main import main

__all__ = ["main"]
