"""How steady a colorized video is: warp error and colour distribution consistency.

* **Warp error** (after Lai et al. 2018, "Learning Blind Video Temporal Consistency"):
  the mean Euclidean difference of the chroma (Lab a, b) of consecutive output frames
  along the optical flow, over the pixels whose flow passes the forward-backward check
  (occlusions and pixels leaving the frame masked out). 0 for perfectly steady colour on
  perfectly tracked content. As in Lai et al. and TCVC, the flow should be the INPUT
  video's (``guide=``: the gray frames that were colorized), so that every output of one
  clip is measured along the same flow; without ``guide`` it runs on each output's own
  luminance (the former behaviour), which differs between two outputs whose 8-bit
  rounding moves L differently, and then the score changes with the flow, not only with
  the colours.
* **CDC** (colour distribution consistency, Liu et al. 2021, TCVC): the Jensen-Shannon
  divergence of the 256-bin histograms of each RGB channel between frames ``i`` and
  ``i + d``, averaged over channels and frames, for ``d = 1, 2, 4``, weighted 1/3 each.
  Lower is steadier.
* **PSNR** of the RGB frames against the original colour frames (a colour clip turned
  gray), averaged over frames.

Example:
    >>> import numpy as np
    >>> a = np.zeros((8, 8, 3), np.uint8)
    >>> round(js_divergence(channel_histograms(a)[0], channel_histograms(a)[0]), 6)
    0.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from instacolor.color import rgb_to_lab
from instacolor.errors import InputError
from instacolor.video.flow import FlowSettings, estimate_motion, warp

__all__ = [
    "cdc",
    "channel_histograms",
    "chroma_warp_error",
    "js_divergence",
    "psnr",
    "warp_error",
]

CDC_STEPS = (1, 2, 4)


def _ab(rgb: np.ndarray) -> np.ndarray:
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / scale
    return rgb_to_lab(tensor)[1:].permute(1, 2, 0).numpy()


def _gray8(rgb: np.ndarray) -> np.ndarray:
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    lab_l = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float() / scale)[0].numpy()
    return np.clip(lab_l * 2.55 + 0.5, 0, 255).astype(np.uint8)


def _guide_gray(plane: np.ndarray) -> np.ndarray:
    """A guide frame as the flow's ``(H, W)`` uint8 gray: see :func:`warp_error`."""
    plane = np.asarray(plane)
    if plane.ndim == 3 and plane.shape[2] == 3 and plane.dtype in (np.uint8, np.uint16):
        return _gray8(np.ascontiguousarray(plane))
    if plane.ndim == 2 and plane.dtype == np.uint8:
        return plane
    if plane.ndim == 2 and np.issubdtype(plane.dtype, np.floating):
        return np.clip(plane * 2.55 + 0.5, 0, 255).astype(np.uint8)
    raise InputError(
        "warp_error: expected guide frames as (H, W) uint8 gray, (H, W) float Lab L "
        f"(0-100) or (H, W, 3) uint8/uint16 sRGB; received {plane.dtype} {plane.shape}; "
        "pass the gray input frames that were colorized"
    )


def warp_error(
    frames: Iterable[np.ndarray],
    flow: FlowSettings | None = None,
    guide: Sequence[np.ndarray] | None = None,
) -> float:
    """Mean chroma difference along the flow between consecutive frames (Lab units).

    Args:
        frames: ``(H, W, 3)`` uint8 or uint16 sRGB frames in order (one shot: a cut
            counts as motion the flow cannot follow and is mostly masked out).
        flow: flow settings (default: ``medium`` DIS preset).
        guide: the frames the flow is computed from, one per frame of ``frames``, of
            their size: the input video's gray frames (``(H, W)`` uint8 gray levels,
            ``(H, W)`` float Lab L in 0-100, or ``(H, W, 3)`` uint8/uint16 sRGB, whose L
            is taken). Give it to compare outputs of one input: all are then measured
            along the input's flow (Lai et al. 2018; TCVC). ``None`` (default): the flow
            runs on each output frame's own L.

    Returns:
        The mean over frame pairs of the masked mean ``|ab_t - warp(ab_{t-1})|``.

    Raises:
        InputError: fewer than two frames; ``guide`` with another number of frames, a
            frame of another size or of an unknown kind.
    """
    counted = [0]

    def pairs():
        for i, rgb in enumerate(frames):
            if guide is None:
                gray = _gray8(rgb)
            else:
                if i >= len(guide):
                    raise InputError(
                        f"warp_error: expected one guide frame per frame; received "
                        f"{len(guide)} guide frames for more frames; pass the input's gray "
                        "frames, one per frame"
                    )
                gray = _guide_gray(guide[i])
                if gray.shape != rgb.shape[:2]:
                    raise InputError(
                        f"warp_error: expected guide frame {i} of the frame's size "
                        f"{rgb.shape[1]}x{rgb.shape[0]}; received {gray.shape[1]}x"
                        f"{gray.shape[0]}; pass the input's gray frames at the output's size"
                    )
            counted[0] += 1
            yield gray, _ab(rgb)

    errors = _along_flow(pairs(), flow)
    if guide is not None and counted[0] != len(guide):
        raise InputError(
            f"warp_error: expected one guide frame per frame ({counted[0]} frames); received "
            f"{len(guide)} guide frames; pass the input's gray frames, one per frame"
        )
    if not errors:
        raise InputError("warp_error: expected at least two frames with trackable content")
    return float(np.mean(errors))


def chroma_warp_error(
    chroma: Sequence[np.ndarray], guide: Sequence[np.ndarray], flow: FlowSettings | None = None
) -> float:
    """:func:`warp_error` of chroma planes themselves, before they are joined to L and
    rounded to an image.

    Args:
        chroma: ``(H, W, 2)`` float a, b planes in order.
        guide: the frames the flow is computed from, one per plane (as for
            :func:`warp_error`).
        flow: flow settings (default: ``medium`` DIS preset).

    Returns:
        The mean over plane pairs of the masked mean ``|ab_t - warp(ab_{t-1})|``.

    Raises:
        InputError: fewer than two planes with trackable content; a guide of another
            number of frames or of an unknown kind.
    """
    if len(chroma) != len(guide):
        raise InputError(
            f"chroma_warp_error: expected one guide frame per chroma plane ({len(chroma)}); "
            f"received {len(guide)}; pass the input's gray frames, one per frame"
        )
    errors = _along_flow(((_guide_gray(g), c) for g, c in zip(guide, chroma)), flow)
    if not errors:
        raise InputError("chroma_warp_error: expected at least two planes with trackable content")
    return float(np.mean(errors))


def _along_flow(pairs: Iterable[tuple[np.ndarray, np.ndarray]], flow: FlowSettings | None):
    """Per consecutive pair of ``(gray (H, W) uint8, ab (H, W, 2))``: the mean of
    ``|ab_t - warp(ab_{t-1})|`` where the flow between the grays is consistent."""
    flow = flow or FlowSettings(preset="medium")
    previous = None
    errors = []
    for gray, ab in pairs:
        if previous is not None:
            motion = estimate_motion(previous[0], gray, flow)
            diff = np.linalg.norm(ab - warp(previous[1], motion), axis=2)
            if motion.consistent.any():
                errors.append(float(diff[motion.consistent].mean()))
        previous = (gray, ab)
    return errors


def channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """``(3, 256)`` normalised histograms of the RGB channels (uint16 taken to 8 bits)."""
    if rgb.dtype == np.uint16:
        rgb = (rgb >> 8).astype(np.uint8)
    counts = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)])
    return counts / counts.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log) of two histograms."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float((a[keep] * np.log(a[keep] / m[keep])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def cdc(frames: Iterable[np.ndarray], steps: Sequence[int] = CDC_STEPS) -> float:
    """Colour distribution consistency (TCVC): lower is steadier.

    Only the histograms are kept, so frames may be streamed.

    Raises:
        InputError: fewer frames than the largest step plus one.
    """
    histograms = [channel_histograms(rgb) for rgb in frames]
    if len(histograms) <= max(steps):
        raise InputError(f"cdc: expected more than {max(steps)} frames, got {len(histograms)}")
    total = 0.0
    for d in steps:
        values = [
            np.mean([js_divergence(histograms[i][c], histograms[i + d][c]) for c in range(3)])
            for i in range(len(histograms) - d)
        ]
        total += float(np.mean(values)) / len(steps)
    return total


def psnr(frames: Iterable[np.ndarray], references: Iterable[np.ndarray]) -> float:
    """Mean over frames of the RGB PSNR (dB, 8-bit scale) against the references."""
    values = []
    for out, ref in zip(frames, references, strict=True):
        if out.shape != ref.shape:
            raise InputError(f"psnr: frame {out.shape} and reference {ref.shape} differ")
        mse = np.mean((out.astype(np.float64) - ref.astype(np.float64)) ** 2)
        values.append(10 * np.log10(255.0**2 / max(mse, 1e-12)))
    if not values:
        raise InputError("psnr: expected at least one frame")
    return float(np.mean(values))
