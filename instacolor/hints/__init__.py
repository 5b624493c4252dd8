"""Colour hints: what the caller knows about the colours of an image, and how it acts.

* :mod:`~instacolor.hints.values` - :class:`Lab`, :class:`HintPoint`, :class:`Hints`;
* :mod:`~instacolor.hints.files` - hints files (JSON, JSON lines, ``NAME.hints.json``);
* :mod:`~instacolor.hints.cells` - checking hints against an image, the cells they fix,
  the networks' hint channels;
* :mod:`~instacolor.hints.propagation` - edge-aware propagation (Levin et al. 2004) and
  the chroma fit;
* :mod:`~instacolor.hints.photos` - reading and checking colour reference photos;
* :mod:`~instacolor.hints.reference` - colour from reference photos (matches as hints);
* :mod:`~instacolor.hints.apply` - :class:`HintSettings`: how a colorizer applies hints.

Every name below is imported from ``instacolor.hints`` (the modules are where they live).

Example:
    >>> from instacolor.hints import Hints, Lab
    >>> len(Hints(points=[(3, 2, Lab(20, -10))]))
    1
"""

from instacolor.hints.apply import (
    FIT_MIN_POINTS,
    FIT_RIDGE,
    FULL_RESOLUTION_MAX_PIXELS,
    INSTANCE_BAND,
    PROPAGATIONS,
    WORKING_REACH,
    HintSettings,
)
from instacolor.hints.cells import (
    as_hints,
    constraints,
    encode_channels,
    instance_cells,
    point_cells,
    reference_hint_channels,
)
from instacolor.hints.files import (
    HintsObject,
    hints_for,
    hints_from_json,
    hints_object_for,
    read_hints_file,
    read_hints_lines,
    read_hints_object,
    sidecar_path,
)
from instacolor.hints.overlap import match_beside
from instacolor.hints.photos import Reference, read_references, references_sha256
from instacolor.hints.propagation import (
    METHODS,
    VARIANCE_CAP,
    VARIANCE_FLOOR,
    VARIANCE_SCALE,
    affinity,
    decay_for_length,
    fit_chroma,
    local_variance,
    propagate,
    system,
)
from instacolor.hints.reference import MATCH_SIZE, ReferenceMatch, match_references
from instacolor.hints.values import HintPoint, Hints, Lab, as_lab

__all__ = [
    "FIT_MIN_POINTS",
    "FIT_RIDGE",
    "FULL_RESOLUTION_MAX_PIXELS",
    "INSTANCE_BAND",
    "MATCH_SIZE",
    "METHODS",
    "PROPAGATIONS",
    "VARIANCE_CAP",
    "VARIANCE_FLOOR",
    "VARIANCE_SCALE",
    "WORKING_REACH",
    "HintPoint",
    "HintSettings",
    "Hints",
    "HintsObject",
    "Lab",
    "Reference",
    "ReferenceMatch",
    "affinity",
    "as_hints",
    "as_lab",
    "constraints",
    "decay_for_length",
    "encode_channels",
    "fit_chroma",
    "hints_for",
    "hints_from_json",
    "hints_object_for",
    "instance_cells",
    "local_variance",
    "match_beside",
    "match_references",
    "point_cells",
    "propagate",
    "read_hints_file",
    "read_hints_lines",
    "read_hints_object",
    "read_references",
    "reference_hint_channels",
    "references_sha256",
    "sidecar_path",
    "system",
]
