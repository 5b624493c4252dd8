"""The colour stage of the archival reader (instacolor.io.archival.color) on real files:
ICC profiles -> sRGB at full precision, and the colour test (gray, toned, colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

from instacolor.errors import InputError
from instacolor.io.archival import (
    DEFAULT_COLOR_THRESHOLD,
    SRGB_PROFILE,
    read_scan,
    tone_deviation,
)
from tests.archival_files import (
    _colourful,
    _gray_l,
    _photo,
    _profile,
    _ramp16,
    _rgb_l,
)


def test_gray_profile_16_bit_is_applied_at_full_precision(tmp_path):
    gray = _ramp16()
    path = tmp_path / "gamma18.tif"
    tifffile.imwrite(path, gray, photometric="minisblack", iccprofile=_profile("gray", gamma=1.8))
    scan = read_scan(path)
    luminance = torch.from_numpy((gray / 65535.0) ** 1.8)  # Y of a gamma-1.8 gray
    expected = (
        116.0
        * torch.where(
            luminance > 0.008856,
            luminance.clamp_min(1e-12) ** (1 / 3),
            7.787 * luminance + 16 / 116,
        )
        - 16.0
    )
    np.testing.assert_allclose(scan.light, expected.numpy(), atol=2e-3)
    assert len(np.unique(scan.light)) > 0.99 * gray.size  # 16-bit levels stay distinct
    plain = read_scan(_write_plain_tiff(tmp_path, gray))
    assert np.abs(plain.light - scan.light).max() > 5  # the profile really changed L


def _write_plain_tiff(tmp_path: Path, gray: np.ndarray) -> Path:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, gray, photometric="minisblack")
    return path


def test_adobe_rgb_profile_16_bit_neutral_and_8_bit_colour(tmp_path):
    adobe = _profile("adobergb")
    gray = _ramp16()
    path = tmp_path / "adobe16.tif"
    tifffile.imwrite(path, np.dstack([gray] * 3), photometric="rgb", iccprofile=adobe)
    y = torch.from_numpy((gray / 65535.0) ** (563 / 256))  # Adobe RGB (1998) gamma
    expected = (
        116.0 * torch.where(y > 0.008856, y.clamp_min(1e-12) ** (1 / 3), 7.787 * y + 16 / 116)
        - 16.0
    )
    np.testing.assert_allclose(read_scan(path).light, expected.numpy(), atol=2e-3)

    colour = _colourful(16, 24)
    path8 = tmp_path / "adobe8.png"
    Image.fromarray(colour).save(path8, icc_profile=adobe)
    source = ImageCms.ImageCmsProfile(ImageCms.core.profile_frombytes(adobe))
    target = ImageCms.ImageCmsProfile(ImageCms.core.profile_frombytes(SRGB_PROFILE))
    by_pillow = np.asarray(
        ImageCms.profileToProfile(Image.fromarray(colour), source, target, renderingIntent=1)
    )
    inside = ((by_pillow > 0) & (by_pillow < 255)).all(axis=2)  # Pillow clips to sRGB
    assert inside.mean() > 0.3
    error = np.abs(read_scan(path8).light - _rgb_l(by_pillow))[inside]
    assert error.max() < 0.6  # Pillow rounds to 8 bits


@pytest.mark.parametrize("profile", [SRGB_PROFILE, _profile("srgb")], ids=["pillow", "lcms"])
def test_srgb_profile_leaves_pixels_unchanged(tmp_path, profile):
    colour = _colourful()
    Image.fromarray(colour).save(tmp_path / "tagged.png", icc_profile=profile)
    Image.fromarray(colour).save(tmp_path / "untagged.png")
    tagged, untagged = read_scan(tmp_path / "tagged.png"), read_scan(tmp_path / "untagged.png")
    np.testing.assert_array_equal(tagged.light, untagged.light)
    assert tagged.icc_profile == profile and untagged.icc_profile is None


def test_unusable_profile_warns_and_reads_as_srgb(tmp_path):
    gray = np.round(_photo() * 255).astype(np.uint8)
    path = tmp_path / "badicc.png"
    Image.fromarray(np.dstack([gray] * 3)).save(path, icc_profile=_profile("gray"))  # wrong kind
    with pytest.warns(UserWarning, match="ICC profile cannot be applied to RGB"):
        scan = read_scan(path)
    np.testing.assert_allclose(scan.light, _gray_l(gray, 256), atol=1e-4)


def test_sepia_photograph_is_gray_and_its_l_is_used(tmp_path):
    photo = _photo(128, 160)
    sepia = np.clip(photo[..., None] * np.array([1.351, 1.203, 0.937]) / 1.351, 0, 1)
    path = tmp_path / "sepia.jpg"
    Image.fromarray(np.round(sepia * 255).astype(np.uint8)).save(path, quality=85)
    scan = read_scan(path)
    assert not scan.is_color and scan.tone_deviation < DEFAULT_COLOR_THRESHOLD
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert np.ptp(decoded.astype(int), axis=2).max() > 20  # strongly toned, not gray
    np.testing.assert_allclose(scan.light, _rgb_l(decoded), atol=1e-3)


def test_rgb_scan_of_gray_print_with_noise_is_gray(tmp_path):
    rng = np.random.default_rng(1)
    photo = _photo(128, 160)[..., None] * np.array([1.02, 1.0, 0.97])  # scanner white balance
    noisy = np.clip(photo + rng.normal(0, 3 / 255, photo.shape), 0, 1)
    path = tmp_path / "scan.png"
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(path)
    scan = read_scan(path)
    assert not scan.is_color and scan.tone_deviation < DEFAULT_COLOR_THRESHOLD


def test_colour_photograph_is_detected(tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(_colourful()).save(path)
    scan = read_scan(path)
    assert scan.is_color and scan.tone_deviation > 2 * DEFAULT_COLOR_THRESHOLD
    assert not read_scan(path, color_threshold=1e6).is_color


def test_tone_deviation_checks_its_input():
    with pytest.raises(InputError, match=r"expected a \(3, H, W\) tensor, received \(4, 2\)"):
        tone_deviation(torch.zeros(4, 2))
