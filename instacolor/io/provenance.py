"""Compatibility path: provenance now lives in :mod:`instacolor.io.archival.provenance`.

Import from :mod:`instacolor.io.archival` (``from instacolor.io.archival import
Provenance, read_provenance``); this module only re-exports the names for code written
before the package existed.
"""

from instacolor.io.archival.provenance import (
    DIGITAL_SOURCE_TYPE,
    XMP_NAMESPACE,
    Provenance,
    parse_provenance,
    provenance_xmp,
    read_provenance,
    read_xmp,
)

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "XMP_NAMESPACE",
    "Provenance",
    "parse_provenance",
    "provenance_xmp",
    "read_provenance",
    "read_xmp",
]
