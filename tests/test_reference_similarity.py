"""Products and norms of upsampled feature maps, computed without upsampling them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from instacolor.hints.similarity import (
    interpolation_matrix,
    up_rows,
    upsampled_norms,
    upsampled_products,
)


def _up(f: torch.Tensor, big: int) -> torch.Tensor:
    return up_rows(F.interpolate(f, (big, big), mode="bilinear", align_corners=False))


@pytest.mark.parametrize(("small", "big", "channels"), [(8, 32, 320), (16, 32, 112), (6, 24, 7)])
def test_products_and_norms_are_those_of_the_upsampled_maps(small, big, channels):
    gen = torch.Generator().manual_seed(small)
    t = torch.randn(1, channels, small, small, generator=gen)
    r = torch.randn(3, channels, small, small, generator=gen)
    scale = torch.rand(big * big, generator=gen) + 0.5
    a = interpolation_matrix(small, big)
    got = upsampled_products(up_rows(t)[0], up_rows(r), a, scale)
    want = (_up(t, big)[0] * scale[:, None]) @ _up(r, big).reshape(-1, channels).T
    assert got.shape == (big * big, 3 * big * big)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * channels**0.5)
    norms = upsampled_norms(up_rows(t)[0], a)
    torch.testing.assert_close(norms, _up(t, big)[0].norm(dim=1), rtol=1e-5, atol=1e-5)


def test_the_interpolation_matrix_is_torch_linear_upsampling():
    a = interpolation_matrix(5, 13)
    x = torch.randn(2, 4, 5)
    want = F.interpolate(x, size=13, mode="linear", align_corners=False)
    torch.testing.assert_close(x @ a.T, want)
    assert torch.allclose(a.sum(1), torch.ones(13))  # each output a weighted mean
