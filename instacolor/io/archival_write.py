"""Compatibility path: :func:`write_colorized` now lives in :mod:`instacolor.io.archival`.

Import it from there (``from instacolor.io.archival import write_colorized``); this
module only re-exports it for code written before the package existed.
"""

from instacolor.io.archival.write import JPEG_MAX_SIDE, OUTPUT_FORMATS, write_colorized

__all__ = ["JPEG_MAX_SIDE", "OUTPUT_FORMATS", "write_colorized"]
