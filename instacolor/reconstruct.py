"""Stage 5: bring the predicted chroma to full resolution and join it to the original L.

The network predicts ``ab`` (Lab chroma) at a small square working resolution. This
module upsamples it to the original ``H x W`` guided by the full-resolution ``L``
(fast guided filter / joint guided upsampling, He & Sun 2015), joins it to the
*original* ``L`` and converts to sRGB, shrinking the chroma of out-of-gamut pixels
so that luminance is never altered. :func:`reconstruct` does this in horizontal
bands so that scans of up to ~100 megapixels need memory proportional to the band,
not to the image.

Example:
    >>> import numpy as np, torch
    >>> from instacolor.reconstruct import reconstruct
    >>> ab_low, l_low = torch.zeros(2, 8, 8), torch.full((8, 8), 50.0)
    >>> l_full = np.full((30, 20), 50.0, dtype=np.float32)
    >>> reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8).shape
    (30, 20, 3)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from instacolor.color import lab_to_rgb, lab_to_xyz, quantize_rgb8, rgb_to_xyz
from instacolor.errors import InputError

__all__ = ["ROUNDINGS", "compose_rgb", "guided_upsample_ab", "reconstruct"]

#: How ``reconstruct`` rounds to 8 bits: each channel to nearest, or chroma kept.
ROUNDINGS = ("nearest", "chroma")

_BISECT_STEPS = 12
_L_TOLERANCE = 1e-2  # how far outside [0, 100] an input L may stray (then it is clamped)
_OUT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): None}


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise InputError(
                f"{name}: expected a floating point array, received dtype {value.dtype}"
            )
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise InputError(
            f"{name}: expected a torch.Tensor or numpy.ndarray, received {type(value).__name__}"
        )
    if not value.is_floating_point():
        raise InputError(f"{name}: expected a floating point array, received dtype {value.dtype}")
    return value


def _check_finite(value: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise InputError(f"{name}: expected finite values, received NaN or infinity")


def _check_light_range(light: torch.Tensor, name: str) -> None:
    """Finite and in ``[0, 100]`` (within the tolerance), in one pass over ``light``."""
    low, high = (float(v) for v in torch.aminmax(light))
    if not (math.isfinite(low) and math.isfinite(high)):  # a NaN propagates to both
        raise InputError(f"{name}: expected finite values, received NaN or infinity")
    if low < -_L_TOLERANCE or high > 100.0 + _L_TOLERANCE:
        raise InputError(f"{name}: expected L in [0, 100], received values in [{low}, {high}]")


def _check_low(ab_low, l_low, radius, eps) -> tuple[torch.Tensor, torch.Tensor]:
    ab_low = _as_tensor(ab_low, "ab_low")
    l_low = _as_tensor(l_low, "l_low")
    if ab_low.dim() != 3 or ab_low.shape[0] != 2 or min(ab_low.shape) < 1:
        raise InputError(f"ab_low: expected shape (2, h, w), received {tuple(ab_low.shape)}")
    if tuple(l_low.shape) != tuple(ab_low.shape[1:]):
        raise InputError(
            f"l_low: expected shape {tuple(ab_low.shape[1:])} (the h, w of ab_low), "
            f"received {tuple(l_low.shape)}"
        )
    _check_finite(ab_low, "ab_low")
    _check_finite(l_low, "l_low")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise InputError(f"radius: expected an int >= 0, received {radius!r}")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise InputError(f"eps: expected a finite number > 0, received {eps!r}")
    return ab_low, l_low


def _full_shape(l_full, name: str = "l_full") -> tuple[int, int]:
    if not isinstance(l_full, (np.ndarray, torch.Tensor)):
        raise InputError(
            f"{name}: expected a torch.Tensor or numpy.ndarray, received {type(l_full).__name__}"
        )
    if l_full.ndim != 2 or min(l_full.shape) < 1:
        raise InputError(f"{name}: expected shape (H, W), received {tuple(l_full.shape)}")
    return int(l_full.shape[0]), int(l_full.shape[1])


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1)^2`` window clipped to the image; ``x`` is ``(C, h, w)``."""
    for dim in (1, 2):
        n = x.shape[dim]
        sums = torch.cat((torch.zeros_like(x.narrow(dim, 0, 1)), x.cumsum(dim)), dim)
        index = torch.arange(n, device=x.device)
        upper = (index + radius + 1).clamp_max(n)
        lower = (index - radius).clamp_min(0)
        count = (upper - lower).to(x.dtype).view([-1 if d == dim else 1 for d in range(3)])
        x = (sums.index_select(dim, upper) - sums.index_select(dim, lower)) / count
    return x


def _coefficients(ab_low: torch.Tensor, l_low: torch.Tensor, radius: int, eps: float):
    """Averaged guided-filter coefficients ``(4, h, w)`` float32: ``A_a, A_b, B_a, B_b``."""
    guide = (l_low.double() / 100.0).unsqueeze(0)
    src = ab_low.double()
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(src, radius)
    var_i = (_box_mean(guide * guide, radius) - mean_i * mean_i).clamp_min(0.0)
    cov_ip = _box_mean(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return torch.cat((_box_mean(a, radius), _box_mean(b, radius))).float().contiguous()


def _interp(n_in: int, n_out: int, start: int, stop: int, device):
    """Source indices and weights of bilinear resizing (``align_corners=False``)."""
    dst = torch.arange(start, stop, dtype=torch.float64, device=device)
    src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = (src - i0).clamp(0.0, 1.0)
    return i0, i1, (1.0 - w1).float(), w1.float()


def _apply_band(coef, light_band, start, h_full, columns) -> torch.Tensor:
    """Guided ab ``(2, rows, W)`` for full-resolution rows ``start:start+rows``.

    Only elementwise products and sums are used (no fused multiply-add), so a row
    comes out bit-identical whichever band it is computed in.
    """
    rows = light_band.shape[0]
    y0, y1, wy0, wy1 = _interp(coef.shape[1], h_full, start, start + rows, coef.device)
    vert = coef.index_select(1, y0) * wy0.view(-1, 1) + coef.index_select(1, y1) * wy1.view(-1, 1)
    x0, x1, wx0, wx1 = columns
    horiz = vert.index_select(2, x0).mul_(wx0)
    horiz += vert.index_select(2, x1).mul_(wx1)
    del vert
    return horiz[:2] * (light_band / 100.0) + horiz[2:]  # a fresh tensor; horiz is freed


def guided_upsample_ab(
    ab_low: torch.Tensor,
    l_low: torch.Tensor,
    l_full: torch.Tensor,
    *,
    radius: int = 2,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Upsample predicted chroma to full resolution with a fast guided filter.

    The per-pixel linear model ``ab = A * L/100 + B`` of a guided filter is fitted at
    the low resolution (guide ``l_low / 100``, box radius ``radius``, regulariser
    ``eps``), ``A`` and ``B`` are upsampled bilinearly (``align_corners=False``) and
    applied to the full-resolution guide, so chroma edges follow luminance edges.

    Args:
        ab_low: ``(2, h, w)`` float tensor, predicted a and b in Lab units.
        l_low: ``(h, w)`` float tensor, the L (0..100) the network saw.
        l_full: ``(H, W)`` float tensor, the original L (0..100); any ``H, W >= 1``.
        radius: Box filter radius in low-resolution pixels (``>= 0``).
        eps: Regulariser (``> 0``) on the variance of the guide in ``[0, 1]`` units.

    Returns:
        ``(2, H, W)`` float32 tensor, a and b in Lab units, on ``ab_low``'s device.

    Raises:
        InputError: On wrong shapes, non-float dtypes, non-finite values or bad options.
    """
    ab_low, l_low = _check_low(ab_low, l_low, radius, eps)
    h_full, w_full = _full_shape(l_full)
    light = _as_tensor(l_full, "l_full")
    _check_finite(light, "l_full")
    coef = _coefficients(ab_low, l_low, radius, eps).to(ab_low.device)
    columns = _interp(coef.shape[2], w_full, 0, w_full, coef.device)
    return _apply_band(coef, light.to(coef.device, torch.float32), 0, h_full, columns)


def _lab_pixels_to_rgb(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return lab_to_rgb(torch.cat((light.unsqueeze(0), ab)).unsqueeze(-1)).squeeze(-1)


def _in_gamut(rgb: torch.Tensor) -> torch.Tensor:
    return ((rgb >= 0.0) & (rgb <= 1.0)).all(dim=0)


def _all_in_gamut(rgb: torch.Tensor) -> bool:
    """Whether every pixel is in gamut: one reduction, no per-pixel mask."""
    low, high = torch.aminmax(rgb)
    return bool(low >= 0.0) and bool(high <= 1.0)


def _rgb_from_xyz(like: torch.Tensor) -> torch.Tensor:
    """XYZ -> linear RGB matrix, the inverse of the one :func:`rgb_to_xyz` applies."""
    eye = torch.eye(3, dtype=torch.float64).unsqueeze(-1)  # three pure primaries as pixels
    return torch.linalg.inv(rgb_to_xyz(eye).squeeze(-1)).to(like.device, like.dtype)


def _linear_in_gamut(light: torch.Tensor, ab: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Gamut test in linear RGB (the sRGB curve keeps 0 and 1 and is monotonic)."""
    xyz = lab_to_xyz(torch.cat((light.unsqueeze(0), ab)).unsqueeze(-1)).squeeze(-1)
    return _in_gamut(matrix @ xyz)


def _compose(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    light = light.clamp(0.0, 100.0)
    rgb = lab_to_rgb(torch.cat((light.unsqueeze(0), ab)))
    if _all_in_gamut(rgb):  # the usual case for photographs: skip the per-pixel mask
        return rgb.clamp_(0.0, 1.0)
    outside = ~_in_gamut(rgb)
    if bool(outside.any()):
        l_out, ab_out = light[outside], ab[:, outside]
        low = torch.zeros_like(l_out)
        high = torch.ones_like(l_out)
        matrix = _rgb_from_xyz(ab)
        for _ in range(_BISECT_STEPS):
            mid = (low + high) * 0.5
            ok = _linear_in_gamut(l_out, ab_out * mid, matrix)
            low = torch.where(ok, mid, low)
            high = torch.where(ok, high, mid)
        rgb[:, outside] = _lab_pixels_to_rgb(l_out, ab_out * low)
    return rgb.clamp_(0.0, 1.0)


def compose_rgb(l_full: torch.Tensor, ab_full: torch.Tensor) -> torch.Tensor:
    """Join L and ab into sRGB, shrinking chroma of out-of-gamut pixels to keep L.

    Pixels whose Lab colour falls outside the sRGB cube get their ``ab`` scaled by the
    largest ``s`` in ``[0, 1]`` (12-step bisection) that is in gamut; ``s = 0`` (neutral
    gray) always is. Tiny numerical excursions are then clipped, so ``rgb_to_l`` of
    the result equals ``l_full`` well within 1e-3 in float32. In-gamut pixels are
    exactly :func:`~instacolor.color.lab_to_rgb` of their Lab value.

    Args:
        l_full: ``(H, W)`` float tensor, L in ``[0, 100]`` (clamped to that range).
        ab_full: ``(2, H, W)`` float tensor, a and b in Lab units.

    Returns:
        ``(3, H, W)`` sRGB tensor in ``[0, 1]`` with the dtype of ``ab_full``.

    Raises:
        InputError: On wrong shapes, non-float dtypes or non-finite values.
    """
    h_full, w_full = _full_shape(l_full)
    light, ab = _as_tensor(l_full, "l_full"), _as_tensor(ab_full, "ab_full")
    if tuple(ab.shape) != (2, h_full, w_full):
        raise InputError(
            f"ab_full: expected shape (2, {h_full}, {w_full}), received {tuple(ab.shape)}"
        )
    _check_finite(light, "l_full")
    _check_finite(ab, "ab_full")
    return _compose(light.to(ab.device, ab.dtype), ab)


def _bands(h_full: int, w_full: int, tile_pixels: int) -> list[tuple[int, int]]:
    """Row ranges ``(start, stop)`` of the bands: about ``tile_pixels`` pixels, >= 1 row."""
    rows = max(1, tile_pixels // w_full)
    return [(start, min(start + rows, h_full)) for start in range(0, h_full, rows)]


def reconstruct(
    ab_low: torch.Tensor,
    l_low: torch.Tensor,
    l_full: np.ndarray | torch.Tensor,
    *,
    out_dtype,
    tile_pixels: int = 1 << 19,
    radius: int = 2,
    eps: float = 1e-3,
    rounding: str = "nearest",
) -> np.ndarray:
    """Full-resolution sRGB image from low-resolution ab and the original L, in bands.

    The guided-filter coefficients are fitted once at low resolution; the output is
    then produced in horizontal bands of about ``tile_pixels`` pixels (at least one
    row), each upsampled, composed with :func:`compose_rgb` and quantised into a
    preallocated array. Every row is interpolated from the same coefficients whatever
    the band, so the result does not depend on ``tile_pixels`` (beyond float rounding
    at the 1e-7 level in the colour conversion), and the extra memory is proportional
    to it (about 200 bytes a band pixel on CPU), not to ``H * W``.

    Args:
        ab_low: ``(2, h, w)`` float tensor, predicted a and b in Lab units.
        l_low: ``(h, w)`` float tensor, the L (0..100) the network saw.
        l_full: ``(H, W)`` float numpy array or tensor, the original L in ``[0, 100]``.
        out_dtype: ``numpy.uint8`` (``round(x * 255)``, or see ``rounding``),
            ``numpy.uint16`` (``round(x * 65535)``) or ``numpy.float32`` (``[0, 1]``).
        tile_pixels: Approximate number of output pixels per band (``>= 1``).
        radius: Box filter radius in low-resolution pixels (``>= 0``).
        eps: Guided filter regulariser (``> 0``).
        rounding: for ``numpy.uint8``: ``"nearest"`` (each channel to its nearest level)
            or ``"chroma"`` (each pixel on the 8-bit lattice point around ``x * 255``
            that keeps its chroma best, L within nearest rounding's error or half a gray
            level: :func:`~instacolor.color.quantize_rgb8`; steadier colour in video
            frames, about 0.2 CPU-seconds more per megapixel).

    Returns:
        ``(H, W, 3)`` numpy array of ``out_dtype``, RGB order.

    Raises:
        InputError: On wrong shapes, dtypes, non-finite or out-of-range values, or options.
    """
    ab_low, l_low = _check_low(ab_low, l_low, radius, eps)
    h_full, w_full = _full_shape(l_full)
    _as_tensor(l_full[:1], "l_full")  # checks the dtype without touching the whole image
    try:
        dtype = np.dtype(out_dtype)
    except TypeError:
        dtype = None
    if dtype not in _OUT_SCALE:
        expected = "numpy.uint8, numpy.uint16 or numpy.float32"
        raise InputError(f"out_dtype: expected {expected}, received {out_dtype!r}")
    if isinstance(tile_pixels, bool) or not isinstance(tile_pixels, int) or tile_pixels < 1:
        raise InputError(f"tile_pixels: expected an int >= 1, received {tile_pixels!r}")
    if rounding not in ROUNDINGS:
        raise InputError(f"rounding: expected one of {ROUNDINGS}, received {rounding!r}")

    coef = _coefficients(ab_low, l_low, radius, eps).to(ab_low.device)
    columns = _interp(coef.shape[2], w_full, 0, w_full, coef.device)
    scale = _OUT_SCALE[dtype]
    out = np.empty((h_full, w_full, 3), dtype=dtype)
    for start, stop in _bands(h_full, w_full, tile_pixels):
        band = _as_tensor(l_full[start:stop], "l_full").to(coef.device, torch.float32)
        _check_light_range(band, "l_full")
        rgb = _compose(band, _apply_band(coef, band, start, h_full, columns))
        if dtype == np.uint8 and rounding == "chroma":
            rgb = quantize_rgb8(rgb, band.clamp(0.0, 100.0))
        elif scale is not None:
            rgb = rgb.mul_(scale).round_()
        _store(out[start:stop], rgb.permute(1, 2, 0).cpu())
    return out


def _store(dest: np.ndarray, rgb: torch.Tensor) -> None:
    """Write ``(rows, W, 3)`` float values (integral for integer ``dest``) into ``dest``.

    uint8 and float32 go through one parallel torch copy (exact: the values are
    already rounded and in range); other dtypes through numpy.
    """
    if dest.dtype in (np.uint8, np.float32):
        torch.from_numpy(dest).copy_(rgb)
    else:
        np.copyto(dest, rgb.numpy(), casting="unsafe")
