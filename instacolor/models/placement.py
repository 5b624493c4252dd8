"""Where instances sit on the fusion grids: box placements and resize-and-pad operators.

InstColorization places each instance's crop features into its box on the ``S x S``
grid of every fusion scale: the box becomes ``[left_pad, right_pad, top_pad,
bottom_pad, width, height]`` cells by integer truncation of ``coord / size * S`` (a
collapsed box grows by one cell), and the crop's features are bilinearly resized into
those cells and zero-padded. :func:`placement_cells` gives the integer cells of every
scale at once (what the runtimes carry in :class:`~instacolor.structures.NetworkInputs`
and the ONNX fusion graph takes), :func:`make_placement` the ``grid_sample`` operators
of one scale, and :func:`place` applies them.

Resize-and-pad is one batched ``grid_sample`` whose sampling grid reproduces
``F.interpolate(mode="bilinear", align_corners=False)`` into each box (zero outside
it), so all instances are placed at once instead of in a Python loop per crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from instacolor.models.generator import FUSION_SCALE_DIVISOR

__all__ = [
    "PLACEMENT_DIVISORS",
    "Placement",
    "box_placements",
    "box_union",
    "inside_boxes",
    "instance_placements",
    "make_placement",
    "place",
    "placement_cells",
    "sample_into_boxes",
    "span_coordinates",
]


def box_placements(boxes: np.ndarray, image_size: tuple[int, int], size: int) -> np.ndarray:
    """Place integer boxes on an ``size x size`` grid as InstColorization does.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels (the reference truncates
            detector boxes to integers first).
        image_size: ``(H, W)`` of the input image.
        size: grid size ``S`` (256, 128, 64 or 32 at the default working size).

    Returns:
        ``(N, 6)`` int64 ``[left_pad, right_pad, top_pad, bottom_pad, width, height]``
        with ``left_pad + width + right_pad == S`` (same for rows) and width, height >= 1.
    """
    height, width = image_size
    out = np.zeros((len(boxes), 6), dtype=np.int64)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.float64)):
        sx, ex = _span(x0, x1, width, size)
        sy, ey = _span(y0, y1, height, size)
        out[i] = (sx, size - ex, sy, size - ey, ex - sx, ey - sy)
    return out


def _span(start: float, end: float, extent: int, size: int) -> tuple[int, int]:
    s, e = int(start / extent * size), int(end / extent * size)
    if e - s < 1:  # the reference grows a collapsed box by one cell, inwards at the edge
        if size - e > 1:
            e = s + 1
        else:
            s = e - 1
    return s, e


@dataclass(frozen=True)
class Placement:
    """Resize-and-pad operators of N instances on an ``S x S`` grid.

    Attributes:
        grid_y: ``(N, S)`` normalised ``grid_sample`` row coordinate of each grid row
            in the instance's crop (outside ``[-1, 1]`` off the box).
        grid_x: ``(N, S)`` the same for columns.
        inside_y: ``(N, S)`` 1 for grid rows inside the box, else 0.
        inside_x: ``(N, S)`` the same for columns.
        union: ``(S, S)`` 1 inside the union of boxes, 0 elsewhere.
    """

    grid_y: torch.Tensor
    grid_x: torch.Tensor
    inside_y: torch.Tensor
    inside_x: torch.Tensor
    union: torch.Tensor


def span_coordinates(
    offset: torch.Tensor, extent: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised sampling coordinates that resize a crop into a span of a grid.

    Grid cell ``y`` of instance ``i`` samples its crop at the position
    ``F.interpolate(mode="bilinear", align_corners=False)`` uses when the crop is
    resized to ``extent[i]`` cells starting at ``offset[i]``; in ``grid_sample``'s
    normalised units (``align_corners=False``) that is ``(2 (y - offset) + 1) / extent - 1``
    whatever the crop size, and ``padding_mode="border"`` reproduces interpolate's
    clamping at the crop edges.

    Args:
        offset: ``(N,)`` int64 first cell of each span.
        extent: ``(N,)`` int64 length of each span (>= 1).
        size: grid size ``S``.

    Returns:
        ``(coordinate (N, S) float64, inside (N, S) float64)``.
    """
    dst = torch.arange(size, dtype=torch.float64)[None] - offset[:, None].to(torch.float64)
    coordinate = (2 * dst + 1) / extent[:, None].to(torch.float64) - 1
    inside = ((dst >= 0) & (dst < extent[:, None])).to(torch.float64)
    return coordinate, inside


def box_union(placement: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``(S, S)`` float mask, 1 inside any box of ``placement`` ``(N, 6)``."""
    p = torch.as_tensor(placement, dtype=torch.int64)
    grid = torch.arange(size)
    rows = (grid >= p[:, 2, None]) & (grid < (p[:, 2] + p[:, 5])[:, None])
    cols = (grid >= p[:, 0, None]) & (grid < (p[:, 0] + p[:, 4])[:, None])
    return (rows[:, :, None] & cols[:, None, :]).any(0).to(torch.float32)


def make_placement(
    placement: np.ndarray, size: int, *, dtype: torch.dtype, device: torch.device | str
) -> Placement:
    """Build the :class:`Placement` of ``(N, 6)`` box placements on an ``S x S`` grid."""
    p = torch.as_tensor(placement, dtype=torch.int64)
    gy, iy = span_coordinates(p[:, 2], p[:, 5], size)
    gx, ix = span_coordinates(p[:, 0], p[:, 4], size)

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    return Placement(cast(gy), cast(gx), cast(iy), cast(ix), cast(box_union(p, size)))


def sample_into_boxes(
    maps: torch.Tensor, placement: Placement, start: int, stop: int | None
) -> torch.Tensor:
    """Bilinear samples of instances ``start:stop``'s ``(n, C, s, s)`` maps on the grid.

    Returns ``(n, C, S, S)``; cells off a box hold clamped edge values (multiply by
    :func:`inside_boxes`).
    """
    gy, gx = placement.grid_y[start:stop], placement.grid_x[start:stop]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return torch.nn.functional.grid_sample(
        maps, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def inside_boxes(placement: Placement, start: int, stop: int | None) -> torch.Tensor:
    """``(n, 1, S, S)`` 1 inside the boxes of instances ``start:stop``, else 0."""
    rows = placement.inside_y[start:stop][:, None, :, None]
    return rows * placement.inside_x[start:stop][:, None, None, :]


def place(maps: torch.Tensor, placement: Placement, start: int = 0, stop: int | None = None):
    """Resize ``(n, C, s, s)`` maps into their boxes, zero elsewhere: ``(n, C, S, S)``.

    ``start``/``stop`` select the instances of ``placement`` that ``maps`` belong to.
    """
    stop = placement.grid_y.shape[0] if stop is None else stop
    return sample_into_boxes(maps, placement, start, stop) * inside_boxes(placement, start, stop)


#: Grid divisors of the fusion points, in the order of :func:`placement_cells`' rows.
PLACEMENT_DIVISORS = tuple(sorted(set(FUSION_SCALE_DIVISOR.values())))


def placement_cells(
    boxes: np.ndarray, image_size: tuple[int, int], working_size: int
) -> np.ndarray:
    """Box placements on the grid of every fusion scale.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels.
        image_size: ``(H, W)`` of the input.
        working_size: the network's square working size (multiple of 8).

    Returns:
        ``(4, N, 6)`` int64: :func:`~instacolor.models.fusion.box_placements` on the
        ``working_size // d`` grid for ``d`` in :data:`PLACEMENT_DIVISORS` (1, 2, 4, 8).
    """
    rows = [box_placements(boxes, image_size, working_size // d) for d in PLACEMENT_DIVISORS]
    return np.stack(rows) if len(boxes) else np.zeros((len(rows), 0, 6), np.int64)


def instance_placements(
    boxes: np.ndarray,
    image_size: tuple[int, int],
    working_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[int, Placement]:
    """Resize-and-pad operators of integer boxes for every fusion scale.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels.
        image_size: ``(H, W)`` of the input.
        working_size: the network's square working size (multiple of 8).

    Returns:
        ``{divisor: Placement}`` for divisors 1, 2, 4 and 8.
    """
    cells = placement_cells(boxes, image_size, working_size)
    return {
        d: make_placement(c, working_size // d, dtype=dtype, device=device)
        for d, c in zip(PLACEMENT_DIVISORS, cells)
    }
