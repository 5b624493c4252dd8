"""Where hints land: checking the caller's hints, the cells they fix, the hint channels.

A point covers the cells of a grid (the working grid, or the pixels of the full image)
that the square ``[x - r, x + r] x [y - r, y + r]`` of input pixels touches; an instance
colour covers the instance's mask eroded by one cell (the mask itself where erosion
empties it), or the middle half of its box when it has no mask. Later points overwrite
earlier ones and points overwrite instance colours.

Example:
    >>> import numpy as np
    >>> from instacolor.hints import Hints, Lab
    >>> known, ab = constraints(Hints(points=[(3, 2, Lab(20, -10))]), None, (8, 8), (4, 4))
    >>> np.argwhere(known).tolist(), ab[:, 1, 1].tolist()
    ([[1, 1]], [20.0, -10.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.hints.values import Hints
from instacolor.structures import Instances

__all__ = [
    "as_hints",
    "constraints",
    "encode_channels",
    "instance_cells",
    "point_cells",
    "reference_hint_channels",
]


def as_hints(value: Any, image_size: tuple[int, int], instances: Instances | None) -> Hints | None:
    """The caller's ``hints`` as :class:`Hints` checked against one image.

    Args:
        value: None, :class:`Hints`, or a list of points ``(x, y, color[, radius])``.
        image_size: ``(H, W)`` of the image, in the pixels the points are given in.
        instances: the instances of this run (those ``instance_colors`` index), or None.

    Returns:
        The hints, or None when there are none (no hint changes nothing).

    Raises:
        InputError: a point outside the image, a bad colour or radius, an instance
            index that does not exist.
    """
    if value is None:
        return None
    hints = value if isinstance(value, Hints) else _hints_from_points(value)
    h, w = image_size
    for i, p in enumerate(hints.points):
        if not (0 <= p.x < w and 0 <= p.y < h):
            raise InputError(
                f"hints point {i}: expected x in [0, {w}) and y in [0, {h}) (input pixels of "
                f"this {w}x{h} image), received ({p.x:g}, {p.y:g}); give points inside the image"
            )
    count = 0 if instances is None else len(instances)
    bad = [i for i in hints.instance_colors if i >= count]
    if bad:
        raise InputError(
            f"instance_colors: expected instance indices 0..{count - 1} of the {count} "
            f"instances of this image, received {bad}; pass the instances (or a detector) the "
            "indices refer to"
            if count
            else f"instance_colors: expected instances to colour, received indices {bad} for an "
            "image with no instances; pass instances= (or a detector)"
        )
    return hints if len(hints) else None


def _hints_from_points(value: Any) -> Hints:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputError(
            f"hints: expected a Hints value or a list of (x, y, color) points, received "
            f"{type(value).__name__}; e.g. hints=[(120, 80, '#c03020')]"
        )
    return Hints(points=value)


def _span(lo: float, hi: float, extent: float, cells: int) -> tuple[int, int]:
    """Cells ``[start, stop)`` of ``cells`` over ``extent`` pixels that ``[lo, hi]`` touches."""
    start = math.floor(max(lo, 0.0) * cells / extent)
    stop = math.floor(min(hi, math.nextafter(extent, 0)) * cells / extent) + 1
    return min(start, cells - 1), min(max(stop, start + 1), cells)


def point_cells(point, size, grid, box=None) -> tuple[int, int, int, int] | None:
    """Cells ``(top, bottom, left, right)`` (exclusive ends) a point covers on a grid.

    Args:
        point: a :class:`~instacolor.hints.HintPoint`.
        size: ``(H, W)`` of the image in input pixels.
        grid: ``(gh, gw)`` of the grid over the image (or over ``box``).
        box: ``(x0, y0, x1, y1)`` integer box the grid covers (a crop), or None.

    Returns:
        The cells, or None when the point lies outside ``box``.
    """
    x0, y0, x1, y1 = box if box is not None else (0, 0, size[1], size[0])
    if not (x0 <= point.x < x1 and y0 <= point.y < y1):
        return None
    r = point.radius
    top, bottom = _span(point.y - r - y0, point.y + r - y0, y1 - y0, grid[0])
    left, right = _span(point.x - r - x0, point.x + r - x0, x1 - x0, grid[1])
    return top, bottom, left, right


def instance_cells(instances: Instances, index: int, grid, box=None, erode: bool = True):
    """``(gh, gw)`` bool cells an instance colour covers (see the module docstring).

    With ``erode=False`` the instance's cells themselves (mask, or middle of its box).
    """
    from scipy import ndimage  # here: scipy is slow to import

    x0, y0, x1, y1 = box if box is not None else (0, 0, *instances.image_size[::-1])
    if instances.masks is None:
        bx0, by0, bx1, by1 = instances.boxes[index].tolist()
        cx, cy, hw, hh = (bx0 + bx1) / 2, (by0 + by1) / 2, (bx1 - bx0) / 4, (by1 - by0) / 4
        mask = np.zeros(instances.image_size, np.float32)
        mask[int(cy - hh) : math.ceil(cy + hh), int(cx - hw) : math.ceil(cx + hw)] = 1.0
    else:
        mask = instances.masks[index].astype(np.float32)
    part = torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1]))[None, None]
    cells = F.interpolate(part, size=tuple(grid), mode="area")[0, 0].numpy() >= 0.5
    if not erode:
        return cells
    eroded = ndimage.binary_erosion(cells, structure=np.ones((3, 3), bool))
    return eroded if eroded.any() else cells


def constraints(hints: Hints, instances, size, grid, box=None) -> tuple[np.ndarray, np.ndarray]:
    """The cells the hints fix on a grid and their target ab.

    Args:
        hints: the hints.
        size: ``(H, W)`` of the image in input pixels.
        grid: ``(gh, gw)``: the working grid ``(S, S)`` or the full image ``(H, W)``.
        instances: the instances ``hints.instance_colors`` index (or None).
        box: integer ``(x0, y0, x1, y1)``: the grid covers this crop only.

    Returns:
        ``known`` ``(gh, gw)`` bool and ``ab`` ``(2, gh, gw)`` float32 Lab units (0
        where not known).
    """
    known = np.zeros(tuple(grid), bool)
    ab = np.zeros((2, *grid), np.float32)
    for index, color in hints.instance_colors.items():
        cells = instance_cells(instances, index, grid, box)
        known |= cells
        ab[:, cells] = np.array([[color.a], [color.b]], np.float32)
    for point in hints.points:
        cells = point_cells(point, size, grid, box)
        if cells is not None:
            t, b, left, right = cells
            known[t:b, left:right] = True
            ab[0, t:b, left:right], ab[1, t:b, left:right] = point.color.a, point.color.b
    return known, ab


def encode_channels(known: np.ndarray, ab: np.ndarray, mask_value: float) -> np.ndarray:
    """The hint channels ``(3, S, S)`` float32: ``a/110, b/110, mask`` (siggraph17's encoding).

    Args:
        known: ``(S, S)`` bool, the hinted cells.
        ab: ``(2, S, S)`` hint ab in Lab units (a patch's mean for ground-truth hints).
        mask_value: the automatic value of the mask channel (-0.5 for weights trained
            with ``mask_cent = 0.5``, 0 for the converted siggraph17 weights); hinted
            cells get ``mask_value + 1``.
    """
    out = np.zeros((3, *known.shape), np.float32)
    out[:2][:, known] = ab[:, known] / AB_NORM
    out[2] = np.where(known, mask_value + 1.0, mask_value)
    return out


def reference_hint_channels(ab_norm: np.ndarray, patches, mask_cent: float = 0.5) -> np.ndarray:
    """Ground-truth hint channels ``(3, H, W)`` float32 as the reference samples them.

    Zhang et al.'s ``util.add_color_patches_rand_gt`` with ``use_avg``: for each patch
    ``(h, w, P)`` (top-left row and column, side), the hint channels hold the patch's
    mean normalised ab over ``[h:h+P, w:w+P]`` and the mask is 1 there; then
    ``mask_cent`` is subtracted from the whole mask. Later patches overwrite earlier ones.

    Args:
        ab_norm: ``(2, H, W)`` ground-truth ab divided by 110.
        patches: ``(h, w, P)`` integer triples.
        mask_cent: subtracted from the mask (0.5 in the reference's training).
    """
    out = np.zeros((3, *ab_norm.shape[1:]), np.float32)
    for h, w, p in patches:
        patch = ab_norm[:, h : h + p, w : w + p]
        out[:2, h : h + p, w : w + p] = patch.reshape(2, -1).mean(axis=1)[:, None, None]
        out[2, h : h + p, w : w + p] = 1.0
    out[2] -= mask_cent
    return out
