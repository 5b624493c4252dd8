"""8-bit sRGB that keeps the chroma: each pixel's lattice point chosen in Lab (measured, not used).

Rounding each sRGB channel to the nearest of 256 levels moves a pixel's chroma (Lab a, b)
by a fraction of a unit, and differently wherever the luminance differs, so a steady
colour over a changing luminance flickers a little in a video. :func:`quantize_rgb8`
chooses instead, per pixel, among the 8 lattice points around the exact value (each
channel rounded down or up) the one whose chroma is closest to the intended one, among
those that keep the luminance as close as nearest rounding does: an L error up to
``max(nearest's L error, half a gray level)`` (:func:`half_level`). Nearest rounding's
point is always a candidate and is kept unless another one is closer in chroma (checked on
the exact Lab of both), and no channel goes a level ``1 - 0.02`` or more away from its
exact value (two colours a float's noise apart stay within one level, as with nearest
rounding). The candidates are ranked on a first-order expansion of the XYZ -> Lab curve
around the exact colour (the lattice points' linear-light values are exact: a 256-entry
table).

The library rounds to nearest; docs/video.md ("Where v39's warp error comes from") gives
the measurements of this alternative (``tools/measure_quantize.py``) and why it was not
adopted.

Example:
    >>> import torch
    >>> rgb = torch.tensor([0.3, 0.5, 0.7]).view(3, 1, 1)
    >>> quantize_rgb8(rgb, torch.tensor([[52.1]])).flatten().tolist()  # nearest: 76, 128, 178
    [77.0, 128.0, 179.0]
"""

from __future__ import annotations

import torch

from instacolor.color import D65_WHITE, gray_to_l, l_to_gray, srgb_to_linear

__all__ = ["half_level", "quantize_rgb8"]

_TABLE_STEPS = 1024  # the half-level table samples L every 100 / 1024
#: No channel goes to a level ``1 - _REACH_MARGIN`` or more away from its exact value, so two
#: colours closer than ``2 * _REACH_MARGIN`` levels (two backends' float noise) never come out
#: more than one level apart, as with nearest rounding.
_REACH_MARGIN = 0.02
_MARGIN = 1e-4  # a switch away from nearest rounding must win by this much (Lab units)
_EPSILON = 0.008856  # the Lab curve's joint, as instacolor.color
_KAPPA_SLOPE = 7.787
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_LINEAR_LEVELS: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
_HALF_LEVEL: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def half_level(light: torch.Tensor) -> torch.Tensor:
    """Half the L step between the two 8-bit gray levels around ``light`` (any shape).

    0.137 near black, 0.25 at L = 10, 0.17 near white: a pixel whose L is off by less
    than this re-converts to within half a gray level of ``light``'s.
    """
    key = (light.dtype, light.device)
    if key not in _HALF_LEVEL:
        grid = torch.linspace(0.0, 100.0, _TABLE_STEPS + 1, dtype=torch.float64)
        level = (l_to_gray(grid) * 255.0).clamp(0.5, 254.5)
        step = gray_to_l((level + 0.5) / 255.0) - gray_to_l((level - 0.5) / 255.0)
        _HALF_LEVEL[key] = (0.5 * step).to(light.device, light.dtype)
    index = (light * (_TABLE_STEPS / 100.0)).round_().clamp_(0, _TABLE_STEPS).long()
    return _HALF_LEVEL[key].take(index)


def _levels(like: torch.Tensor) -> torch.Tensor:
    """Linear-light value of each of the 256 sRGB levels, cached per dtype and device."""
    key = (like.dtype, like.device)
    if key not in _LINEAR_LEVELS:
        levels = srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0)
        _LINEAR_LEVELS[key] = levels.to(like.device, like.dtype)
    return _LINEAR_LEVELS[key]


def _lab_and_slopes(linear: torch.Tensor):
    """Lab of linear RGB ``(3, N)`` and ``d(L, a, b) / d(linear channel)``: ``(3, 3, N)``."""
    white = torch.tensor(D65_WHITE, dtype=linear.dtype, device=linear.device).view(3, 1)
    matrix = torch.tensor(_XYZ_FROM_RGB, dtype=linear.dtype, device=linear.device) / white
    t = matrix @ linear  # (3, N): X/Xn, Y, Z/Zn
    above = t > _EPSILON
    root = t.clamp_min(_EPSILON).pow(1.0 / 3.0)
    f = torch.where(above, root, _KAPPA_SLOPE * t + 16.0 / 116.0)
    slope = torch.where(above, root / (3.0 * t.clamp_min(_EPSILON)), _KAPPA_SLOPE)
    fx, fy, fz = f
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)))
    g = slope.unsqueeze(1) * matrix.unsqueeze(-1)  # (xyz, channel, N): d f / d linear
    slopes = torch.stack((116.0 * g[1], 500.0 * (g[0] - g[1]), 200.0 * (g[1] - g[2])))
    return lab, slopes  # slopes: (Lab component, channel, N)


def _exact_lab(levels: torch.Tensor, rgb8: torch.Tensor) -> torch.Tensor:
    """Lab ``(3, N)`` of integral sRGB levels ``(3, N)`` (as :func:`rgb_to_lab` of ``/255``)."""
    linear = levels.take(rgb8.long())
    white = torch.tensor(D65_WHITE, dtype=linear.dtype, device=linear.device).view(3, 1)
    t = (torch.tensor(_XYZ_FROM_RGB, dtype=linear.dtype, device=linear.device) / white) @ linear
    f = torch.where(t > _EPSILON, t.clamp_min(_EPSILON).pow(1.0 / 3.0), _KAPPA_SLOPE * t + 16 / 116)
    return torch.stack((116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])))


def _combine(moves: torch.Tensor) -> torch.Tensor:
    """``(2, N)`` per channel (r, g, b) -> ``(8, N)`` sums, candidate ``4 r + 2 g + b``."""
    r, g, b = moves
    n = r.shape[-1]
    return ((r.view(2, 1, n) + g.view(1, 2, n)).view(4, 1, n) + b.view(1, 2, n)).view(8, n)


def _choose(x, light, levels, light_tolerance):
    """Chosen levels ``(3, N)`` for one chunk of ``x = 255 rgb`` ``(3, N)``."""
    low = x.floor().clamp_(0.0, 255.0)
    high = (low + 1.0).clamp_(max=255.0)
    up = ((x.round() > low) & (high > low)).long()
    if light_tolerance is None:
        tolerance = half_level(light)
    else:
        tolerance = torch.full_like(light, light_tolerance)
    nearest = 4 * up[0] + 2 * up[1] + up[2]
    linear = srgb_to_linear((x / 255.0).clamp_(0.0, 1.0))
    lab, slopes = _lab_and_slopes(linear)
    steps = torch.stack((levels.take(low.long()), levels.take(high.long())), 1)
    steps -= linear.unsqueeze(1)
    moves = slopes.unsqueeze(2) * steps.unsqueeze(0)  # (Lab, channel, side, N)
    chroma = _combine(moves[1]).square_() + _combine(moves[2]).square_()
    light_error = _combine(moves[0]).add_(lab[0] - light).abs_()
    bound = torch.maximum(light_error.gather(0, nearest.unsqueeze(0)), tolerance)
    chroma.add_(light_error.gt_(bound), alpha=1e9)  # too far in L: never the least
    far = torch.stack((x - low, high - x), 1).gt_(1.0 - _REACH_MARGIN)  # (channel, side, N)
    chroma.add_(_combine(far.to(x.dtype)), alpha=1e9)  # a level 1 - margin or more away
    best = chroma.min(0).indices
    bits = torch.stack(((best >> 2) & 1, (best >> 1) & 1, best & 1)).to(x.dtype)
    rounded = low + up.to(x.dtype) * (high - low)
    switch = (best != nearest).nonzero().squeeze(1)
    if switch.numel():  # exact Lab of both points: keep the chosen one only if really better
        low, high = low.index_select(1, switch), high.index_select(1, switch)
        chosen = low + bits.index_select(1, switch) * (high - low)
        near = rounded.index_select(1, switch)
        target = lab.index_select(1, switch)
        lab_c, lab_n = _exact_lab(levels, chosen), _exact_lab(levels, near)
        err_c = (lab_c[1:] - target[1:]).square().sum(0)
        err_n = (lab_n[1:] - target[1:]).square().sum(0)
        light = light.index_select(0, switch)
        light_c = (lab_c[0] - light).abs()
        light_n = torch.maximum((lab_n[0] - light).abs(), tolerance.index_select(0, switch))
        keep = (err_c.sqrt() < err_n.sqrt() - _MARGIN) & (light_c <= light_n)
        rounded.index_copy_(1, switch, torch.where(keep, chosen, near))
    return rounded


def quantize_rgb8(
    rgb: torch.Tensor,
    light: torch.Tensor,
    light_tolerance: float | None = None,
    *,
    chunk: int = 1 << 15,
) -> torch.Tensor:
    """Integral 8-bit levels of ``rgb``, each pixel's lattice point chosen to keep its chroma.

    Args:
        rgb: ``(3, H, W)`` float sRGB in ``[0, 1]`` (the exact colour, already in gamut).
        light: ``(H, W)`` float, the L (0..100) the output must keep.
        light_tolerance: L error (Lab units) allowed to any point, or None: half a gray
            level (:func:`half_level`); a point farther than this from ``light`` is chosen
            only if nearest rounding's is as far.
        chunk: pixels processed at a time (the work arrays stay in the CPU's cache).

    Returns:
        ``(3, H, W)`` tensor of ``rgb``'s dtype holding integers in ``[0, 255]``.
    """
    x = rgb.reshape(3, -1) * 255.0
    flat_light = light.reshape(-1).to(x.dtype)
    levels = _levels(x)
    out = torch.empty_like(x)
    for start in range(0, x.shape[1], chunk):
        part = slice(start, start + chunk)
        out[:, part] = _choose(x[:, part], flat_light[part], levels, light_tolerance)
    return out.view(rgb.shape)
