"""Optical flow on gray frames and what it says about each pixel's history.

The flow is OpenCV's DIS (Kroeger et al. 2016) on 8-bit gray frames, both ways; a pixel
of the current frame is *consistent* when going back along the backward flow and
forward again returns it to where it started (Sundaram et al. 2010: ``|b + f(x + b)|^2
<= alpha (|b|^2 + |f(x + b)|^2) + beta``), it lands inside the previous frame, and its
gray level matches the one it came from once the frame's global brightness change
(film flicker) is taken out. Everything here is a numpy function on arrays at the
flow grid's size.

Example:
    >>> import numpy as np
    >>> gray = np.zeros((32, 48), np.uint8); gray[8:20, 10:30] = 200
    >>> motion = estimate_motion(gray, np.roll(gray, 2, axis=1), FlowSettings())
    >>> motion.reliability.shape, motion.reliability.dtype
    ((32, 48), dtype('float32'))
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from instacolor.errors import InputError

__all__ = ["FlowSettings", "Motion", "estimate_motion", "warp"]

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class FlowSettings:
    """How flow is computed and judged.

    Attributes:
        preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``.
        alpha, beta: forward-backward tolerance ``alpha (|b|^2 + |f|^2) + beta`` (pixels^2).
        photometric: gray-level difference (0-255) at which a pixel's reliability falls
            to ``1/e`` after the global brightness change is removed.
    """

    preset: str = "fast"
    alpha: float = 0.01
    beta: float = 0.5
    photometric: float = 24.0

    def __post_init__(self) -> None:
        if self.preset not in _PRESETS:
            raise InputError(
                f"flow preset: expected one of {sorted(_PRESETS)}, received {self.preset!r}"
            )
        for name in ("alpha", "beta", "photometric"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InputError(f"flow {name}: expected a number > 0, received {value!r}")


@dataclass(frozen=True, eq=False)
class Motion:
    """Where each pixel of the current frame came from, and how far to trust it.

    Attributes:
        map_x, map_y: ``(h, w)`` float32 coordinates in the previous frame (for
            :func:`warp`).
        consistent: ``(h, w)`` bool: forward-backward consistent and inside the frame.
        reliability: ``(h, w)`` float32 in ``[0, 1]``: consistency times the photometric
            match, softened over a 3x3 neighbourhood.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    consistent: np.ndarray
    reliability: np.ndarray

    @property
    def reliable_fraction(self) -> float:
        """Mean reliability over the frame (0: nothing can be carried over)."""
        return float(self.reliability.mean())


_DIS: dict[str, cv2.DISOpticalFlow] = {}


def _dis(preset: str) -> cv2.DISOpticalFlow:
    if preset not in _DIS:
        _DIS[preset] = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return _DIS[preset]


def warp(plane: np.ndarray, motion: Motion) -> np.ndarray:
    """Bring ``plane`` of the previous frame to the current one along the flow.

    Args:
        plane: ``(h, w)`` or ``(h, w, C)`` float32 (C <= 4) at the flow grid's size.
        motion: from :func:`estimate_motion`.

    Returns:
        The warped plane, same shape; pixels from outside take the nearest border value.
    """
    return cv2.remap(
        plane, motion.map_x, motion.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def estimate_motion(previous: np.ndarray, current: np.ndarray, settings: FlowSettings) -> Motion:
    """Flow from ``current`` back to ``previous`` with its forward-backward check.

    Args:
        previous, current: ``(h, w)`` uint8 gray frames of the same size.
        settings: preset and tolerances.

    Returns:
        A :class:`Motion` for the pixels of ``current``.

    Raises:
        InputError: the frames are not two uint8 planes of one size.
    """
    if (
        previous.dtype != np.uint8
        or current.dtype != np.uint8
        or previous.ndim != 2
        or previous.shape != current.shape
    ):
        raise InputError(
            f"flow: expected two (h, w) uint8 frames of one size, received "
            f"{previous.shape} {previous.dtype} and {current.shape} {current.dtype}"
        )
    dis = _dis(settings.preset)
    backward = dis.calc(current, previous, None)
    forward = dis.calc(previous, current, None)
    h, w = current.shape
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    map_x = xs + backward[..., 0]
    map_y = ys + backward[..., 1]
    forward_back = cv2.remap(
        forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    loop = backward + forward_back
    error = (loop * loop).sum(axis=2)
    scale = (backward * backward).sum(axis=2) + (forward_back * forward_back).sum(axis=2)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    consistent = (error <= settings.alpha * scale + settings.beta) & inside
    came_from = cv2.remap(
        previous.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    difference = current.astype(np.float32) - came_from
    if consistent.any():  # the frame's global brightness change (flicker, a fade)
        difference -= float(np.median(difference[consistent]))
    match = np.exp(-np.square(difference / settings.photometric))
    reliability = cv2.blur(consistent.astype(np.float32) * match, (3, 3))
    reliability = np.minimum(reliability, consistent.astype(np.float32))
    return Motion(map_x, map_y, consistent, reliability.astype(np.float32))
