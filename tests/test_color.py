"""Colour science against scikit-image reference values, round trips, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from instacolor.color import (
    AB_NORM,
    denormalize_ab,
    gray_to_l,
    l_to_gray,
    lab_to_rgb,
    normalize_ab,
    normalize_l,
    rgb_to_l,
    rgb_to_lab,
)
from instacolor.errors import InputError

# (sRGB, Lab D65) pairs; Lab values as published for sRGB primaries (and skimage's).
KNOWN = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
]


@pytest.mark.parametrize(("rgb", "lab"), KNOWN)
def test_known_values(rgb, lab):
    out = rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1)).view(3)
    np.testing.assert_allclose(out.numpy(), lab, atol=0.02)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-8), (torch.float32, 2e-3)])
def test_matches_scikit_image(dtype, atol):
    rgb = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ours = rgb_to_lab(rgb).permute(1, 2, 0).double().numpy()
    ref = skcolor.rgb2lab(rgb.permute(1, 2, 0).double().numpy())
    np.testing.assert_allclose(ours, ref, atol=atol)
    lab = torch.from_numpy(ref).permute(2, 0, 1).to(dtype)
    back = skcolor.lab2rgb(ref)
    np.testing.assert_allclose(lab_to_rgb(lab).permute(1, 2, 0).double().numpy(), back, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_batched_keeps_dtype_and_shape(dtype):
    rgb = torch.rand(2, 5, 3, 7, 9, dtype=dtype)
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape and lab.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(lab_to_rgb(lab), rgb, atol=tol, rtol=0)


def test_luminance_helpers_agree_with_full_conversion():
    rgb = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_l(rgb), rgb_to_lab(rgb)[:, :1])
    gray = torch.linspace(0, 1, 257, dtype=torch.float64)
    neutral = gray.view(1, -1, 1).expand(3, -1, 1)
    torch.testing.assert_close(gray_to_l(gray), rgb_to_lab(neutral)[0, :, 0])
    torch.testing.assert_close(l_to_gray(gray_to_l(gray)), gray, atol=1e-12, rtol=0)
    # neutral gray is neutral up to the rounding of the published matrix (Z row sums to
    # 1.088754, D65 white Z is 1.08883): |b| < 0.005, far below a visible difference
    assert rgb_to_lab(neutral)[1:].abs().max() < 5e-3


def test_network_scaling_constants():
    light = torch.tensor([0.0, 50.0, 100.0])
    assert normalize_l(light).tolist() == [-0.5, 0.0, 0.5]
    ab = torch.tensor([-110.0, 55.0])
    assert normalize_ab(ab).tolist() == [-1.0, 0.5]
    assert denormalize_ab(normalize_ab(ab)).tolist() == ab.tolist() and AB_NORM == 110.0


@pytest.mark.parametrize(
    "bad", [torch.rand(4, 4), torch.rand(2, 4, 4), torch.ones(3, 4, 4, dtype=torch.int64)]
)
def test_bad_shapes_and_dtypes_raise(bad):
    with pytest.raises(InputError, match="expected"):
        rgb_to_lab(bad)
    with pytest.raises(InputError, match="expected"):
        rgb_to_lab(bad.numpy())  # not a tensor


def test_gradients_flow():
    rgb = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True) * 0.9 + 0.05
    rgb = rgb.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,), eps=1e-6, atol=1e-4)
