"""Image input and output at the edges of the pipeline.

The archival package (:mod:`instacolor.io.archival`) reads JPEG, PNG and TIFF scans at
full precision (the one file reader of the API and the CLI) and writes colorized
results with their metadata and provenance; :mod:`instacolor.io.image` coerces
in-memory arrays and PIL images; :mod:`instacolor.io.coco` reads COCO annotations.
"""

from instacolor.io.archival import (
    DEFAULT_COLOR_THRESHOLD,
    DEFAULT_MAX_PIXELS,
    Provenance,
    ScanImage,
    read_provenance,
    read_scan,
    read_scan_pages,
    read_xmp,
    tone_deviation,
    write_colorized,
)

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
