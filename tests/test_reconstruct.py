"""Tests of stage 5: guided chroma upsampling, L-preserving composition, banded driver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from instacolor.color import gray_to_l, l_to_gray, lab_to_rgb, rgb_to_l, rgb_to_lab
from instacolor.errors import InputError
from instacolor.reconstruct import _bands, compose_rgb, guided_upsample_ab, reconstruct

REPO = Path(__file__).resolve().parents[1]


def _textured_l(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth, everywhere-varying L in about [10, 90] on an h x w grid."""
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = float(torch.rand(1, generator=gen)) * 6.0
    return 50 + 25 * torch.sin(23 * x + phase) * torch.cos(17 * y) + 15 * torch.sin(9 * (x + y))


def _area_resize(light: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(light[None, None], size=(h, w), mode="area")[0, 0]


def _reference_guided_filter(guide, src, radius, eps):
    """Textbook guided filter (He et al.) with windows clipped at the borders."""

    def box(x):
        k = 2 * radius + 1
        return F.avg_pool2d(x[None], k, stride=1, padding=radius, count_include_pad=False)[0]

    guide = guide.double()[None] / 100.0
    src = src.double()
    mean_i, mean_p = box(guide), box(src)
    a = (box(guide * src) - mean_i * mean_p) / (box(guide * guide) - mean_i**2 + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def _transition_width(row: torch.Tensor) -> int:
    """Number of samples strictly between 10% and 90% of a monotone step."""
    low, high = row[:20].mean(), row[-20:].mean()
    level = (row - low) / (high - low)
    return int(((level > 0.1) & (level < 0.9)).sum())


# --------------------------------------------------------------------------- guided_upsample_ab


@pytest.mark.parametrize("low, full", [((16, 16), (37, 53)), ((8, 12), (5, 3)), ((7, 5), (7, 5))])
def test_guided_constant_ab_is_reproduced(low, full):
    ab_low = torch.empty(2, *low)
    ab_low[0], ab_low[1] = 17.5, -42.0
    out = guided_upsample_ab(ab_low, _textured_l(*low), _textured_l(*full, seed=1))
    assert out.shape == (2, *full) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], torch.full(full, 17.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], torch.full(full, -42.0), atol=1e-4, rtol=0)


def test_guided_linear_function_of_l_is_reproduced():
    l_full = _textured_l(300, 200)
    l_low = _area_resize(l_full, 64, 64)
    ab_low = torch.stack((0.8 * l_low - 30.0, -0.5 * l_low + 20.0))
    out = guided_upsample_ab(ab_low, l_low, l_full, eps=1e-6)
    expected = torch.stack((0.8 * l_full - 30.0, -0.5 * l_full + 20.0))
    assert (out - expected).abs().max() < 0.05
    bilinear = F.interpolate(ab_low[None], size=(300, 200), mode="bilinear")[0]
    assert (out - expected).abs().mean() < 0.1 * (bilinear - expected).abs().mean()


def test_guided_same_size_is_the_plain_guided_filter():
    l_low = _textured_l(40, 30)
    ab_low = torch.randn(2, 40, 30, generator=torch.Generator().manual_seed(3)) * 30
    out = guided_upsample_ab(ab_low, l_low, l_low.clone(), radius=3, eps=1e-2)
    expected = _reference_guided_filter(l_low, ab_low, 3, 1e-2).float()
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


def test_guided_radius_zero_on_flat_l_is_bilinear_interpolation():
    ab_low = torch.randn(2, 12, 9, generator=torch.Generator().manual_seed(4)) * 40
    flat = torch.full((12, 9), 42.0)
    out = guided_upsample_ab(ab_low, flat, torch.full((50, 31), 42.0), radius=0)
    expected = F.interpolate(ab_low[None], size=(50, 31), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("low, full", [((1, 1), (1, 1)), ((1, 1), (5, 7)), ((8, 8), (1, 1))])
def test_guided_tiny_images(low, full):
    ab_low = torch.arange(2 * low[0] * low[1], dtype=torch.float32).view(2, *low) - 3.0
    out = guided_upsample_ab(ab_low, torch.full(low, 30.0), torch.full(full, 70.0))
    assert out.shape == (2, *full) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if low == (1, 1):
        torch.testing.assert_close(out, ab_low.expand(2, *full), atol=1e-5, rtol=0)


def test_guided_constant_l_has_no_nans_and_stays_in_range():
    ab_low = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    flat = torch.full((16, 16), 55.0, dtype=torch.float64)
    out = guided_upsample_ab(ab_low * 50, flat, torch.full((33, 70), 55.0))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    for channel in range(2):
        assert ab_low[channel].min() * 50 - 1e-4 <= out[channel].min()
        assert out[channel].max() <= ab_low[channel].max() * 50 + 1e-4


def test_guided_output_follows_a_sharp_luminance_edge():
    h_full, w_full, h_low, w_low, edge = 64, 512, 16, 64, 261
    l_full = torch.full((h_full, w_full), 30.0)
    l_full[:, edge:] = 70.0
    l_low = _area_resize(l_full, h_low, w_low)
    # The predicted chroma: a step from -30 to 30 at the same place, a little blurrier than L.
    step = (l_low[0] - 50.0) * 1.5
    kernel = torch.tensor([[[0.25, 0.5, 0.25]]])
    step = F.conv1d(F.pad(step[None, None], (1, 1), mode="replicate"), kernel)[0, 0]
    ab_low = torch.stack((step, -step / 2))[:, None, :].expand(2, h_low, w_low).contiguous()
    guided = guided_upsample_ab(ab_low, l_low, l_full)
    bilinear = F.interpolate(ab_low[None], size=(h_full, w_full), mode="bilinear")[0]
    for channel in range(2):
        sharp = _transition_width(guided[channel, h_full // 2])
        soft = _transition_width(bilinear[channel, h_full // 2])
        assert sharp <= 2 and soft >= 12, (sharp, soft)
    assert guided[0, :, edge - 1].max() < -20 and guided[0, :, edge].min() > 20


# --------------------------------------------------------------------------- compose_rgb


def test_compose_preserves_l_and_shrinks_chroma_out_of_gamut():
    gen = torch.Generator().manual_seed(6)
    light = torch.rand(120, 90, generator=gen) * 100
    ab = (torch.rand(2, 120, 90, generator=gen) * 2 - 1) * 128
    raw = lab_to_rgb(torch.cat((light[None], ab)))
    outside = ((raw < 0) | (raw > 1)).any(dim=0)
    assert outside.float().mean() > 0.5  # the test exercises the bisection
    rgb = compose_rgb(light, ab)
    assert rgb.shape == (3, 120, 90) and rgb.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb_to_l(rgb)[0] - light).abs().max() <= 1e-3
    # Hue is kept and chroma only shrinks, and not further than the bisection needs.
    lab = rgb_to_lab(rgb.double())
    kept = lab[1:].norm(dim=0) / ab.double().norm(dim=0)
    assert kept.max() <= 1.001
    cosine = (lab[1:] * ab).sum(dim=0) / (lab[1:].norm(dim=0) * ab.double().norm(dim=0) + 1e-12)
    colourful = outside & (kept > 0.1) & (light > 5) & (light < 95)
    assert colourful.sum() > 1000 and cosine[colourful].min() > 0.99
    grown = lab_to_rgb(torch.cat((light[None], ab * (kept.float() + 0.02).clamp(max=1.0))))
    grown_out = ((grown < -1e-6) | (grown > 1 + 1e-6)).any(dim=0)
    assert grown_out[outside & (kept < 0.98)].float().mean() > 0.99


def test_compose_in_gamut_equals_lab_to_rgb_exactly():
    rgb = torch.rand(3, 50, 40, generator=torch.Generator().manual_seed(7)) * 0.9 + 0.05
    lab = rgb_to_lab(rgb)
    expected = lab_to_rgb(lab)
    assert expected.min() >= 0 and expected.max() <= 1
    assert torch.equal(compose_rgb(lab[0], lab[1:]), expected)


def test_compose_extreme_l_is_neutral_and_in_range():
    light = torch.tensor([[0.0, 100.0, 0.0, 100.0]])
    ab = torch.tensor([[[90.0, -90.0, 0.0, 0.0]], [[-90.0, 90.0, 0.0, 0.0]]])
    rgb = compose_rgb(light, ab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb_to_l(rgb)[0] - light).abs().max() <= 1e-3


# --------------------------------------------------------------------------- reconstruct


def _scene(h_full, w_full, h_low=24, w_low=16, seed=8):
    gen = torch.Generator().manual_seed(seed)
    l_full = _textured_l(h_full, w_full, seed)
    l_low = _area_resize(l_full, h_low, w_low)
    ab_low = F.interpolate(torch.randn(1, 2, 4, 4, generator=gen), size=(h_low, w_low))[0] * 60
    return ab_low, l_low, l_full.numpy()


def test_reconstruct_tiled_equals_untiled():
    ab_low, l_low, l_full = _scene(97, 61)
    assert len(_bands(97, 61, 500)) == 13 and len(_bands(97, 61, 1)) == 97
    whole_u8 = reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, tile_pixels=1 << 30)
    whole_f = reconstruct(ab_low, l_low, l_full, out_dtype=np.float32, tile_pixels=1 << 30)
    assert whole_u8.shape == (97, 61, 3) and whole_u8.dtype == np.uint8
    assert whole_f.shape == (97, 61, 3) and whole_f.dtype == np.float32
    for tile in (1, 500, 2000):
        tiled = reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, tile_pixels=tile)
        np.testing.assert_array_equal(tiled, whole_u8)
        tiled_f = reconstruct(ab_low, l_low, l_full, out_dtype=np.float32, tile_pixels=tile)
        np.testing.assert_allclose(tiled_f, whole_f, atol=1e-6, rtol=0)
    composed = compose_rgb(torch.from_numpy(l_full), guided_upsample_ab(ab_low, l_low, l_full))
    np.testing.assert_allclose(whole_f, composed.permute(1, 2, 0).numpy(), atol=1e-6, rtol=0)
    assert np.abs(whole_u8.astype(np.float64) - whole_f * 255).max() <= 0.5 + 1e-3
    # chroma-kept 8 bits (video frames): a lattice point under one level from the exact value
    chroma = reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, rounding="chroma")
    assert np.abs(chroma.astype(np.float64) - whole_f * 255).max() < 1.0
    assert (chroma != whole_u8).any()  # it is another rounding
    with pytest.raises(InputError, match=r"rounding: expected one of \('nearest', 'chroma'\)"):
        reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, rounding="dither")


def test_reconstruct_uint16_and_torch_l_full():
    ab_low, l_low, l_full = _scene(40, 70)
    wide = reconstruct(ab_low, l_low, torch.from_numpy(l_full), out_dtype=np.uint16)
    narrow = reconstruct(ab_low, l_low, l_full, out_dtype=np.uint16, tile_pixels=150)
    floats = reconstruct(ab_low, l_low, l_full, out_dtype=np.float32)
    assert wide.dtype == np.uint16 and wide.shape == (40, 70, 3)
    np.testing.assert_array_equal(wide, narrow)
    assert np.abs(wide.astype(np.float64) - floats * 65535).max() <= 0.5 + 1e-2
    assert wide.max() > 255 * 256  # really 16-bit, not 8-bit data in a wide array


def test_reconstruct_uint8_keeps_the_gray_level():
    gen = np.random.default_rng(9)
    gray = gen.integers(0, 256, size=(90, 120)).astype(np.uint8)
    gray[:3] = [[0], [255], [128]]
    l_full = gray_to_l(torch.from_numpy(gray).double() / 255).float()
    l_low = _area_resize(l_full, 32, 32)
    ab_low = torch.from_numpy(gen.uniform(-100, 100, size=(2, 32, 32)).astype(np.float32))
    out = reconstruct(ab_low, l_low, l_full.numpy(), out_dtype=np.uint8, tile_pixels=4000)
    assert out.std(axis=2).mean() > 5  # it is in colour
    rgb = torch.from_numpy(out).permute(2, 0, 1).double() / 255
    level = l_to_gray(rgb_to_l(rgb)[0]) * 255
    assert (level - torch.from_numpy(gray).double()).abs().max() <= 1.0


@pytest.mark.slow
def test_reconstruct_large_scan_memory_is_bounded_by_the_band():
    height, width, tile = 4000, 3000, 1 << 17
    assert len(_bands(height, width, tile)) > 40
    script = textwrap.dedent(f"""
        import resource, numpy as np, torch
        from instacolor.reconstruct import reconstruct
        torch.set_num_threads(1)  # memory, not speed, is measured here
        ab_low = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(0)) * 20
        l_low = torch.full((64, 64), 50.0)
        reconstruct(ab_low, l_low, np.full((50, 40), 50.0, np.float32), out_dtype=np.uint8)
        l_full = np.empty(({height}, {width}), np.float32)
        l_full[:] = np.linspace(0, 100, {width}, dtype=np.float32)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, tile_pixels={tile})
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        print(grown, out.nbytes, int(out[:, -1].min()), int(out[:, 0].max()))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    grown, out_bytes, white, black = map(int, result.stdout.split())
    assert (white, black) == (255, 0)
    # Untiled, the float32 work images alone would take > 100 bytes a pixel (> 1.2 GB).
    assert grown < out_bytes + 8 * height * width, grown


# --------------------------------------------------------------------------- bad input


def test_bad_shapes_dtypes_and_values_raise_input_error():
    ab_low, l_low = torch.zeros(2, 8, 8), torch.full((8, 8), 50.0)
    l_full = np.full((10, 12), 50.0, np.float32)
    cases = [
        (lambda: guided_upsample_ab(torch.zeros(3, 8, 8), l_low, torch.zeros(4, 4)), "(2, h, w)"),
        (lambda: guided_upsample_ab(ab_low, torch.zeros(8, 7), torch.zeros(4, 4)), "l_low"),
        (lambda: guided_upsample_ab(ab_low, l_low, torch.zeros(1, 4, 4)), "(H, W)"),
        (lambda: guided_upsample_ab(ab_low, l_low, torch.zeros(0, 4)), "(H, W)"),
        (lambda: guided_upsample_ab(ab_low.long(), l_low, torch.zeros(4, 4)), "float"),
        (lambda: guided_upsample_ab(ab_low, l_low, torch.zeros(4, 4), radius=-1), "radius"),
        (lambda: guided_upsample_ab(ab_low, l_low, torch.zeros(4, 4), eps=0.0), "eps"),
        (lambda: guided_upsample_ab(ab_low * np.nan, l_low, torch.zeros(4, 4)), "finite"),
        (lambda: compose_rgb(torch.zeros(4, 5), torch.zeros(2, 5, 4)), "(2, 4, 5)"),
        (lambda: compose_rgb(torch.zeros(4, 5), torch.full((2, 4, 5), np.inf)), "finite"),
        (lambda: compose_rgb([[0.0]], torch.zeros(2, 1, 1)), "list"),
        (lambda: reconstruct(ab_low[None], l_low, l_full, out_dtype=np.uint8), "(2, h, w)"),
        (lambda: reconstruct(ab_low, l_low * np.nan, l_full, out_dtype=np.uint8), "finite"),
        (lambda: reconstruct(ab_low, l_low, l_full[None], out_dtype=np.uint8), "(H, W)"),
        (lambda: reconstruct(ab_low, l_low, l_full.astype(int), out_dtype=np.uint8), "int"),
        (lambda: reconstruct(ab_low, l_low, l_full + 60, out_dtype=np.uint8), "[0, 100]"),
        (lambda: reconstruct(ab_low, l_low, l_full, out_dtype=np.int32), "uint16"),
        (lambda: reconstruct(ab_low, l_low, l_full, out_dtype="rgb"), "uint16"),
        (lambda: reconstruct(ab_low, l_low, l_full, out_dtype=np.uint8, tile_pixels=0), "tile"),
    ]
    bad_row = l_full.copy()
    bad_row[7, 3] = np.nan
    cases.append((lambda: reconstruct(ab_low, l_low, bad_row, out_dtype=np.uint8), "finite"))
    for call, fragment in cases:
        with pytest.raises(InputError, match="expected") as info:
            call()
        assert fragment in str(info.value) and "received" in str(info.value), str(info.value)
