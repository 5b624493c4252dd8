"""The ``instacolor`` command line (``instacolor colorize``, ``instacolor models``).

:mod:`~instacolor.cli.main` parses arguments and reports; the batch itself is
:mod:`instacolor.batch` (inputs, outputs, manifest, the per-file worker), run in this
process, a process pool, or Ray actors (:mod:`instacolor.distributed`). The library
never imports this package.
"""

from instacolor.cli.main import main

__all__ = ["main"]
