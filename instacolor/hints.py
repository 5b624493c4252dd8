"""Colour hints through the pipeline: parsing, the networks' hint channels, propagation.

Two mechanisms carry a hint into the colours (``docs/hints.md`` measures both):

* **propagation** (always, unless turned off): with at least :data:`FIT_MIN_POINTS`
  points the prediction's chroma is first corrected by a gain, an offset and a
  luminance slope per channel fitted to them (:func:`~instacolor.propagation.
  fit_chroma`), then the hint residuals (hint minus
  that prediction) are spread over the image by an edge-aware solve guided by L
  (:mod:`instacolor.propagation`), at the working resolution before the guided
  upsampling (``"working"``), optionally followed by a local correction at full
  resolution (``"full"``) so that the hinted pixels of the output carry their colour
  exactly (within the sRGB gamut at their luminance);
* **hint channels**: the networks' ``a, b, mask`` input channels, encoded as Zhang et
  al. 2017 (siggraph17) do - ``ab / 110`` over the hint's patch, the mask channel at
  ``mask_value + 1`` there and at the automatic ``mask_value`` elsewhere - for the full
  image and, in crop coordinates, for each instance crop. Only weights that learned
  hints should see them (siggraph17's did; InstColorization's and instacolor's did not).

A point covers the cells of the working grid (or the pixels of the full image) that
the square ``[x - r, x + r] x [y - r, y + r]`` of input pixels touches; an instance
colour covers the instance's mask eroded by one cell (the mask itself where erosion
empties it), or the middle half of its box when it has no mask. Later points overwrite
earlier ones and points overwrite instance colours. An instance colour is propagated
first and confined to a band of :data:`INSTANCE_BAND` cells around its mask (the
residual is held at 0 beyond it), so that it does not tint the background; the points
are then propagated over the whole image with the coloured instances held.

Example:
    >>> import numpy as np
    >>> from instacolor.structures import Hints, Lab
    >>> known, ab = constraints(Hints(points=[(3, 2, Lab(20, -10))]), None, (8, 8), (4, 4))
    >>> np.argwhere(known).tolist(), ab[:, 1, 1].tolist()
    [[1, 1]], [20.0, -10.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.io.hints import hints_from_json, read_hints_file
from instacolor.propagation import decay_for_length, fit_chroma, propagate
from instacolor.reconstruct import compose_rgb, guided_upsample_ab, reconstruct
from instacolor.structures import Hints, Instances

__all__ = [
    "FULL_RESOLUTION_MAX_PIXELS",
    "PROPAGATIONS",
    "HintSettings",
    "as_hints",
    "constraints",
    "encode_channels",
    "hints_from_json",
    "read_hints_file",
    "reference_hint_channels",
]

#: Where the hint residuals are propagated.
PROPAGATIONS = ("working", "full", "none")
#: Fall-off length of a hint at the working resolution, as a fraction of the grid side.
WORKING_REACH = 1.0
#: Fewest points for the chroma fit: on 100 held-out photos it cost 0.68 / 0.20 dB with
#: 1 / 2 oracle points and gained 0.18 / 0.35 / 0.46 with 3 / 4 / 5 (docs/hints.md).
FIT_MIN_POINTS = 4
#: Weight of the chroma fit's prior (gain 1, offset 0, no luminance slope) relative to
#: the points'. The fit (per-channel gain, offset and L slope) and this weight were
#: chosen on 100 of stage 1's held-out photos (10 oracle hints, v4; docs/hints.md).
FIT_RIDGE = 0.3
#: Working cells around a coloured instance's mask where its colour may fade out.
INSTANCE_BAND = 2
#: ``"full"`` refuses larger images (the full-resolution solve holds them in memory).
FULL_RESOLUTION_MAX_PIXELS = 16_000_000


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
        point: a :class:`~instacolor.structures.HintPoint`.
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


@dataclass(frozen=True)
class HintSettings:
    """How a colorizer applies hints.

    Attributes:
        channels: feed the hints to the networks' hint channels.
        propagation: ``"working"``, ``"full"`` or ``"none"`` (see the module docstring).
        reach: fall-off length of a propagated hint, as a fraction of the working grid
            side (None: no fall-off, Levin's system).
        fit: before propagating, correct the prediction's chroma by a gain, an offset
            and a luminance slope per channel fitted to the points (:func:`~instacolor.
            propagation.fit_chroma`), when there are at least :data:`FIT_MIN_POINTS`.
    """

    channels: bool = False
    propagation: str = "working"
    reach: float | None = WORKING_REACH
    fit: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.channels, bool):
            raise InputError(f"hint_channels: expected True, False or None, got {self.channels!r}")
        if self.propagation not in PROPAGATIONS:
            raise InputError(
                f"hint_propagation: expected one of {PROPAGATIONS}, received "
                f"{self.propagation!r}; 'working' is fast, 'full' makes hinted pixels exact"
            )

    def propagate(self, ab: torch.Tensor, light: np.ndarray, hints: Hints | None, instances, size):
        """ab ``(2, S, S)`` with the hint residuals spread at the working resolution.

        Args:
            ab: ``(2, S, S)`` float32 predicted ab (Lab units).
            light: ``(S, S)`` L the networks saw (the guide).
            hints: the checked hints (None: ``ab`` unchanged).
            instances: the instances ``hints.instance_colors`` index.
            size: ``(H, W)`` of the image.
        """
        if hints is None or self.propagation == "none":
            return ab
        s = ab.shape[-1]
        current = ab.numpy()
        if hints.instance_colors:
            inner, target = constraints(
                Hints(instance_colors=hints.instance_colors), instances, size, (s, s)
            )
            extent = np.zeros((s, s), bool)
            for index in hints.instance_colors:
                extent |= instance_cells(instances, index, (s, s), erode=False)
            outside = ~ndimage.binary_dilation(extent, np.ones((3, 3), bool), INSTANCE_BAND)
            residual = np.where(inner, target - current, 0.0).astype(np.float32)
            current = current + propagate(light, inner | outside, residual)
        if self.fit and len(hints.points) >= FIT_MIN_POINTS:
            points, goal = constraints(Hints(points=hints.points), None, size, (s, s))
            current = fit_chroma(current, points, goal, FIT_RIDGE, light=light)
        known, target = constraints(hints, instances, size, (s, s))
        residual = np.where(known, target - current, 0.0).astype(np.float32)
        length = None if self.reach is None else self.reach * s
        field = propagate(light, known, residual, decay=decay_for_length(length))
        out = current + field
        out[:, known] = target[:, known]
        return torch.from_numpy(out)

    def reconstruct(self, ab, light_low, l_full, hints: Hints | None, instances, out_dtype):
        """``(H, W, 3)`` sRGB of ``out_dtype``: :func:`~instacolor.reconstruct.reconstruct`,
        or with ``"full"`` propagation and hints the full-resolution correction below.

        The working-resolution result is upsampled (guided by ``l_full``), then the
        residuals left at the hinted pixels are propagated at full resolution over a
        band of a few working cells around them.
        """
        if hints is None or self.propagation != "full":
            return reconstruct(ab, torch.from_numpy(light_low), l_full, out_dtype=out_dtype)
        h, w = l_full.shape
        if h * w > FULL_RESOLUTION_MAX_PIXELS:
            raise InputError(
                f"hint_propagation='full': expected at most {FULL_RESOLUTION_MAX_PIXELS} "
                f"pixels, received a {w}x{h} image; use hint_propagation='working'"
            )
        light = torch.as_tensor(np.ascontiguousarray(l_full), dtype=torch.float32)
        ab_full = guided_upsample_ab(ab, torch.as_tensor(light_low), light).numpy()
        known, target = constraints(hints, instances, (h, w), (h, w))
        cell = max(h, w) / ab.shape[-1]  # full-resolution pixels per working cell
        far = ndimage.distance_transform_edt(~known) > 6 * cell
        residual = np.where(known, target - ab_full, 0.0).astype(np.float32)
        field = propagate(
            light.numpy(), known | far, residual, decay=decay_for_length(max(1.0, cell))
        )
        ab_full += field
        ab_full[:, known] = target[:, known]
        rgb = compose_rgb(light, torch.from_numpy(ab_full)).permute(1, 2, 0).numpy()
        dtype = np.dtype(out_dtype)
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(dtype)
        return (np.round(rgb * scale) if scale else rgb).astype(dtype)
