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
    "l_to_gray",
    "lab_to_rgb",
    "lab_to_xyz",
    "linear_to_srgb",
    "normalize_ab",
    "normalize_l",
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
