"""Evaluation metrics for colorization: PSNR, SSIM, colorfulness, CIEDE2000, boundary bleeding.

Images are ``(H, W, 3)`` numpy arrays, ``uint8`` sRGB or float sRGB in ``[0, 1]`` (taken as
``round(x * 255)``); every metric returns a Python ``float``. The conventions:

* PSNR: ``20 * log10(255 / sqrt(MSE))`` over all pixels and channels; ``inf`` when equal.
* SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data
  range 255, population covariances, per RGB channel then averaged, mean over the 'valid'
  region (5 pixels cropped at each border), as ``skimage.metrics.structural_similarity``.
* Colorfulness: Hasler & Suesstrunk 2003 on 0..255 RGB.
* deltaE 2000: CIEDE2000 (Sharma et al. 2005) in Lab D65, mean over pixels.
* Boundary bleeding: mean Euclidean ab distance in a band around instance boundaries.
* :func:`gray_baseline`: the ab = 0 rendering, the floor every number is read against.

Invalid arguments raise :class:`~instacolor.errors.InputError` with expected vs received.

Example:
    >>> import numpy as np
    >>> from instacolor.metrics import colorfulness, psnr, ssim
    >>> image = np.full((16, 16, 3), 100, dtype=np.uint8)
    >>> psnr(image, image), ssim(image, image), round(psnr(image, image + 10), 2)
    (inf, 1.0, 28.13)
    >>> colorfulness(image)
    0.0
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from instacolor.color import l_to_gray, rgb_to_l, rgb_to_lab
from instacolor.errors import InputError

__all__ = [
    "boundary_bleeding",
    "ciede2000",
    "colorfulness",
    "delta_e2000",
    "evaluate_pair",
    "gray_baseline",
    "psnr",
    "ssim",
]

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # 5 -> 11 taps, as scipy.ndimage with truncate 3.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_POW25_7 = 25.0**7


def _as_rgb8(image, name: str) -> np.ndarray:
    """Validate an ``(H, W, 3)`` image; return it as ``uint8``."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy.ndarray, received {type(image).__name__}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"{name}: expected shape (H, W, 3), received {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind != "f":
        raise InputError(f"{name}: expected dtype uint8 or float, received {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise InputError(f"{name}: expected float values in [0, 1], received values outside")
    return np.round(image.astype(np.float64) * 255.0).astype(np.uint8)


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _as_rgb8(pred, "pred"), _as_rgb8(target, "target")
    if pred.shape != target.shape:
        raise InputError(f"target: expected shape {pred.shape}, received {target.shape}")
    return pred, target


def _rgb(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` to a float64 tensor ``(3, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).double() / 255.0


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two RGB images (peak 255).

    Args:
        pred: ``(H, W, 3)`` uint8 in ``[0, 255]`` or float in ``[0, 1]``.
        target: same shape as ``pred``.

    Returns:
        ``20 * log10(255 / sqrt(MSE))``, MSE over all pixels and channels; ``inf`` if equal.
    """
    pred, target = _pair(pred, target)
    mse = float(np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _valid_gaussian(image: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian over axes 0 and 1 keeping only the fully covered pixels."""
    taps = np.exp(-0.5 * (np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1) / _SSIM_SIGMA) ** 2)
    taps /= taps.sum()
    height, width = image.shape[0] - 2 * _SSIM_RADIUS, image.shape[1] - 2 * _SSIM_RADIUS
    rows = sum(w * image[k : k + height] for k, w in enumerate(taps))
    return sum(w * rows[:, k : k + width] for k, w in enumerate(taps))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) of two RGB images.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``; ``H`` and ``W`` at least 11.
        target: same shape as ``pred``.

    Returns:
        SSIM in ``[-1, 1]`` (1 when equal): per channel over the valid region, averaged.

    Raises:
        InputError: bad inputs, or an image smaller than the 11x11 window.
    """
    pred, target = _pair(pred, target)
    if min(pred.shape[:2]) < 2 * _SSIM_RADIUS + 1:
        raise InputError(f"pred: expected H and W >= 11 for SSIM, received {pred.shape}")
    x, y = pred.astype(np.float64), target.astype(np.float64)
    ux, uy = _valid_gaussian(x), _valid_gaussian(y)
    vx, vy = _valid_gaussian(x * x) - ux * ux, _valid_gaussian(y * y) - uy * uy
    vxy = _valid_gaussian(x * y) - ux * uy
    num = (2 * ux * uy + _SSIM_C1) * (2 * vxy + _SSIM_C2)
    den = (ux * ux + uy * uy + _SSIM_C1) * (vx + vy + _SSIM_C2)
    return float(np.mean(num / den))  # every channel has the same size: mean of means


def colorfulness(image: np.ndarray) -> float:
    """Colorfulness of Hasler & Suesstrunk 2003 (0 for gray; ~100+ is very colourful).

    On 0..255 RGB: ``rg = R - G``, ``yb = (R + G) / 2 - B`` and
    ``C = sqrt(var(rg) + var(yb)) + 0.3 * sqrt(mean(rg)**2 + mean(yb)**2)``
    (population variances over all pixels).

    Args:
        image: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.

    Returns:
        ``C >= 0``.
    """
    rgb = _as_rgb8(image, "image").astype(np.float64)
    rg, yb = rgb[..., 0] - rgb[..., 1], 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = math.sqrt(float(rg.var()) + float(yb.var()))
    return spread + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))


def _cosd(degrees: torch.Tensor) -> torch.Tensor:
    return torch.cos(torch.deg2rad(degrees))


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 colour difference (Sharma, Wu & Dalal 2005, kL = kC = kH = 1).

    Args:
        lab1: ``(*, 3, H, W)`` float Lab (L in [0, 100]); float64 recommended.
        lab2: same shape as ``lab1``.

    Returns:
        ``(*, H, W)`` non-negative differences, dtype and device of ``lab1``.
    """
    for name, lab in (("lab1", lab1), ("lab2", lab2)):
        if not isinstance(lab, torch.Tensor) or not lab.is_floating_point():
            raise InputError(f"{name}: expected a float torch.Tensor, received {type(lab)}")
        if lab.dim() < 3 or lab.shape[-3] != 3:
            raise InputError(f"{name}: expected shape (*, 3, H, W), received {tuple(lab.shape)}")
    if lab1.shape != lab2.shape:
        raise InputError(f"lab2: expected shape {tuple(lab1.shape)}, received {tuple(lab2.shape)}")
    l1, a1, b1 = lab1.unbind(-3)
    l2, a2, b2 = lab2.to(lab1).unbind(-3)
    c_bar7 = ((torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - torch.sqrt(c_bar7 / (c_bar7 + _POW25_7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360  # atan2(0, 0) = 0 as the paper asks
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    chroma0 = (c1p * c2p) == 0
    dh = h2p - h1p  # no need to zero it where a chroma is 0: d_hue is 0 there anyway
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    d_hue = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh) / 2)
    h_sum = h1p + h2p
    h_far = torch.where(h_sum < 360, h_sum + 360, h_sum - 360) / 2
    h_bar = torch.where(chroma0, h_sum, torch.where((h1p - h2p).abs() <= 180, h_sum / 2, h_far))
    t = 1 - 0.17 * _cosd(h_bar - 30) + 0.24 * _cosd(2 * h_bar) + 0.32 * _cosd(3 * h_bar + 6)
    t, c_barp = t - 0.20 * _cosd(4 * h_bar - 63), (c1p + c2p) / 2
    l_off2 = ((l1 + l2) / 2 - 50) ** 2
    s_l = 1 + 0.015 * l_off2 / torch.sqrt(20 + l_off2)
    s_c, s_h = 1 + 0.045 * c_barp, 1 + 0.015 * c_barp * t
    r_c = 2 * torch.sqrt(c_barp**7 / (c_barp**7 + _POW25_7))
    r_t = -torch.sin(torch.deg2rad(60 * torch.exp(-(((h_bar - 275) / 25) ** 2)))) * r_c
    dl, dc, dh_s = (l2 - l1) / s_l, (c2p - c1p) / s_c, d_hue / s_h
    return torch.sqrt((dl**2 + dc**2 + dh_s**2 + r_t * dc * dh_s).clamp_min(0))


def delta_e2000(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean CIEDE2000 between two RGB images, converted to Lab D65 in float64.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        target: same shape as ``pred``.

    Returns:
        Mean deltaE 2000 over pixels (0 when equal; ~2 is a just noticeable difference).
    """
    pred, target = _pair(pred, target)
    return float(ciede2000(rgb_to_lab(_rgb(pred)), rgb_to_lab(_rgb(target))).mean())


def _as_ab(value, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        kind = getattr(value, "dtype", type(value).__name__)
        raise InputError(f"{name}: expected a float numpy.ndarray, received {kind}")
    if value.ndim != 3 or value.shape[0] != 2:
        raise InputError(f"{name}: expected shape (2, H, W), received {value.shape}")
    return value.astype(np.float64)


def boundary_bleeding(ab_pred, ab_target, masks, *, band: int = 3) -> float:
    """Colour bleeding across instance boundaries: mean ab error in a band around them.

    The band of an instance is ``dilate(mask) XOR erode(mask)`` with a ``(2*band+1)`` square
    kernel: pixels within ``band`` pixels (chessboard distance) on either side of its boundary;
    the image border is no boundary. Bands are united over instances; the error of a pixel is
    the Euclidean ab distance ``sqrt((a_pred - a_gt)**2 + (b_pred - b_gt)**2)`` in Lab units.

    Args:
        ab_pred: ``(2, H, W)`` float predicted a, b in Lab units.
        ab_target: ``(2, H, W)`` float ground-truth a, b.
        masks: ``(N, H, W)`` bool (or integer, nonzero = inside) instance masks.
        band: half width of the band in pixels, >= 1.

    Returns:
        Mean Euclidean ab error over the band; NaN when the band is empty (no instances).
    """
    ab_pred, ab_target = _as_ab(ab_pred, "ab_pred"), _as_ab(ab_target, "ab_target")
    if ab_pred.shape != ab_target.shape:
        raise InputError(f"ab_target: expected shape {ab_pred.shape}, received {ab_target.shape}")
    masks = np.asarray(masks)
    if masks.dtype != bool and masks.dtype.kind not in "iu":
        raise InputError(f"masks: expected dtype bool, received dtype {masks.dtype}")
    if masks.ndim != 3 or masks.shape[1:] != ab_pred.shape[1:]:
        expected = f"(N, {ab_pred.shape[1]}, {ab_pred.shape[2]})"
        raise InputError(f"masks: expected shape {expected}, received {masks.shape}")
    if isinstance(band, bool) or not isinstance(band, int) or band < 1:
        raise InputError(f"band: expected an integer >= 1, received {band!r}")
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    region = np.zeros(masks.shape[1:], dtype=bool)
    for mask in masks:
        mask8 = (mask != 0).astype(np.uint8)
        region |= cv2.dilate(mask8, kernel).astype(bool) ^ cv2.erode(mask8, kernel).astype(bool)
    if not region.any():
        return float("nan")
    return float(np.sqrt(((ab_pred - ab_target) ** 2).sum(axis=0))[region].mean())


def gray_baseline(image: np.ndarray) -> np.ndarray:
    """The ab = 0 rendering of an image: keep Lab L, set a = b = 0, back to sRGB.

    Args:
        image: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.

    Returns:
        ``(H, W, 3)`` uint8 with R = G = B and the L of ``image`` (to uint8 rounding). With
        scikit-image's matrices this neutral gray has ``|a|, |b| < 0.01``, not exactly 0.
    """
    gray = l_to_gray(rgb_to_l(_rgb(_as_rgb8(image, "image"))))[0].clamp(0, 1).numpy()
    return np.repeat(np.round(gray * 255.0).astype(np.uint8)[..., None], 3, axis=-1)


def evaluate_pair(pred: np.ndarray, target: np.ndarray, *, masks=None) -> dict[str, float]:
    """All metrics for one predicted image against its ground truth.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``; ``H, W >= 11``.
        target: same shape as ``pred``.
        masks: optional ``(N, H, W)`` bool instance masks for :func:`boundary_bleeding`.

    Returns:
        ``psnr``, ``ssim``, ``colorfulness`` (of pred), ``colorfulness_gt``,
        ``delta_e2000`` and, with masks, ``boundary_bleeding`` (band 3).
    """
    pred, target = _pair(pred, target)
    lab_pred, lab_target = rgb_to_lab(_rgb(pred)), rgb_to_lab(_rgb(target))
    result = {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "colorfulness": colorfulness(pred),
        "colorfulness_gt": colorfulness(target),
        "delta_e2000": float(ciede2000(lab_pred, lab_target).mean()),
    }
    if masks is not None:
        result["boundary_bleeding"] = boundary_bleeding(
            lab_pred[1:].numpy(), lab_target[1:].numpy(), masks
        )
    return result
