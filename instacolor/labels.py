"""The one semantic label space of instacolor: COCO panoptic's 133 categories plus "unknown".

Labels are small integers. Labels ``0..79`` are the 80 COCO "thing" classes (countable
objects such as ``person`` or ``car``), labels ``80..132`` are the 53 COCO panoptic "stuff"
classes (amorphous regions such as ``sky-other-merged`` or ``grass-merged``), both in the order
COCO panoptic lists them, i.e. sorted by COCO category id. Label ``133`` (:data:`UNKNOWN`) means
"no category known" and has no COCO id.

COCO category ids are not contiguous (things use ids 1..90 with gaps, stuff uses 92..200 with
gaps), so use :func:`label_from_coco_id` or :func:`coco_ids_to_labels` to convert them. The
contiguous thing indices 0..79 that detectron2 detectors predict (``thing_classes``) are already
our thing labels; :func:`thing_label_from_contiguous` checks their range. Torchvision's COCO
detectors (Mask R-CNN, Faster R-CNN) instead predict COCO category ids (1..90, an index into
their 91-entry list with ``__background__`` and ``N/A``): map those with the id functions.

COCO detection annotations (``instances_*.json``) use the same 80 thing ids and names as the
panoptic categories, so their ``category_id`` values map directly with these functions.

Example:
    >>> from instacolor.labels import LABEL_NAMES, UNKNOWN, coco_ids_to_labels, is_thing
    >>> coco_ids_to_labels([1, 90, 92, 200]).tolist()
    [0, 79, 80, 132]
    >>> LABEL_NAMES[0], is_thing(0), LABEL_NAMES[UNKNOWN]
    ('person', True, 'unknown')
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Sequence

import numpy as np

from instacolor.errors import InputError

__all__ = [
    "COCO_CATEGORY_IDS",
    "LABEL_NAMES",
    "NUM_LABELS",
    "NUM_THINGS",
    "UNKNOWN",
    "coco_ids_to_labels",
    "is_thing",
    "label_from_coco_id",
    "label_from_name",
    "thing_label_from_contiguous",
]

# (COCO category id, name) of the 133 COCO panoptic categories, things first, each group sorted
# by id. Checked against detectron2 `detectron2/data/datasets/builtin_meta.py` (COCO_CATEGORIES,
# facebookresearch/detectron2, which takes it from cocodataset/panopticapi
# `panoptic_coco_categories.json`): ids, names, isthing flags and order agree.
# fmt: off
_THINGS: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"),
    (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"),
    (24, "zebra"), (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"),
    (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"),
    (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"),
    (46, "wine glass"), (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"),
    (52, "banana"), (53, "apple"), (54, "sandwich"), (55, "orange"), (56, "broccoli"),
    (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"),
    (63, "couch"), (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"),
    (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"),
    (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"),
    (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)
_STUFF: tuple[tuple[int, str], ...] = (
    (92, "banner"), (93, "blanket"), (95, "bridge"), (100, "cardboard"), (107, "counter"),
    (109, "curtain"), (112, "door-stuff"), (118, "floor-wood"), (119, "flower"), (122, "fruit"),
    (125, "gravel"), (128, "house"), (130, "light"), (133, "mirror-stuff"), (138, "net"),
    (141, "pillow"), (144, "platform"), (145, "playingfield"), (147, "railroad"), (148, "river"),
    (149, "road"), (151, "roof"), (154, "sand"), (155, "sea"), (156, "shelf"), (159, "snow"),
    (161, "stairs"), (166, "tent"), (168, "towel"), (171, "wall-brick"), (175, "wall-stone"),
    (176, "wall-tile"), (177, "wall-wood"), (178, "water-other"), (180, "window-blind"),
    (181, "window-other"), (184, "tree-merged"), (185, "fence-merged"), (186, "ceiling-merged"),
    (187, "sky-other-merged"), (188, "cabinet-merged"), (189, "table-merged"),
    (190, "floor-other-merged"), (191, "pavement-merged"), (192, "mountain-merged"),
    (193, "grass-merged"), (194, "dirt-merged"), (195, "paper-merged"),
    (196, "food-other-merged"), (197, "building-other-merged"), (198, "rock-merged"),
    (199, "wall-other-merged"), (200, "rug-merged"),
)
# fmt: on

NUM_THINGS: int = len(_THINGS)
"""Number of thing labels (80); labels ``0..NUM_THINGS-1`` are things."""

COCO_CATEGORY_IDS: tuple[int, ...] = tuple(cid for cid, _ in _THINGS + _STUFF)
"""COCO panoptic category id of each label ``0..132`` (``UNKNOWN`` has none)."""

LABEL_NAMES: tuple[str, ...] = (*(name for _, name in _THINGS + _STUFF), "unknown")
"""Name of each label; the index is the label id."""

NUM_LABELS: int = len(LABEL_NAMES)
"""Total number of labels (134), ``UNKNOWN`` included."""

UNKNOWN: int = NUM_LABELS - 1
"""The label (133) for pixels or instances of no known category."""

# Lookup table from COCO category id to label, -1 where the id is not a panoptic category.
_ID_TO_LABEL = np.full(max(COCO_CATEGORY_IDS) + 1, -1, dtype=np.int64)
_ID_TO_LABEL[list(COCO_CATEGORY_IDS)] = np.arange(len(COCO_CATEGORY_IDS), dtype=np.int64)
_ID_TO_LABEL.flags.writeable = False

_NAME_TO_LABEL: dict[str, int] = {name: label for label, name in enumerate(LABEL_NAMES)}

_EXPECTED_ID = (
    "a COCO panoptic category id (1..90 with gaps for things, 92..200 with gaps for stuff)"
)


def _as_int(value: object, what: str) -> int:
    """Return ``value`` as a Python int, or raise InputError if it is not an integer."""
    if isinstance(value, bool):
        raise InputError(f"expected {what} as an integer, received bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(
            f"expected {what} as an integer, received {type(value).__name__} {value!r}"
        ) from None


def is_thing(label: int) -> bool:
    """Tell whether ``label`` is one of the 80 thing classes.

    Args:
        label: A label in ``0..NUM_LABELS-1``.

    Returns:
        True for labels ``0..79``, False for stuff labels and ``UNKNOWN``.

    Raises:
        InputError: If ``label`` is not an integer in ``0..NUM_LABELS-1``.
    """
    value = _as_int(label, "a label")
    if not 0 <= value < NUM_LABELS:
        raise InputError(f"expected a label in 0..{NUM_LABELS - 1}, received {value}")
    return value < NUM_THINGS


def label_from_coco_id(category_id: int) -> int:
    """Map one COCO panoptic (or detection) category id to its label.

    Args:
        category_id: A COCO category id, e.g. 1 (person) or 199 (wall-other-merged).

    Returns:
        The label in ``0..132``.

    Raises:
        InputError: If ``category_id`` is not a COCO panoptic category id.
    """
    value = _as_int(category_id, _EXPECTED_ID)
    label = int(_ID_TO_LABEL[value]) if 0 <= value < _ID_TO_LABEL.size else -1
    if label < 0:
        raise InputError(f"expected {_EXPECTED_ID}, received {value}")
    return label


def coco_ids_to_labels(ids: np.ndarray | Sequence[int], *, strict: bool = True) -> np.ndarray:
    """Map an array of COCO panoptic category ids to labels in one vectorised lookup.

    Args:
        ids: Integer array (any shape) or sequence of COCO category ids.
        strict: raise on an id that is no COCO category; when False it maps to
            :data:`UNKNOWN` (e.g. the unused slots 12, 26, ... of torchvision's detectors).

    Returns:
        An int64 array of the same shape holding labels in ``0..132``.

    Raises:
        InputError: If ``ids`` is not integer, or holds an id that is no COCO panoptic
            category; the message names the first such id.
    """
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"expected an integer array of {_EXPECTED_ID}s, received dtype {arr.dtype}"
        )
    in_range = (arr >= 0) & (arr < _ID_TO_LABEL.size)
    labels = _ID_TO_LABEL[np.where(in_range, arr, 0).astype(np.intp)]
    bad = ~in_range | (labels < 0)
    if not strict:
        return np.where(bad, UNKNOWN, labels).astype(np.int64, copy=False)
    if bad.any():
        first = arr[bad].flat[0]
        raise InputError(
            f"expected {_EXPECTED_ID}, received {int(first)} "
            f"({int(bad.sum())} of {arr.size} ids are not COCO panoptic categories)"
        )
    return labels.astype(np.int64, copy=False)


def label_from_name(name: str) -> int:
    """Return the label whose name is exactly ``name`` (e.g. ``"person"``, ``"unknown"``).

    Args:
        name: A name from :data:`LABEL_NAMES`, case and punctuation included.

    Returns:
        The label in ``0..NUM_LABELS-1``.

    Raises:
        InputError: If no label has this name; the message suggests close names.
    """
    label = _NAME_TO_LABEL.get(name) if isinstance(name, str) else None
    if label is None:
        close = difflib.get_close_matches(str(name), LABEL_NAMES, n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise InputError(
            f"expected a label name from instacolor.labels.LABEL_NAMES, received {name!r}{hint}"
        )
    return label


def thing_label_from_contiguous(index: int) -> int:
    """Map a contiguous thing index (detectron2 class ``0..79``) to its label.

    Torchvision's detection labels are COCO category ids, not contiguous indices; use
    :func:`label_from_coco_id` for them.

    Args:
        index: A contiguous thing class index in ``0..NUM_THINGS-1``.

    Returns:
        The thing label, equal to ``index``.

    Raises:
        InputError: If ``index`` is not an integer in ``0..NUM_THINGS-1``.
    """
    value = _as_int(index, "a contiguous thing index")
    if not 0 <= value < NUM_THINGS:
        raise InputError(
            f"expected a contiguous thing index in 0..{NUM_THINGS - 1}, received {value}"
        )
    return value
