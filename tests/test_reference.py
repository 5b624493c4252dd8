"""Colour from a reference photo: reading and refusing references, matching, the API."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor import Colorizer, DecodeError, InputError
from instacolor.color import rgb_to_lab
from instacolor.hints import Reference, match_references, read_references
from instacolor.metrics import gray_baseline, psnr


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(torch.from_numpy(rgb / 255.0).permute(2, 0, 1)).numpy()


def _scene(seed: int, hues: tuple) -> np.ndarray:
    """A 192x256 colour photo stand-in: four textured regions, each of its own colour."""
    rng = np.random.default_rng(seed)
    h, w = 192, 256
    yy, xx = np.mgrid[0:h, 0:w]
    textures = [
        0.5 + 0.4 * np.sin(xx / 3.0),  # vertical stripes
        0.5 + 0.4 * np.sign(np.sin(xx / 6.0) * np.sin(yy / 6.0)),  # checks
        0.5 + 0.25 * rng.standard_normal((h, w)),  # grain
        0.5 + 0.4 * np.sin((xx + yy) / 5.0),  # diagonal stripes
    ]
    region = (yy >= h // 2) * 2 + (xx >= w // 2)
    out = np.zeros((h, w, 3))
    for i, (tex, hue) in enumerate(zip(textures, hues)):
        out[region == i] = (np.clip(tex, 0.05, 0.95)[..., None] * np.array(hue))[region == i]
    return (out * 255).astype(np.uint8)


PHOTO_HUES = ((1.0, 0.35, 0.3), (0.3, 0.9, 0.35), (0.35, 0.45, 1.0), (1.0, 0.9, 0.3))


@pytest.fixture(scope="module")
def shipped():
    return Colorizer("default", working_size=64)


@pytest.fixture(scope="module")
def photo():
    return _scene(0, PHOTO_HUES)


def _mirrored_crop(rgb: np.ndarray, mirror: bool = True) -> np.ndarray:
    crop = rgb[12:-20, 16:-8][:, ::-1] if mirror else rgb[12:-20, 16:-8]
    image = Image.fromarray(np.ascontiguousarray(crop))
    return np.asarray(image.resize((crop.shape[1] * 3 // 4, crop.shape[0] * 3 // 4)))


# ---------------------------------------------------------------- refusals


def test_a_gray_or_toned_reference_has_no_colour_to_take(photo):
    gray = np.repeat(photo.mean(2, keepdims=True).astype(np.uint8), 3, 2)
    with pytest.raises(InputError, match="no colour to take"):
        read_references(gray)
    sepia = (photo.mean(2, keepdims=True) * np.array([1.0, 0.8, 0.6])).astype(np.uint8)
    with pytest.raises(InputError, match="gray or toned"):
        read_references([photo, sepia])  # the second of two: its index is named
    with pytest.raises(InputError, match="reference 1"):
        read_references([photo, sepia])


def test_bad_reference_types_shapes_and_lists():
    with pytest.raises(InputError, match="at least one colour photograph"):
        read_references([])
    with pytest.raises(InputError, match="received int"):
        read_references(3)
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        read_references(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="dtype"):
        read_references(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        read_references(np.full((8, 8, 3), 2.0, np.float32))


def test_missing_and_unreadable_reference_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_references(tmp_path / "nowhere.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DecodeError, match="could not decode"):
        read_references(str(broken))
    assert broken.read_bytes() == b"not an image at all"  # only read
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # never opened: nobody writes it
    for special in (fifo, tmp_path):
        with pytest.raises(InputError, match="is not a regular file"):
            read_references(special)


def test_a_bad_reference_or_hint_fails_the_call(shipped, photo):
    gray = photo.mean(2).astype(np.uint8)
    with pytest.raises(InputError, match="no colour to take"):
        shipped.colorize(gray, reference=np.full((16, 16, 3), 90, np.uint8))
    with pytest.raises(InputError, match="points inside the image"):
        shipped.colorize(gray, hints=[(999, 5, "#ff0000")], reference=photo)


def test_a_reference_needs_propagation(photo):
    colorizer = Colorizer("default", working_size=64, hint_propagation="none")
    with pytest.raises(InputError, match="hint_propagation='none'"):
        colorizer.colorize(gray_baseline(photo)[:, :, 0], reference=photo)


# ---------------------------------------------------------------- reading and matching


def test_paths_pil_images_and_arrays_read_alike(tmp_path, photo):
    path = tmp_path / "ref.png"
    Image.fromarray(photo).save(path)
    refs = read_references([path, str(path), Image.fromarray(photo), photo])
    assert [r.source for r in refs] == [str(path), str(path), "PIL", "array"]
    for ref in refs:
        assert isinstance(ref, Reference) and ref.rgb.dtype == np.float32
        np.testing.assert_allclose(ref.rgb, photo / 255.0, atol=1e-6)
    assert read_references(refs) == refs  # references read once serve again as they are


def test_matches_carry_the_reference_colours_and_unrelated_ones_barely_match(photo):
    lab = _lab(np.asarray(Image.fromarray(photo).resize((64, 64), Image.BILINEAR)))
    light = lab[0].astype(np.float32)
    same = match_references(light, read_references(_mirrored_crop(photo)))
    assert same.known.sum() >= 40
    error = np.hypot(*(same.ab[:, same.known] - lab[1:, same.known]))
    assert np.median(error) < 8.0
    assert same.confidence.shape == (64, 64) and same.confidence.max() <= 1.0
    other = _scene(7, PHOTO_HUES[::-1])[::-1]  # other textures in other places and colours
    unrelated = match_references(light, read_references(np.ascontiguousarray(other)))
    assert unrelated.known.sum() < same.known.sum() / 2


def test_the_flipped_mirror_is_the_cells_reversed_and_still_matches_a_mirrored_crop(photo):
    import instacolor.hints.reference as matching

    lab = _lab(np.asarray(Image.fromarray(photo).resize((64, 64), Image.BILINEAR)))
    light = torch.from_numpy(lab[:1].astype(np.float32))[None]
    light = torch.nn.functional.interpolate(light, (256, 256), mode="bilinear")
    with torch.inference_mode():  # as the library describes
        cells = matching._describe(light)
        flipped = matching._describe(light.flip(-1))  # the mirror's own pass
    mirror = cells.mirrored()
    torch.testing.assert_close(mirror.mirrored().fine, cells.fine, rtol=0, atol=0)
    torch.testing.assert_close(mirror.light, flipped.light, rtol=0, atol=1e-4)  # exact for L
    g = math.isqrt(cells.fine.shape[1])
    column = cells.fine[0].reshape(g, g, -1)[:, 0]
    torch.testing.assert_close(mirror.fine[0].reshape(g, g, -1)[:, g - 1], column)
    assert matching.MIRROR == "flip"  # the library's choice (docs/reference.md)
    flip = match_references(lab[0].astype(np.float32), read_references(_mirrored_crop(photo)))
    try:
        matching.MIRROR = "pass"
        own = match_references(lab[0].astype(np.float32), read_references(_mirrored_crop(photo)))
    finally:
        matching.MIRROR = "flip"
    assert flip.known.sum() >= 20 and own.known.sum() >= 20
    error = np.hypot(*(flip.ab[:, flip.known] - lab[1:, flip.known]))
    assert np.median(error) < 8.0


def test_a_kept_reference_is_encoded_once_and_matches_the_same(photo):
    lab = _lab(np.asarray(Image.fromarray(photo).resize((64, 64), Image.BILINEAR)))
    light = lab[0].astype(np.float32)
    fresh = match_references(light, read_references(_mirrored_crop(photo)))
    kept = read_references(_mirrored_crop(photo))
    assert kept[0]._cells == {}
    first = match_references(light, kept)
    cells = kept[0]._cells[64]
    again = match_references(light * 0.9, kept)  # another target, the same reference
    assert kept[0]._cells[64] is cells  # not encoded again
    for got in (first, match_references(light, kept)):
        np.testing.assert_array_equal(got.known, fresh.known)
        np.testing.assert_allclose(got.ab, fresh.ab, atol=1e-5)
    assert again.known.sum() > 0
    # two references, one kept and one new: the same as both new
    pair = match_references(light, (*kept, *read_references(photo)))
    both = match_references(light, read_references([_mirrored_crop(photo), photo]))
    np.testing.assert_array_equal(pair.known, both.known)
    # another working size is another set of cells
    lab32 = _lab(np.asarray(Image.fromarray(photo).resize((32, 32), Image.BILINEAR)))
    match_references(lab32[0].astype(np.float32), kept)
    assert set(kept[0]._cells) == {32, 64}


def test_a_mirrored_crop_of_the_photo_brings_its_colours_back(shipped, photo):
    gray = gray_baseline(photo)[:, :, 0]  # the photo's own L
    automatic = shipped.colorize(gray)
    guided = shipped.colorize(gray, reference=_mirrored_crop(photo))
    # a mirrored reference is matched by its cells flipped (reference.MIRROR): less than
    # the same crop unmirrored, which brings the issue's +3 dB
    assert psnr(guided, photo) > psnr(automatic, photo) + 2.0
    straight = shipped.colorize(gray, reference=_mirrored_crop(photo, mirror=False))
    assert psnr(straight, photo) > psnr(automatic, photo) + 3.0
    # a list works too (the photo's own striped cells mix colours: fewer of them match)
    both = shipped.colorize(gray, reference=[_mirrored_crop(photo), photo])
    assert psnr(both, photo) > psnr(automatic, photo) + 1.0
    result = shipped.colorize_full(gray, reference=_mirrored_crop(photo))
    assert result.reference_map.shape == gray.shape and result.reference_map.dtype == np.float32
    assert 0.02 < (result.reference_map > 0).mean() < 1.0 and result.reference_map.max() <= 1.0
    assert shipped.colorize_full(gray).reference_map is None
    # the photo's own luminance is kept whatever the reference's
    np.testing.assert_allclose(_lab(guided)[0], _lab(automatic)[0], atol=1.5)
