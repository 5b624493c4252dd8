"""8-bit rounding that repeats along the motion instead of changing from frame to frame.

Rounding a frame to 8-bit RGB moves each pixel's chroma by a fraction of a Lab unit
(:func:`instacolor.color.quantize_rgb8` keeps it as close as the lattice allows), and on
real film the move differs from frame to frame: the luminance under a tracked point
changes with grain and flicker, and with it the lattice points around its colour. On
gray films whose per-frame colour is already steady, that noise is most of what is left
of the stabilised output's warp error (docs/video.md, "The 8-bit floor on real film").

Here each frame's rounding error (the chroma of the 8-bit pixel minus the exact
colour's) is carried to the next frame along the stabiliser's flow, weighted by its
reliability, and the next frame's lattice point is the one closest in chroma to its own
exact colour *plus* the carried error: where the lattice allows, a tracked point keeps
the error it had, so the output does not flicker by the rounding. The lattice points and
the luminance rule are those of :func:`~instacolor.color.quantize_rgb8` (no channel more
than a level from its exact value, L kept as well as nearest rounding keeps it); only
the chroma they are measured against moves, by the carried error, which is itself a
rounding error (at most about one Lab unit).

Example:
    >>> import numpy as np
    >>> exact = np.full((4, 6, 3), 0.4, np.float32); exact[..., 0] = 0.5
    >>> light = np.full((4, 6), 45.0, np.float32)
    >>> rgb, error = round_frame(exact, light, None)
    >>> rgb.dtype, rgb.shape, error.shape, error.dtype
    (dtype('uint8'), (4, 6, 3), (4, 6, 2), dtype('float16'))
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from instacolor.color import quantize_rgb8
from instacolor.video.flow import Motion

__all__ = ["carry_error", "round_frame"]


def round_frame(
    exact: np.ndarray, light: np.ndarray, carried: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's 8-bit levels, aiming at its exact chroma plus the carried error.

    Args:
        exact: ``(H, W, 3)`` float32 sRGB in ``[0, 1]``, the frame's exact colour (in gamut).
        light: ``(H, W)`` float32 L (0..100) the output keeps.
        carried: ``(H, W, 2)`` float32 rounding error carried from the frame before
            (:func:`carry_error`), or None (a shot's first frame: plain chroma-keeping
            rounding).

    Returns:
        ``(rgb, error)``: ``(H, W, 3)`` uint8 sRGB, and its rounding error, the chroma
        of ``rgb`` minus ``exact``'s, ``(H, W, 2)`` float16 (what the next frame carries).
    """
    rgb = torch.from_numpy(np.ascontiguousarray(exact)).permute(2, 0, 1)
    offset = None
    if carried is not None:
        offset = torch.from_numpy(np.ascontiguousarray(carried)).permute(2, 0, 1)
    levels, error = quantize_rgb8(
        rgb, torch.from_numpy(light).clamp(0.0, 100.0), offset=offset, return_error=True
    )
    out = levels.permute(1, 2, 0).numpy().astype(np.uint8)
    return out, error.permute(1, 2, 0).numpy().astype(np.float16)


def carry_error(error: np.ndarray, motion: Motion) -> np.ndarray:
    """The previous frame's rounding error brought to the current frame along the flow.

    Args:
        error: ``(H, W, 2)`` float16 or float32 rounding error of the previous frame at
            the frames' full resolution.
        motion: the stabiliser's :class:`~instacolor.video.flow.Motion` at the flow grid
            ``(h, w)`` (the frame itself or a shrunk copy); its map and reliability are
            brought to ``(H, W)`` first.

    Returns:
        ``(H, W, 2)`` float32: the warped error times the flow's reliability (0 where the
        flow fails: new content rounds as a first frame does).
    """
    height, width = error.shape[:2]
    map_x, map_y, reliability = motion.map_x, motion.map_y, motion.reliability
    h, w = map_x.shape
    if (h, w) != (height, width):  # grid coordinates -> frame coordinates, centres aligned
        sx, sy = width / w, height / h
        size = (width, height)
        map_x = (cv2.resize(map_x, size, interpolation=cv2.INTER_LINEAR) + 0.5) * sx - 0.5
        map_y = (cv2.resize(map_y, size, interpolation=cv2.INTER_LINEAR) + 0.5) * sy - 0.5
        reliability = cv2.resize(reliability, size, interpolation=cv2.INTER_LINEAR)
    warped = cv2.remap(
        error.astype(np.float32), map_x.astype(np.float32), map_y.astype(np.float32),
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return warped * reliability[..., None]
