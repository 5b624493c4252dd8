"""How hints act on a prediction: the chroma fit, propagation, the full-resolution step.

Two mechanisms carry a hint into the colours (``docs/hints.md`` measures both):

* **propagation** (always, unless turned off): with at least :data:`FIT_MIN_POINTS`
  points the prediction's chroma is first corrected by a gain, an offset and a
  luminance slope per channel fitted to them (:func:`~instacolor.hints.propagation.
  fit_chroma`), then the hint residuals (hint minus
  that prediction) are spread over the image by an edge-aware solve guided by L
  (:mod:`instacolor.hints.propagation`), at the working resolution before the guided
  upsampling (``"working"``), optionally followed by a local correction at full
  resolution (``"full"``) so that the hinted pixels of the output carry their colour
  exactly (within the sRGB gamut at their luminance);
* **hint channels**: the networks' ``a, b, mask`` input channels, encoded as Zhang et
  al. 2017 (siggraph17) do (:func:`~instacolor.hints.cells.encode_channels`) for the
  full image and, in crop coordinates, for each instance crop. Only weights that
  learned hints should see them (siggraph17's did; InstColorization's and instacolor's
  did not).

An instance colour is propagated first and confined to a band of
:data:`INSTANCE_BAND` cells around its mask (the residual is held at 0 beyond it), so
that it does not tint the background; the points are then propagated with the coloured
instances held, fading (edge-aware) over :data:`WORKING_REACH` of the grid side for one
point, so that a point colours its own region; the length grows with the square root of
the number of points (many points spread over an image interpolate between them), and
the chroma fit, which needs :data:`FIT_MIN_POINTS` points to agree, acts on the whole.
Both count *regions* rather than cells (:func:`spread`): many constraints in one part of
the image, such as the matched cells of one wall in a reference photo, say nothing of the
rest of it, so they neither fit a correction of the whole nor reach across it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from instacolor.errors import InputError
from instacolor.hints.cells import constraints, instance_cells, point_cells
from instacolor.hints.propagation import (
    decay_for_length,
    fit_chroma,
    propagate,
    propagate_pooled,
)
from instacolor.hints.reference import ReferenceMatch
from instacolor.hints.values import Hints
from instacolor.reconstruct import compose_rgb, guided_upsample_ab, reconstruct

__all__ = [
    "FIT_MIN_POINTS",
    "FIT_RIDGE",
    "FULL_RESOLUTION_MAX_PIXELS",
    "INSTANCE_BAND",
    "MATCH_SOLVE_STEP",
    "PROPAGATIONS",
    "SPREAD_BLOCKS",
    "WORKING_REACH",
    "HintSettings",
    "spread",
]

#: Where the hint residuals are propagated.
PROPAGATIONS = ("working", "full", "none")
#: Fall-off length of one point hint at the working resolution, as a fraction of the grid
#: side. Short, so that a hint stays on its object (a point on a shirt leaves the sky
#: alone): one grid side moved 98 % of the pixels outside a hinted object, 0.15 moves 5 %
#: (docs/hints.md). With ``n`` points it grows as ``sqrt(n)`` up to one grid side
#: (:meth:`HintSettings.length`): many points spread over an image interpolate between them.
WORKING_REACH = 0.15
#: Fewest points for the chroma fit: on 100 held-out photos it cost 0.68 / 0.20 dB with
#: 1 / 2 oracle points and gained 0.18 / 0.35 / 0.46 with 3 / 4 / 5 (docs/hints.md).
FIT_MIN_POINTS = 4
#: The grid is cut into this many blocks a side to count the regions constraints cover
#: (:func:`spread`): what the fit's threshold and the fall-off length count.
SPREAD_BLOCKS = 8
#: Weight of the chroma fit's prior (gain 1, offset 0, no luminance slope) relative to
#: the points'. The fit (per-channel gain, offset and L slope) and this weight were
#: chosen on 100 of stage 1's held-out photos (10 oracle hints, v4; docs/hints.md).
FIT_RIDGE = 0.3
#: Free working cells around a point's own that it fixes too (:func:`_widen_points`).
POINT_RING = 1
#: Working cells around a coloured instance's mask where its colour may fade out.
INSTANCE_BAND = 2
#: A reference's matches alone (no hint given) are propagated on the working grid pooled
#: by this factor (:func:`~instacolor.hints.propagation.propagate_pooled`), or by less so
#: that the pooled grid is never coarser than the matching grid (32x32): on kodim05 at 1 MP
#: 3 ms CPU against 46 for the full solve; the quality protocol (docs/reference.md) moved by
#: +0.05 / -0.01 dB on kodak24 and -0.08 / -0.01 on coco128 (same scene / unrelated).
MATCH_SOLVE_STEP = 4
#: ``"full"`` refuses larger images (the full-resolution solve holds them in memory).
FULL_RESOLUTION_MAX_PIXELS = 16_000_000


def spread(known: np.ndarray, blocks: int = SPREAD_BLOCKS) -> int:
    """How many of the ``blocks x blocks`` regions of a grid hold a constraint.

    Args:
        known: ``(h, w)`` bool, the constrained cells.
        blocks: regions a side.

    Returns:
        The number of regions with at least one constrained cell.

    Example:
        >>> known = np.zeros((64, 64), bool)
        >>> known[:4, :4] = True  # 16 cells in one corner: one region
        >>> spread(known)
        1
        >>> known[60, 60] = known[30, 5] = True
        >>> spread(known)
        3
    """
    h, w = known.shape
    ys, xs = np.nonzero(known)
    return len(set(zip((ys * blocks // h).tolist(), (xs * blocks // w).tolist())))


def _centres(hints: Hints, size, s: int) -> np.ndarray:
    """``(s, s)`` bool: the middle cell of each point (a point is one place, whatever the
    cells its radius covers)."""
    centres = np.zeros((s, s), bool)
    for point in hints.points:
        cells = point_cells(point, size, (s, s))
        if cells is not None:
            top, bottom, left, right = cells
            centres[(top + bottom - 1) // 2, (left + right - 1) // 2] = True
    return centres


def _pooling(s: int) -> int:
    """The largest factor of ``s`` up to :data:`MATCH_SOLVE_STEP` that leaves at least
    the matching grid's 32 cells a side."""
    steps = range(1, MATCH_SOLVE_STEP + 1)
    return max((k for k in steps if s % k == 0 and s // k >= 32), default=1)


def _widen_points(hints: Hints, size, s: int, known: np.ndarray, target: np.ndarray):
    """Each point also fixes the free cells next to its own (:data:`POINT_RING` cells).

    A single fixed cell is a singularity of the decaying propagation: its neighbours
    already fall to about half its value, and the output pixel of the click (a blend of
    cells, guided upsampling) with them; a ring at the point's colour keeps the spot.
    """
    from scipy import ndimage  # here: scipy is slow to import

    ring = np.ones((3, 3), bool)
    for point in hints.points:
        cells, _ = constraints(Hints(points=[point]), None, size, (s, s))
        grown = ndimage.binary_dilation(cells, ring, POINT_RING) & ~known
        target[:, grown] = np.array([[point.color.a], [point.color.b]], np.float32)
        known = known | grown
    return known, target


@dataclass(frozen=True)
class HintSettings:
    """How a colorizer applies hints.

    Attributes:
        channels: feed the hints to the networks' hint channels.
        propagation: ``"working"``, ``"full"`` or ``"none"`` (see the module docstring).
        reach: fall-off length of one propagated point, as a fraction of the working
            grid side (None: no fall-off, Levin's system); ``n`` points fall off over
            ``reach * sqrt(n)``, at most one grid side.
        fit: before propagating, correct the prediction's chroma by a gain, an offset
            and a luminance slope per channel fitted to the points (:func:`~instacolor.
            propagation.fit_chroma`), when constraints lie in at least :data:`FIT_MIN_POINTS`
            regions (:func:`spread`).
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

    def length(self, points: int, side: int) -> float | None:
        """Fall-off length in cells of constraints in ``points`` regions (:func:`spread`)
        on a ``side`` grid."""
        if self.reach is None:
            return None
        return side * min(1.0, self.reach * math.sqrt(max(points, 1)))

    def propagate(
        self,
        ab: torch.Tensor,
        light: np.ndarray,
        hints: Hints | None,
        instances,
        size,
        match: ReferenceMatch | None = None,
    ):
        """ab ``(2, S, S)`` with the hint residuals spread at the working resolution.

        Args:
            ab: ``(2, S, S)`` float32 predicted ab (Lab units).
            light: ``(S, S)`` L the networks saw (the guide).
            hints: the checked hints (None: none).
            instances: the instances ``hints.instance_colors`` index.
            size: ``(H, W)`` of the image.
            match: the confident matches of colour reference photos
                (:func:`~instacolor.hints.reference.match_references`): they act as
                points where no hint is; None: none.
        """
        if match is not None and self.propagation == "none":
            raise InputError(
                "reference: expected a colorizer that propagates hints, received "
                "hint_propagation='none'; use 'working' or 'full' to take colours from it"
            )
        if (hints is None and match is None) or self.propagation == "none":
            return ab
        hints = hints or Hints()
        s = ab.shape[-1]
        current = ab.numpy()
        if hints.instance_colors:
            inner, target = constraints(
                Hints(instance_colors=hints.instance_colors), instances, size, (s, s)
            )
            extent = np.zeros((s, s), bool)
            for index in hints.instance_colors:
                extent |= instance_cells(instances, index, (s, s), erode=False)
            from scipy import ndimage  # here: scipy is slow to import

            outside = ~ndimage.binary_dilation(extent, np.ones((3, 3), bool), INSTANCE_BAND)
            residual = np.where(inner, target - current, 0.0).astype(np.float32)
            current = current + propagate(light, inner | outside, residual)
        matched = np.zeros((s, s), bool) if match is None else match.known
        count = spread(_centres(hints, size, s) | matched)  # regions: a cluster is one
        if self.fit and count >= FIT_MIN_POINTS:
            points, goal = constraints(Hints(points=hints.points), None, size, (s, s))
            if match is not None:
                goal = np.where(points, goal, match.ab)
            current = fit_chroma(current, points | matched, goal, FIT_RIDGE, light=light)
        known, target = constraints(hints, instances, size, (s, s))
        known, target = _widen_points(hints, size, s, known, target)
        if match is not None:
            target = np.where(known, target, match.ab)
            known = known | matched
        residual = np.where(known, target - current, 0.0).astype(np.float32)
        decay = decay_for_length(self.length(count, s))
        step = _pooling(s)
        if match is not None and not hints and step > 1:  # matches a few cells apart
            field = propagate_pooled(light, known, residual, decay=decay, step=step)
        else:
            field = propagate(light, known, residual, decay=decay)
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
        from scipy import ndimage  # here: scipy is slow to import

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
