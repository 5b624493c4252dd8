"""Archival scans in and colorized files out: JPEG, PNG and TIFF at full precision.

The one file reader of instacolor: :func:`~instacolor.colorize` given a path and the
``instacolor colorize`` command both read through :func:`read_scan` (ICC -> sRGB,
16-bit samples, EXIF orientation, first page of a multi-page TIFF, a pixel limit and
the colour test of :func:`is_color`). In-memory arrays and PIL images given to the
API are coerced in :mod:`instacolor.io.image` and meet the same colour test.

Modules, in pipeline order (imports go one way, down this list):

* :mod:`~instacolor.io.archival.decode`: file bytes -> pixels and metadata.
* :mod:`~instacolor.io.archival.color`: ICC -> sRGB, CIE L, the colour test.
* :mod:`~instacolor.io.archival.read`: :class:`ScanImage`, :func:`read_scan`,
  :func:`read_scan_pages`.
* :mod:`~instacolor.io.archival.provenance`: the :class:`Provenance` record and its XMP.
* :mod:`~instacolor.io.archival.write`: :func:`write_colorized`.
"""

from instacolor.io.archival.color import (
    COLOR_QUANTILE,
    DEFAULT_COLOR_THRESHOLD,
    DEFAULT_COLOR_TOLERANCE,
    SRGB_PROFILE,
    is_color,
    tone_deviation,
)
from instacolor.io.archival.provenance import (
    DIGITAL_SOURCE_TYPE,
    XMP_NAMESPACE,
    Provenance,
    parse_provenance,
    provenance_xmp,
    read_provenance,
    read_xmp,
    settings_text,
)
from instacolor.io.archival.read import DEFAULT_MAX_PIXELS, ScanImage, read_scan, read_scan_pages
from instacolor.io.archival.write import JPEG_MAX_SIDE, OUTPUT_FORMATS, write_colorized

__all__ = [
    "COLOR_QUANTILE",
    "DEFAULT_COLOR_THRESHOLD",
    "DEFAULT_COLOR_TOLERANCE",
    "DEFAULT_MAX_PIXELS",
    "DIGITAL_SOURCE_TYPE",
    "JPEG_MAX_SIDE",
    "OUTPUT_FORMATS",
    "SRGB_PROFILE",
    "XMP_NAMESPACE",
    "Provenance",
    "ScanImage",
    "is_color",
    "parse_provenance",
    "provenance_xmp",
    "read_provenance",
    "read_scan",
    "read_scan_pages",
    "read_xmp",
    "settings_text",
    "tone_deviation",
    "write_colorized",
]
