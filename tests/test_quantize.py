"""Chroma-preserving 8-bit quantisation (``instacolor.color.quantize_rgb8``, the library's
8-bit output; measured in docs/video.md): never farther in chroma than nearest rounding,
luminance promise kept."""

from __future__ import annotations

import torch

from instacolor.color import gray_to_l, half_level, l_to_gray, quantize_rgb8, rgb_to_lab
from instacolor.reconstruct import compose_rgb


def _random_colours(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """In-gamut sRGB ``(3, 1, n)`` of random Lab (chroma shrunk where needed) and its L."""
    gen = torch.Generator().manual_seed(seed)
    light = torch.rand(1, n, generator=gen, dtype=torch.float64) * 100
    ab = (torch.rand(2, 1, n, generator=gen, dtype=torch.float64) - 0.5) * 160
    return compose_rgb(light.float(), ab.float()), light.float()


def _errors(rgb8: torch.Tensor, rgb: torch.Tensor, light: torch.Tensor):
    """Per pixel: ab distance to ``rgb``'s Lab, L error and gray-level error of ``rgb8``."""
    lab = rgb_to_lab(rgb8.double() / 255)
    target = rgb_to_lab(rgb.double())
    ab = (lab[1:] - target[1:]).norm(dim=0)
    light = light.double()
    level = (l_to_gray(lab[0]) - l_to_gray(light)).abs() * 255
    return ab, (lab[0] - light).abs(), level


def test_never_farther_in_chroma_and_the_luminance_bound_is_kept():
    rgb, light = _random_colours(200_000, seed=3)
    chosen = quantize_rgb8(rgb, light)
    nearest = (rgb * 255).round()
    assert chosen.dtype == rgb.dtype and chosen.shape == rgb.shape
    assert torch.equal(chosen, chosen.round()) and chosen.min() >= 0 and chosen.max() <= 255
    assert (chosen - rgb * 255).abs().max() < 1.0  # floor or ceiling of each channel
    ab_c, light_c, level_c = _errors(chosen, rgb, light)
    ab_n, light_n, level_n = _errors(nearest, rgb, light)
    assert bool((ab_c <= ab_n + 1e-4).all()), float((ab_c - ab_n).max())
    # L: no farther than nearest rounding's point, or within half a gray level
    bound = torch.maximum(light_n, half_level(light.double()))
    assert bool((light_c <= bound + 1e-4).all()), float((light_c - bound).max())
    assert bool((level_c <= torch.clamp(level_n, min=0.51) + 1e-3).all())
    assert float(level_c.max()) <= 1.0  # the README's promise: at most one level
    # and it does something: the chroma error falls by a fifth or more
    assert float(ab_c.mean()) < 0.8 * float(ab_n.mean()), (ab_c.mean(), ab_n.mean())
    assert (chosen != nearest).any(0).float().mean() > 0.2


def test_a_fixed_tolerance_bounds_the_l_error():
    rgb, light = _random_colours(50_000, seed=4)
    _, light_n, _ = _errors((rgb * 255).round(), rgb, light)
    for tolerance in (0.0, 0.1):
        _, light_c, _ = _errors(quantize_rgb8(rgb, light, tolerance), rgb, light)
        assert bool((light_c <= light_n.clamp_min(tolerance) + 1e-4).all())


def test_gray_stays_exactly_gray_at_its_level():
    levels = torch.arange(256, dtype=torch.float64)
    light = gray_to_l(levels / 255).float().view(1, 256)
    rgb = compose_rgb(light, torch.zeros(2, 1, 256))
    chosen = quantize_rgb8(rgb, light)
    assert torch.equal(chosen, levels.float().view(1, 1, 256).expand(3, 1, 256))


def test_steady_colour_over_changing_luminance_keeps_its_chroma_steadier():
    """One chroma on a ramp of L (what a tracked point sees through a film's grain)."""
    light = torch.linspace(20, 80, 4001).view(1, -1)
    ab = torch.tensor([3.0, 6.0]).view(2, 1, 1).expand(2, 1, 4001)
    rgb = compose_rgb(light, ab.contiguous())
    spread = {}
    for name, rgb8 in (("nearest", (rgb * 255).round()), ("chosen", quantize_rgb8(rgb, light))):
        lab = rgb_to_lab(rgb8.double() / 255)
        spread[name] = float((lab[1:] - torch.tensor([3.0, 6.0]).view(2, 1, 1)).norm(dim=0).mean())
    assert spread["chosen"] < 0.8 * spread["nearest"], spread


def test_tiny_float_differences_move_a_channel_one_level_at_most():
    """Two backends' float noise: never two levels apart, as with nearest rounding."""
    rgb, light = _random_colours(200_000, seed=5)
    noise = torch.randn(rgb.shape, generator=torch.Generator().manual_seed(6)) * 1e-5
    a = quantize_rgb8(rgb, light)
    b = quantize_rgb8((rgb + noise).clamp(0, 1), light)
    assert float((a - b).abs().max()) <= 1.0
    assert bool((a != b).any())  # the noise is large enough to matter somewhere


def test_chunks_do_not_change_the_result():
    rgb, light = _random_colours(10_000, seed=7)
    whole = quantize_rgb8(rgb, light, chunk=1 << 20)
    assert torch.equal(quantize_rgb8(rgb, light, chunk=333), whole)
