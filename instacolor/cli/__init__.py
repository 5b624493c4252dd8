"""The ``instacolor`` command line (``instacolor colorize``, ``instacolor models``).

:mod:`~instacolor.cli.main` parses arguments and reports; the batch itself is the one
procedure of :mod:`instacolor.batch.run` (inputs, outputs, manifest, resume), run in
this process, a process pool, or Ray actors. The library never imports this package.
"""

from instacolor.cli.main import main

__all__ = ["main"]
