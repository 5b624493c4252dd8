"""Colour science: sRGB <-> CIE Lab (D65) as tensor functions, and the network scaling.

All functions take tensors shaped ``(*, C, H, W)`` (any number of leading batch
dimensions, channels third from last), work in float32 or float64 and keep the
dtype and device of their input. sRGB values are in ``[0, 1]``; Lab uses
``L`` in ``[0, 100]`` and ``a``, ``b`` roughly in ``[-110, 110]``.

The matrices and the D65 white point are the ones scikit-image and the reference
colorization code use, so Lab values agree with ``skimage.color.rgb2lab``.

Example:
    >>> import torch
    >>> from instacolor.color import rgb_to_lab, lab_to_rgb
    >>> rgb = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    >>> bool(torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-9))
    True

Video frames' 8-bit output (:func:`quantize_rgb8`) rounds each pixel to the lattice point
that keeps its chroma best without moving L more than nearest rounding or half a gray
level does:

    >>> from instacolor.color import quantize_rgb8
    >>> rgb = torch.tensor([0.3, 0.5, 0.7]).view(3, 1, 1)
    >>> quantize_rgb8(rgb, torch.tensor([[52.1]])).flatten().tolist()  # nearest: 76, 128, 178
    [77.0, 128.0, 179.0]
"""

from __future__ import annotations

import torch

from instacolor.errors import InputError

__all__ = [
    "AB_NORM",
    "D65_WHITE",
    "L_CENT",
    "L_NORM",
    "denormalize_ab",
    "gray_to_l",
    "half_level",
    "l_to_gray",
    "lab_to_rgb",
    "lab_to_xyz",
    "linear_to_srgb",
    "normalize_ab",
    "normalize_l",
    "quantize_rgb8",
    "rgb_to_l",
    "rgb_to_lab",
    "rgb_to_xyz",
    "srgb_to_linear",
    "xyz_to_lab",
    "xyz_to_rgb",
]

#: Network input scaling of L: ``(L - L_CENT) / L_NORM``.
L_CENT = 50.0
L_NORM = 100.0
#: Network scaling of a and b: ``ab / AB_NORM``; the Tanh output times AB_NORM is ab.
AB_NORM = 110.0
#: CIE XYZ of the D65 reference white (2 degree observer), Y = 1.
D65_WHITE = (0.95047, 1.0, 1.08883)

_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_EPSILON = 0.008856  # (6/29)**3 as scikit-image rounds it
_KAPPA_SLOPE = 7.787  # (29/6)**2 / 3 as scikit-image rounds it
_OFFSET = 16.0 / 116.0


def _check(image: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, received {type(image).__name__}")
    if image.dim() < 3 or image.shape[-3] != channels:
        raise InputError(
            f"{name}: expected shape (*, {channels}, H, W), received {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise InputError(f"{name}: expected a float tensor, received dtype {image.dtype}")


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix, image)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer curve. Any shape; values in ``[0, 1]``."""
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)


def linear_to_srgb(rgb: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer curve. Any shape; negative values map linearly."""
    return torch.where(
        rgb > 0.0031308, 1.055 * rgb.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * rgb
    )


def rgb_to_xyz(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in ``[0, 1]`` to CIE XYZ (D65, Y of white = 1)."""
    _check(rgb, 3, "rgb_to_xyz")
    return _apply_matrix(srgb_to_linear(rgb), _matrix(_XYZ_FROM_RGB, rgb))


def xyz_to_rgb(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ ``(*, 3, H, W)`` to sRGB; out-of-gamut values are not clipped."""
    _check(xyz, 3, "xyz_to_rgb")
    inverse = torch.linalg.inv(_matrix(_XYZ_FROM_RGB, xyz).double()).to(xyz.dtype)
    return linear_to_srgb(_apply_matrix(xyz, inverse))


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1 / 3), _KAPPA_SLOPE * t + _OFFSET)


def _f_inverse(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0.2068966, t**3, (t - _OFFSET) / _KAPPA_SLOPE)


def xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ ``(*, 3, H, W)`` to CIE Lab relative to D65."""
    _check(xyz, 3, "xyz_to_lab")
    white = _matrix(D65_WHITE, xyz).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_xyz(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab ``(*, 3, H, W)`` relative to D65 to CIE XYZ."""
    _check(lab, 3, "lab_to_xyz")
    light, a, b = lab.unbind(-3)
    fy = (light + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0)), dim=-3)
    return _f_inverse(f) * _matrix(D65_WHITE, lab).view(3, 1, 1)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in ``[0, 1]`` to CIE Lab (D65): L in [0, 100]."""
    return xyz_to_lab(rgb_to_xyz(rgb))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab ``(*, 3, H, W)`` to sRGB; values outside ``[0, 1]`` are out of gamut."""
    return xyz_to_rgb(lab_to_xyz(lab))


def gray_to_l(gray: torch.Tensor) -> torch.Tensor:
    """L of a neutral sRGB gray: ``gray`` of any shape in ``[0, 1]`` to L in ``[0, 100]``."""
    y = srgb_to_linear(gray)
    return 116.0 * _f(y) - 16.0


def l_to_gray(light: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`gray_to_l`: L in ``[0, 100]`` (any shape) to sRGB gray in ``[0, 1]``."""
    y = _f_inverse((light + 16.0) / 116.0)
    return linear_to_srgb(y)


def rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    """L channel ``(*, 1, H, W)`` of sRGB ``(*, 3, H, W)``; cheaper than the full Lab."""
    _check(rgb, 3, "rgb_to_l")
    weights = _matrix(_XYZ_FROM_RGB[1], rgb).view(3, 1, 1)
    y = (srgb_to_linear(rgb) * weights).sum(dim=-3, keepdim=True)
    return 116.0 * _f(y) - 16.0


def normalize_l(light: torch.Tensor) -> torch.Tensor:
    """Network input scaling of L (any shape): ``(L - 50) / 100``."""
    return (light - L_CENT) / L_NORM


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """Network scaling of ab (any shape): ``ab / 110``."""
    return ab / AB_NORM


def denormalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_ab`: network units to Lab units."""
    return ab * AB_NORM


# ---------------------------------------------------------------- 8-bit output
#
# Rounding each sRGB channel to the nearest of 256 levels moves a pixel's chroma (Lab a,
# b) by a fraction of a unit, and differently wherever the luminance differs, so a steady
# colour over a changing luminance flickers a little in a video. :func:`quantize_rgb8`
# chooses instead, per pixel, among the 8 lattice points around the exact value (each
# channel rounded down or up) the one whose chroma is closest to the intended one, among
# those that keep the luminance as close as nearest rounding does: an L error up to
# ``max(nearest's L error, half a gray level)`` (:func:`half_level`). Nearest rounding's
# point is always a candidate and is kept unless another one is closer in chroma (checked
# on the exact Lab of both), and no channel goes a level ``1 - 0.02`` or more away from its
# exact value (two colours a float's noise apart stay within one level, as with nearest
# rounding). The candidates are ranked on a first-order expansion of the XYZ -> Lab curve
# around the exact colour (the lattice points' linear-light values are exact: a 256-entry
# table). Video frames' 8-bit output goes through it (``reconstruct(rounding="chroma")``;
# photos round to nearest); docs/video.md ("The input's flow, and a held-out test") gives
# the measurements that chose it.

_TABLE_STEPS = 1024  # the half-level table samples L every 100 / 1024
#: No channel goes to a level ``1 - _REACH_MARGIN`` or more away from its exact value, so two
#: colours closer than ``2 * _REACH_MARGIN`` levels (two backends' float noise) never come out
#: more than one level apart, as with nearest rounding.
_REACH_MARGIN = 0.02
_MARGIN = 1e-4  # a switch away from nearest rounding must win by this much (Lab units)
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
    """Lab ``(3, N)`` of integral sRGB levels ``(3, N)`` (as :func:`rgb_to_lab` of ``/255``;
    their linear-light values from the table ``levels``)."""
    linear = levels.take(rgb8.long()).unsqueeze(-1)  # (3, N, 1): an image of N x 1 pixels
    return xyz_to_lab(_apply_matrix(linear, _matrix(_XYZ_FROM_RGB, linear))).squeeze(-1)


def _combine(moves: torch.Tensor) -> torch.Tensor:
    """``(2, N)`` per channel (r, g, b) -> ``(8, N)`` sums, candidate ``4 r + 2 g + b``."""
    r, g, b = moves
    n = r.shape[-1]
    return ((r.view(2, 1, n) + g.view(1, 2, n)).view(4, 1, n) + b.view(1, 2, n)).view(8, n)


def _choose(x, light, levels, light_tolerance, offset=None, error=None):
    """Chosen levels ``(3, N)`` for one chunk of ``x = 255 rgb`` ``(3, N)`` (``offset``:
    ``(2, N)`` added to ``x``'s chroma to give the chroma to come closest to, or None;
    ``error``: a ``(2, N)`` view filled with the chosen point's a, b minus ``x``'s, or
    None)."""
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
    if offset is None and error is None:
        chroma = _combine(moves[1]).square_() + _combine(moves[2]).square_()
    else:  # the move's distance to the offset (0: to the exact colour's chroma)
        move_a, move_b = _combine(moves[1]), _combine(moves[2])
        if offset is None:
            chroma = move_a.square() + move_b.square()
        else:
            chroma = (move_a - offset[0]).square_() + (move_b - offset[1]).square_()
    light_error = _combine(moves[0]).add_(lab[0] - light).abs_()
    bound = torch.maximum(light_error.gather(0, nearest.unsqueeze(0)), tolerance)
    chroma.add_(light_error.gt_(bound), alpha=1e9)  # too far in L: never the least
    far = torch.stack((x - low, high - x), 1).gt_(1.0 - _REACH_MARGIN)  # (channel, side, N)
    chroma.add_(_combine(far.to(x.dtype)), alpha=1e9)  # a level 1 - margin or more away
    best = chroma.min(0).indices
    bits = torch.stack(((best >> 2) & 1, (best >> 1) & 1, best & 1)).to(x.dtype)
    rounded = low + up.to(x.dtype) * (high - low)
    if error is not None:  # nearest rounding's error, to first order (switches: exact below)
        error[0] = move_a.gather(0, nearest.unsqueeze(0))[0]
        error[1] = move_b.gather(0, nearest.unsqueeze(0))[0]
    switch = (best != nearest).nonzero().squeeze(1)
    if switch.numel():  # exact Lab of both points: keep the chosen one only if really better
        low, high = low.index_select(1, switch), high.index_select(1, switch)
        chosen = low + bits.index_select(1, switch) * (high - low)
        near = rounded.index_select(1, switch)
        target = lab.index_select(1, switch)
        if offset is not None:
            target = target.clone()
            target[1:] += offset.index_select(1, switch)
        lab_c, lab_n = _exact_lab(levels, chosen), _exact_lab(levels, near)
        err_c = (lab_c[1:] - target[1:]).square().sum(0)
        err_n = (lab_n[1:] - target[1:]).square().sum(0)
        light = light.index_select(0, switch)
        light_c = (lab_c[0] - light).abs()
        light_n = torch.maximum((lab_n[0] - light).abs(), tolerance.index_select(0, switch))
        keep = (err_c.sqrt() < err_n.sqrt() - _MARGIN) & (light_c <= light_n)
        rounded.index_copy_(1, switch, torch.where(keep, chosen, near))
        if error is not None:
            exact = lab[1:].index_select(1, switch)
            error.index_copy_(1, switch, torch.where(keep, lab_c[1:], lab_n[1:]) - exact)
    return rounded


def quantize_rgb8(
    rgb: torch.Tensor,
    light: torch.Tensor,
    light_tolerance: float | None = None,
    *,
    chunk: int = 1 << 15,
    offset: torch.Tensor | None = None,
    return_error: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integral 8-bit levels of ``rgb``, each pixel's lattice point chosen to keep its chroma.

    Args:
        rgb: ``(3, H, W)`` float sRGB in ``[0, 1]`` (the exact colour, already in gamut).
        light: ``(H, W)`` float, the L (0..100) the output must keep.
        light_tolerance: L error (Lab units) allowed to any point, or None: half a gray
            level (:func:`half_level`); a point farther than this from ``light`` is chosen
            only if nearest rounding's is as far.
        chunk: pixels processed at a time (the work arrays stay in the CPU's cache).
        offset: ``(2, H, W)`` Lab a, b added to ``rgb``'s own chroma to give the chroma
            to come closest to (None: ``rgb``'s own): the same lattice points and L rule,
            only the chroma they are measured against moves (video: the previous frame's
            rounding error carried along the flow, so the error repeats instead of
            changing from frame to frame).
        return_error: also return the rounding error, the chosen point's Lab a, b minus
            ``rgb``'s (exact where the point is not nearest rounding's, to first order in
            the level step elsewhere: within about 0.01 Lab units).

    Returns:
        ``(3, H, W)`` tensor of ``rgb``'s dtype holding integers in ``[0, 255]``; with
        ``return_error``, and the ``(2, H, W)`` error.
    """
    x = rgb.reshape(3, -1) * 255.0
    flat_light = light.reshape(-1).to(x.dtype)
    levels = _levels(x)
    out = torch.empty_like(x)
    error = torch.empty_like(x[:2]) if return_error else None
    flat_offset = None if offset is None else offset.reshape(2, -1).to(x.dtype)
    for start in range(0, x.shape[1], chunk):
        part = slice(start, start + chunk)
        out[:, part] = _choose(
            x[:, part], flat_light[part], levels, light_tolerance,
            None if flat_offset is None else flat_offset[:, part],
            None if error is None else error[:, part],
        )  # fmt: skip
    if error is not None:
        return out.view(rgb.shape), error.view(2, *rgb.shape[1:])
    return out.view(rgb.shape)
