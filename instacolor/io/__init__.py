"""Image input and output at the edges of the pipeline.

The archival layer (:mod:`instacolor.io.archival`, :mod:`instacolor.io.archival_write`,
:mod:`instacolor.io.provenance`) reads JPEG, PNG and TIFF scans at full precision and
writes colorized results with their metadata and provenance.
"""

from instacolor.io.archival import (
    DEFAULT_COLOR_THRESHOLD,
    DEFAULT_MAX_PIXELS,
    ScanImage,
    read_scan,
    read_scan_pages,
    tone_deviation,
)
from instacolor.io.archival_write import write_colorized
from instacolor.io.provenance import Provenance, read_provenance, read_xmp

__all__ = [
    "DEFAULT_COLOR_THRESHOLD",
    "DEFAULT_MAX_PIXELS",
    "Provenance",
    "ScanImage",
    "read_provenance",
    "read_scan",
    "read_scan_pages",
    "read_xmp",
    "tone_deviation",
    "write_colorized",
]
