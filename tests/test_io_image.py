"""The API's edge (instacolor.io.image) on real arrays, PIL images and files written here.

Files given to the API are read by the archival reader, the code the CLI uses (ICC,
EXIF orientation, pages, pixel limit), and every input meets the same colour test.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from instacolor import Colorizer
from instacolor.errors import DecodeError, InputError, UntrainedWeightsWarning
from instacolor.io.archival import DEFAULT_COLOR_THRESHOLD, read_scan
from instacolor.io.image import ImageKind, read_luminance
from tests.archival_files import _bomb_png, _colourful, _exif, _photo, _profile, _ramp16


def _gray8(h: int = 24, w: int = 40) -> np.ndarray:
    return np.round(_photo(h, w) * 255).astype(np.uint8)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_path_gets_the_exif_orientation_like_the_cli(tmp_path, orientation):
    path = tmp_path / f"turned{orientation}.jpg"
    Image.fromarray(_gray8()).save(path, exif=_exif(orientation).tobytes(), quality=90)
    light, kind = read_luminance(path)
    np.testing.assert_array_equal(light, read_scan(path).light)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L"))
    np.testing.assert_array_equal(light, read_luminance(upright)[0])
    assert light.shape == ((40, 24) if orientation >= 5 else (24, 40))
    assert kind == ImageKind(container="path", dtype=np.dtype(np.uint8))


def test_path_gets_the_icc_profile_like_the_cli(tmp_path):
    gray = _ramp16()
    path = tmp_path / "gamma18.tif"
    tifffile.imwrite(path, gray, photometric="minisblack", iccprofile=_profile("gray", gamma=1.8))
    light, kind = read_luminance(path)
    np.testing.assert_array_equal(light, read_scan(path).light)
    assert np.abs(light - read_luminance(gray)[0]).max() > 5  # the profile changed L
    assert kind == ImageKind(container="path", dtype=np.dtype(np.uint16))


def test_neutral_rgb_under_a_wide_gamut_profile_is_gray(tmp_path):
    gray = _ramp16()
    path = tmp_path / "adobe16.tif"
    tifffile.imwrite(
        path, np.dstack([gray] * 3), photometric="rgb", iccprofile=_profile("adobergb")
    )
    light, _ = read_luminance(path)  # gray after conversion to sRGB: not refused
    np.testing.assert_array_equal(light, read_scan(path).light)
    assert read_scan(path).channel_spread <= 2 / 255


def test_path_reads_the_first_page_and_honours_the_pixel_limit(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for value in (1000, 30000, 60000):
            tif.write(np.full((8, 12), value, np.uint16), photometric="minisblack")
    light, _ = read_luminance(path)
    np.testing.assert_array_equal(light, read_scan(path, page=0).light)
    assert light[0, 0] < read_scan(path, page=1).light[0, 0]
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(100_000, 100_000))
    with pytest.raises(DecodeError, match="max_pixels"):
        read_luminance(bomb)


def test_path_in_another_format_says_what_to_do(tmp_path):
    path = tmp_path / "old.bmp"
    Image.fromarray(_gray8()).save(path)
    with pytest.raises(DecodeError, match=r"expected a JPEG, PNG or TIFF image.*Convert it"):
        read_luminance(path)


def _test_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    gray = _gray8(48, 64).astype(np.int16)
    within = np.clip(gray[..., None] + rng.integers(-1, 2, (48, 64, 3)), 0, 255)
    sepia = np.clip(_photo(48, 64)[..., None] * np.array([1.351, 1.203, 0.937]) / 1.351, 0, 1)
    flat = np.broadcast_to(np.array([200, 30, 90]), (8, 8, 3))
    return {
        "gray-within-tolerance": within.astype(np.uint8),
        "sepia": np.round(sepia * 255).astype(np.uint8),
        "colour": _colourful(48, 64),
        "flat-colour": flat.astype(np.uint8),
    }


#: Whether each image is refused, with the API's threshold (None) and the CLI's (10).
REFUSED = {
    "gray-within-tolerance": (False, False),
    "sepia": (True, False),
    "colour": (True, True),
    "flat-colour": (True, False),  # one hue at one L: toned, by the tone statistic
}


def _refused(image, **options) -> bool:
    try:
        read_luminance(image, **options)
    except InputError as error:
        assert "expected a grayscale image" in str(error) and "color_tolerance" in str(error)
        return True
    return False


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("threshold", [None, DEFAULT_COLOR_THRESHOLD])
def test_one_colour_test_for_arrays_pil_images_and_files(tmp_path, name, threshold):
    rgb = _test_images()[name]
    path = tmp_path / f"{name}.png"
    Image.fromarray(rgb).save(path)
    expected = REFUSED[name][threshold is not None]
    assert _refused(rgb, color_threshold=threshold) is expected
    assert _refused(Image.fromarray(rgb), color_threshold=threshold) is expected
    assert _refused(path, color_threshold=threshold) is expected
    assert read_scan(path, color_threshold=threshold).is_color is expected
    loose = {"color_tolerance": 1.0, "color_threshold": threshold}
    light = read_luminance(rgb, **loose)[0]
    np.testing.assert_array_equal(read_luminance(path, **loose)[0], light)
    np.testing.assert_array_equal(read_scan(path, **loose).light, light)
    assert not read_scan(path, **loose).is_color


def test_defaults_api_refuses_toned_cli_reads_them(tmp_path):
    path = tmp_path / "sepia.png"
    Image.fromarray(_test_images()["sepia"]).save(path)
    assert not read_scan(path).is_color  # the CLI's reader: toned is not colour
    with pytest.raises(InputError, match=r"sepia\.png: expected a grayscale image"):
        read_luminance(path)  # the API's: any image that is not gray is refused
    assert read_luminance(path, color_tolerance=np.float32(1.0))[0].shape == (48, 64)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"color_tolerance": -0.1}, "color_tolerance: expected a number >= 0"),
        ({"color_tolerance": True}, "color_tolerance: expected a number >= 0"),
        ({"color_tolerance": float("nan")}, "color_tolerance: expected a number >= 0"),
        ({"color_threshold": "10"}, "color_threshold: expected a number .* or None"),
    ],
)
def test_bad_colour_options(tmp_path, options, message):
    path = tmp_path / "g.png"
    Image.fromarray(_gray8()).save(path)
    for image in (_gray8(), path):
        with pytest.raises(InputError, match=message):
            read_luminance(image, **options)
    with pytest.raises(InputError, match=message):
        read_scan(path, **options)


def test_colorize_a_path_equals_colorize_of_its_upright_pixels(tmp_path):
    path = tmp_path / "turned.png"
    Image.fromarray(_gray8()).save(path, exif=_exif(6).tobytes())
    with pytest.warns(UntrainedWeightsWarning):
        colorizer = Colorizer("instacolor-untrained-w16", working_size=64)
    out = colorizer.colorize(path)
    upright = ImageOps.exif_transpose(Image.open(path))
    assert out.size == upright.size == (24, 40)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(colorizer.colorize(upright)))


@pytest.mark.parametrize("name", ["instacolor.io.image", "instacolor.io.archival.color"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
