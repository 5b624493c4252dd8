"""Archival I/O on real files made here with Pillow, tifffile and imagecodecs.

Reading: bit depths, layouts, pages, orientation, ICC, toned gray vs colour. Writing:
bit depth, sRGB ICC, carried EXIF/XMP/IPTC, provenance, atomic replacement, refusing
the input. Bad files: every one raises a clear error and leaves the input as it was.
"""

from __future__ import annotations

import dataclasses
import doctest
import hashlib
import importlib
import json
import os
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps, IptcImagePlugin

from instacolor.color import gray_to_l, l_to_gray, rgb_to_l
from instacolor.errors import DecodeError, InputError
from instacolor.io.archival import (
    DEFAULT_COLOR_THRESHOLD,
    DIGITAL_SOURCE_TYPE,
    SRGB_PROFILE,
    Provenance,
    ScanImage,
    parse_provenance,
    provenance_xmp,
    read_provenance,
    read_scan,
    read_scan_pages,
    read_xmp,
    tone_deviation,
    write_colorized,
)

L_STEP_16 = 1.1e-3  # the largest change of L between neighbouring 16-bit gray levels
IPTC = b"\x1c\x02\x00\x00\x02\x00\x04\x1c\x02\x78\x00\x0bA wedding."  # version + caption
TITLE_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" tiff:Orientation="6" '
    b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
    b'negativeFilm"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">Grandma, 1921</rdf:li>'
    b"</rdf:Alt></dc:title></rdf:Description></rdf:RDF></x:xmpmeta>"
)


# ----------------------------------------------------------------------------- helpers


def _gray_l(values: np.ndarray, levels: int) -> np.ndarray:
    """Reference L of gray levels, in float64."""
    scaled = np.asarray(values, dtype=np.float64) / (levels - 1)
    return gray_to_l(torch.from_numpy(np.atleast_1d(scaled))).numpy().reshape(scaled.shape)


def _rgb_l(rgb: np.ndarray) -> np.ndarray:
    scale = np.iinfo(rgb.dtype).max
    t = torch.from_numpy(rgb.astype(np.float64) / scale).permute(2, 0, 1)
    return rgb_to_l(t)[0].numpy()


def _ramp16(h=32, w=48) -> np.ndarray:
    """Distinct 16-bit gray levels spread over the whole range."""
    n = h * w
    return (np.arange(n, dtype=np.int64) * 65535 // (n - 1)).astype(np.uint16).reshape(h, w)


def _photo(h=64, w=80) -> np.ndarray:
    """A gray 'photograph' in [0, 1]: smooth shading, a bright window and a dark disc."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    img = 0.2 + 0.6 * (0.5 + 0.5 * np.sin(5 * x + 1) * np.cos(3 * y))
    img[h // 5 : h // 2, w // 5 : w // 2] = 0.92
    img[(y - 0.7) ** 2 + (x - 0.7) ** 2 < 0.03] = 0.06
    return img


def _colourful(h=64, w=80) -> np.ndarray:
    """uint8 RGB whose hue turns along x at similar lightness."""
    x = np.linspace(0, 2 * np.pi, w)
    rgb = [0.5 + 0.4 * np.sin(x + phase) for phase in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
    rgb = np.stack(rgb, -1)[None].repeat(h, 0) * np.linspace(0.6, 1.0, h)[:, None, None]
    return np.round(rgb * 255).astype(np.uint8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(scan: ScanImage) -> Provenance:
    return Provenance(
        model="instacolor-w16-v4",
        weights_sha256="0123456789abcdef" * 4,
        input_sha256=scan.sha256,
        timestamp="2026-01-02T03:04:05Z",
    )


def _gray_rgb16(light: np.ndarray) -> np.ndarray:
    """The neutral uint16 RGB with this L (what a colorizer writes for zero chroma)."""
    gray = l_to_gray(torch.from_numpy(light.astype(np.float64))).numpy()
    return np.repeat(np.round(gray * 65535).astype(np.uint16)[..., None], 3, axis=-1)


def _exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Epson"
    exif[ExifTags.Base.Artist] = "County archive"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "1921:06:01 12:00:00"}
    return exif


@pytest.fixture
def tiff16(tmp_path) -> Path:
    """A 16-bit gray TIFF with EXIF (orientation 6, Exif IFD), XMP, IPTC and 300x600 dpi."""
    exif = _exif(orientation=6)
    exif[700] = TITLE_XMP
    exif[33723] = IPTC
    path = tmp_path / "scan16.tif"
    Image.fromarray(_ramp16()).save(path, exif=exif.tobytes(), dpi=(300, 600))
    return path


# ----------------------------------------------------------------------------- reading


def test_gray8_png(tmp_path):
    gray = np.round(_photo() * 255).astype(np.uint8)
    path = tmp_path / "g8.png"
    Image.fromarray(gray).save(path)
    scan = read_scan(path)
    assert (scan.bit_depth, scan.format, scan.page, scan.page_count) == (8, "PNG", 0, 1)
    assert scan.light.dtype == np.float32 and scan.size == gray.shape
    np.testing.assert_allclose(scan.light, _gray_l(gray, 256), atol=1e-4)
    assert not scan.is_color and scan.tone_deviation == 0.0 and not scan.has_alpha
    assert scan.sha256 == _sha(path) and scan.path == path.absolute()
    assert scan.icc_profile is scan.exif is scan.xmp is scan.iptc is None


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_gray16_keeps_16_bit_precision(tmp_path, kind):
    gray = _ramp16()
    path = tmp_path / f"g16.{kind}"
    if kind == "png":
        Image.fromarray(gray).save(path)
    else:
        tifffile.imwrite(path, gray, photometric="minisblack")
    scan = read_scan(path)
    assert scan.bit_depth == 16
    np.testing.assert_allclose(scan.light, _gray_l(gray, 65536), atol=1e-4)
    assert len(np.unique(scan.light)) == gray.size  # no level merged, as 8 bits would


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_rgb16_gray_scan_keeps_precision(tmp_path, kind):
    gray = _ramp16()
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    path = tmp_path / f"rgb16.{kind}"
    if kind == "png":
        path.write_bytes(imagecodecs.png_encode(rgb))
    else:
        tifffile.imwrite(path, rgb, photometric="rgb")
    scan = read_scan(path)
    assert scan.bit_depth == 16 and not scan.is_color
    np.testing.assert_allclose(scan.light, _gray_l(gray, 65536), atol=1e-4)


@pytest.mark.parametrize("bits", [1, 4, 12, 32])
def test_low_bit_depths_and_float_tiff(tmp_path, bits):
    path = tmp_path / f"b{bits}.tif"
    if bits == 1:  # bilevel, 0 is white
        tifffile.imwrite(path, np.eye(8, dtype=bool), photometric="miniswhite")
        expected, depth = _gray_l(np.where(np.eye(8), 0, 255), 256), 8
    elif bits == 32:
        values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
        tifffile.imwrite(path, values, photometric="minisblack")
        expected, depth = _gray_l(values, 2), 16
    else:
        top = (1 << bits) - 1
        values = (np.arange(64) % (top + 1)).reshape(8, 8)
        dtype = np.uint8 if bits <= 8 else np.uint16
        tifffile.imwrite(path, values.astype(dtype), bitspersample=bits, photometric="minisblack")
        expected, depth = _gray_l(values / top, 2), 8 if bits <= 8 else 16
    scan = read_scan(path)
    assert scan.bit_depth == depth
    np.testing.assert_allclose(scan.light, expected, atol=2e-3)


def test_palette_png(tmp_path):
    index = (np.arange(64 * 80) % 4).reshape(64, 80).astype(np.uint8)
    palette = [0, 0, 0, 80, 80, 80, 160, 160, 160, 255, 255, 255] + [0] * (256 * 3 - 12)
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    path = tmp_path / "palette.png"
    image.save(path)
    scan = read_scan(path)
    expected = _gray_l(np.array([0, 80, 160, 255])[index], 256)
    np.testing.assert_allclose(scan.light, expected, atol=1e-4)
    assert scan.bit_depth == 8 and not scan.is_color


def test_palette_tiff(tmp_path):
    index = (np.arange(32 * 40) % 3).reshape(32, 40).astype(np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :3] = np.array([0, 128, 255]) * 257
    path = tmp_path / "palette.tif"
    tifffile.imwrite(path, index, photometric="palette", colormap=colormap)
    scan = read_scan(path)
    np.testing.assert_allclose(scan.light, _gray_l(np.array([0, 128, 255])[index], 256), atol=1e-4)


@pytest.mark.parametrize("layout", ["LA8", "RGBA8", "RGBA16-png", "LA16-tif"])
def test_alpha_is_dropped_not_composited(tmp_path, layout):
    gray8 = np.round(_photo() * 255).astype(np.uint8)
    alpha = np.zeros_like(gray8)  # fully transparent: compositing would change L
    path = tmp_path / f"{layout}.{'tif' if 'tif' in layout else 'png'}"
    if layout == "LA8":
        Image.fromarray(np.dstack([gray8, alpha]), "LA").save(path)
    elif layout == "RGBA8":
        Image.fromarray(np.dstack([gray8] * 3 + [alpha]), "RGBA").save(path)
    elif layout == "RGBA16-png":
        path.write_bytes(imagecodecs.png_encode(np.dstack([gray8.astype(np.uint16) * 257] * 4)))
    else:
        planes = np.dstack([gray8.astype(np.uint16) * 257, alpha.astype(np.uint16)])
        tifffile.imwrite(path, planes, photometric="minisblack", extrasamples=["unassalpha"])
    scan = read_scan(path)
    assert scan.has_alpha
    np.testing.assert_allclose(scan.light, _gray_l(gray8, 256), atol=1e-4)


def test_multipage_tiff_first_page_and_all_pages(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for value in (1000, 30000, 60000):
            tif.write(np.full((24, 32), value, np.uint16), photometric="minisblack")
        tif.write(np.zeros((6, 8), np.uint16), photometric="minisblack", subfiletype=1)
    first = read_scan(path)
    assert (first.page, first.page_count) == (0, 3)  # the reduced-resolution IFD is no page
    np.testing.assert_allclose(first.light, _gray_l(np.array(1000), 65536), atol=1e-4)
    pages = list(read_scan_pages(path))
    assert [p.page for p in pages] == [0, 1, 2]
    assert [round(float(p.light[0, 0]), 3) for p in pages] == [
        round(float(_gray_l(np.array(v), 65536)), 3) for v in (1000, 30000, 60000)
    ]
    assert read_scan(path, page=2).light[0, 0] == pages[2].light[0, 0]
    assert {p.sha256 for p in pages} == {first.sha256}
    with pytest.raises(InputError, match=r"expected 0 to 2 .*received 3"):
        read_scan(path, page=3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    gray = np.round(_photo(24, 40) * 255).astype(np.uint8)
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(gray).save(path, exif=_exif(orientation).tobytes(), dpi=(300, 600))
    scan = read_scan(path)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    np.testing.assert_allclose(scan.light, _gray_l(upright, 256), atol=1e-4)
    exif = Image.Exif()
    exif.load(scan.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "Epson"
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "1921:06:01 12:00:00"
    turned = orientation >= 5
    assert scan.size == ((40, 24) if turned else (24, 40))
    assert scan.dpi == pytest.approx((600, 300) if turned else (300, 600), abs=0.01)


def test_tiff_metadata_and_orientation(tiff16):
    scan = read_scan(tiff16)
    assert scan.size == (48, 32)  # orientation 6: a quarter turn clockwise
    np.testing.assert_allclose(scan.light, _gray_l(np.rot90(_ramp16(), -1), 65536), atol=1e-4)
    assert scan.xmp == TITLE_XMP and scan.iptc == IPTC and scan.dpi == (600.0, 300.0)
    exif = Image.Exif()
    exif.load(scan.exif)
    assert exif[ExifTags.Base.Artist] == "County archive" and exif[ExifTags.Base.Orientation] == 1


def test_jpeg_iptc_is_read(tmp_path):
    buf = tmp_path / "plain.jpg"
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(buf, quality=95)
    data = buf.read_bytes()
    resource = b"8BIM\x04\x04\0\0" + struct.pack(">I", len(IPTC)) + IPTC + b"\0" * (len(IPTC) % 2)
    payload = b"Photoshop 3.0\0" + resource
    app13 = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    path = tmp_path / "iptc.jpg"
    path.write_bytes(data[:2] + app13 + data[2:])
    assert read_scan(path).iptc == IPTC


def _profile(name: str, **kwargs) -> bytes:
    return imagecodecs.cms_profile(name, **kwargs)


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


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_16_bit_round_trip_keeps_l(tmp_path, tiff16, kind):
    scan = read_scan(tiff16)
    out = write_colorized(
        tmp_path / f"out.{kind}", _gray_rgb16(scan.light), provenance=_record(scan), source=scan
    )
    pixels = imagecodecs.png_decode(out.read_bytes()) if kind == "png" else tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.shape == (*scan.size, 3)
    back = read_scan(out)
    assert back.bit_depth == 16 and not back.is_color
    assert np.abs(back.light - scan.light).max() <= L_STEP_16


@pytest.mark.parametrize("kind", ["png", "tif", "jpg"])
def test_outputs_carry_icc_exif_xmp_iptc_and_provenance(tmp_path, tiff16, kind):
    scan = read_scan(tiff16)
    record = _record(scan)
    out = write_colorized(
        tmp_path / f"out.{kind}", _gray_rgb16(scan.light), provenance=record, source=scan
    )
    with Image.open(out) as im:
        assert im.info["icc_profile"] == SRGB_PROFILE
        exif = im.getexif()
        assert exif[ExifTags.Base.Artist] == "County archive"
        assert exif[ExifTags.Base.Software] == "instacolor 0.1.0"
        assert exif.get(ExifTags.Base.Orientation, 1) == 1
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        assert sub[ExifTags.Base.DateTimeOriginal] == "1921:06:01 12:00:00"
        iptc = IptcImagePlugin.getiptcinfo(im)
        if kind == "png":
            assert im.text["Software"] == "instacolor 0.1.0"
            assert json.loads(im.text["instacolor:provenance"]) == record.to_dict()
        else:
            assert iptc[(2, 120)] == b"A wedding."
        im.load()  # the pixels decode cleanly with Pillow/libtiff too
    xmp = read_xmp(out)
    assert b"Grandma, 1921" in xmp and xmp.count(b"DigitalSourceType") == 2  # open + close tag
    assert DIGITAL_SOURCE_TYPE.encode() in xmp and b"negativeFilm" not in xmp
    assert b"tiff:Orientation" not in xmp  # the pixels are upright now
    assert read_provenance(out) == record
    if kind == "tif":
        with tifffile.TiffFile(out) as tif:
            tags = tif.pages[0].tags
            assert tags["Software"].value == "instacolor 0.1.0"
            assert tags["ExifTag"].value["DateTimeOriginal"] == "1921:06:01 12:00:00"
    assert read_scan(out).dpi == pytest.approx((600, 300), abs=0.01)


def test_jpeg_output_is_8_bit(tmp_path, tiff16):
    scan = read_scan(tiff16)
    out = write_colorized(
        tmp_path / "o.jpg", _gray_rgb16(scan.light), provenance=_record(scan), source=scan
    )
    back = read_scan(out)
    assert back.bit_depth == 8 and np.abs(back.light - scan.light).max() < 1.5


def test_8_bit_source_writes_8_bit_and_no_source_keeps_rgb_depth(tmp_path):
    path = tmp_path / "g8.png"
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(path)
    scan = read_scan(path)
    rgb16 = np.full((8, 8, 3), 100 * 257, np.uint16)
    out = write_colorized(tmp_path / "o.tif", rgb16, provenance=_record(scan), source=scan)
    assert tifffile.imread(out).dtype == np.uint8 and (tifffile.imread(out) == 100).all()
    alone = write_colorized(tmp_path / "alone.png", rgb16, provenance=_record(scan))
    assert read_scan(alone).bit_depth == 16 and read_provenance(alone) == _record(scan)


def test_written_xmp_replaces_unreadable_input_xmp_with_warning():
    record = Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64)
    with pytest.warns(UserWarning, match="not well-formed XMP"):
        packet = provenance_xmp(record, b"<x:xmpmeta><unclosed>")
    assert parse_provenance(packet) == record
    with pytest.warns(UserWarning):  # entity declarations are never parsed
        provenance_xmp(record, b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')


def test_damaged_provenance_record_is_an_error():
    record = Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64)
    damaged = provenance_xmp(record).replace(b"a" * 64, b"not-a-hash")
    with pytest.raises(DecodeError, match="provenance in this XMP is incomplete or invalid"):
        parse_provenance(damaged)
    assert parse_provenance(TITLE_XMP) is None


def test_file_without_provenance_reads_none(tmp_path):
    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    assert read_provenance(path) is None


def test_provenance_validates_fields():
    with pytest.raises(InputError, match="weights_sha256: expected 64 lowercase hex"):
        Provenance(model="m", weights_sha256="ABC", input_sha256="b" * 64)
    with pytest.raises(InputError, match="timestamp: expected ISO 8601"):
        Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64, timestamp="now")
    assert Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64).version == "0.1.0"


def test_refuses_to_write_over_the_input(tmp_path, tiff16):
    scan = read_scan(tiff16)
    before = tiff16.read_bytes()
    rgb = _gray_rgb16(scan.light)
    link = tmp_path / "link.tif"
    link.symlink_to(tiff16)
    for target in (tiff16, link):
        with pytest.raises(InputError, match="refusing to write over the source scan"):
            write_colorized(target, rgb, provenance=_record(scan), source=scan, overwrite=True)
    assert tiff16.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path, tiff16):
    scan = read_scan(tiff16)
    out = tmp_path / "out.png"
    out.write_bytes(b"earlier result")
    rgb = _gray_rgb16(scan.light)
    with pytest.raises(InputError, match="pass overwrite=True"):
        write_colorized(out, rgb, provenance=_record(scan), source=scan)
    assert out.read_bytes() == b"earlier result"
    write_colorized(out, rgb, provenance=_record(scan), source=scan, overwrite=True)
    assert read_provenance(out) == _record(scan)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("kind", ["png", "tif", "jpg"])
def test_failed_encode_leaves_existing_output_and_no_temp_file(tmp_path, tiff16, kind):
    import resource
    import signal

    scan = read_scan(tiff16)
    out = tmp_path / f"out.{kind}"
    out.write_bytes(b"earlier result")
    before = _listing(tmp_path)
    noise = np.random.default_rng(0).integers(0, 65536, (*scan.size, 3)).astype(np.uint16)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # a "disk" full after 2 KiB
    try:
        with pytest.raises(OSError, match="File too large"):
            write_colorized(out, noise, provenance=_record(scan), source=scan, overwrite=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert out.read_bytes() == b"earlier result"
    assert _listing(tmp_path) == before  # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unwritable_folder_leaves_nothing(tmp_path, tiff16):
    scan = read_scan(tiff16)
    if os.geteuid() == 0:  # root ignores folder permissions; procfs refuses new files
        folder = Path("/proc/self")
        if not folder.is_dir():
            pytest.skip("running as root without /proc")
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
    before = _listing(folder)
    try:
        with pytest.raises(OSError):
            write_colorized(folder / "o.png", _gray_rgb16(scan.light), provenance=_record(scan))
    finally:
        if folder != Path("/proc/self"):
            folder.chmod(0o700)
    assert _listing(folder) == before and not (folder / "o.png").exists()


def test_jpeg_drops_source_xmp_too_large_for_one_segment(tmp_path, tiff16):
    scan = read_scan(tiff16)
    title = b"<rdf:li xml:lang='x-default'>" + b"x" * 70_000 + b"</rdf:li>"
    big = dataclasses.replace(scan, xmp=TITLE_XMP.replace(b"<rdf:li", title + b"<rdf:li"))
    with pytest.warns(UserWarning, match="XMP is larger than one JPEG segment"):
        out = write_colorized(
            tmp_path / "o.jpg", _gray_rgb16(scan.light), provenance=_record(scan), source=big
        )
    assert read_provenance(out) == _record(scan) and b"Grandma" not in read_xmp(out)


def test_writer_argument_errors(tmp_path, tiff16):
    scan = read_scan(tiff16)
    rgb, record = _gray_rgb16(scan.light), _record(scan)
    cases = [
        (
            dict(path=tmp_path / "o.png", rgb=rgb.astype(np.float32)),
            "expected dtype uint8 or uint16",
        ),
        (dict(path=tmp_path / "o.png", rgb=rgb[..., :2]), r"expected shape \(H, W, 3\)"),
        (dict(path=tmp_path / "o.gif", rgb=rgb), "cannot tell the output format"),
        (dict(path=tmp_path / "o.png", rgb=rgb, format="TIFF"), "conflicts with the suffix"),
        (dict(path=tmp_path / "o.out", rgb=rgb, format="webp"), "expected 'PNG', 'TIFF' or 'JPEG'"),
        (dict(path=tmp_path / "none" / "o.png", rgb=rgb), "expected an existing folder"),
        (dict(path=tmp_path / "o.png", rgb=rgb[:5]), "full-resolution image of the source"),
        (dict(path=tmp_path / "o.png", rgb=rgb, jpeg_quality=0), "jpeg_quality"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            write_colorized(
                kwargs.pop("path"), kwargs.pop("rgb"), provenance=record, source=scan, **kwargs
            )
    other = Provenance(model="m", weights_sha256="a" * 64, input_sha256="c" * 64)
    with pytest.raises(InputError, match="is not the source's sha256"):
        write_colorized(tmp_path / "o.png", rgb, provenance=other, source=scan)
    wide = np.zeros((1, 65501, 3), np.uint8)
    with pytest.raises(InputError, match="JPEG holds at most 65500 pixels a side"):
        write_colorized(tmp_path / "wide.jpg", wide, provenance=record)
    assert _listing(tmp_path) == ["scan16.tif"]


def test_format_argument_with_unknown_suffix(tmp_path, tiff16):
    scan = read_scan(tiff16)
    out = write_colorized(
        tmp_path / "result.out", _gray_rgb16(scan.light), provenance=_record(scan), format="tiff"
    )
    assert out.read_bytes()[:4] == b"II*\x00" and read_provenance(out) == _record(scan)


# ----------------------------------------------------------------------------- bad files


def _png_bytes(gray: np.ndarray) -> bytes:
    path_like = __import__("io").BytesIO()
    Image.fromarray(gray).save(path_like, format="PNG")
    return path_like.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (the data is a 1x1 image)."""
    data = bytearray(_png_bytes(np.zeros((1, 1), np.uint8)))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = ihdr[4:12]
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def _bad_files() -> dict[str, tuple[bytes, str]]:
    gray = np.round(_photo() * 255).astype(np.uint8)
    png = _png_bytes(gray)
    png16 = imagecodecs.png_encode(np.dstack([gray.astype(np.uint16) * 257] * 3))
    jpeg = __import__("io").BytesIO()
    Image.fromarray(gray).save(jpeg, format="JPEG")
    tif = __import__("io").BytesIO()
    tifffile.imwrite(tif, gray, photometric="minisblack")
    corrupt = bytearray(png)
    corrupt[60:80] = b"\xff" * 20
    gif = __import__("io").BytesIO()
    Image.fromarray(gray).save(gif, format="GIF")
    cmyk = __import__("io").BytesIO()
    Image.fromarray(gray).convert("CMYK").save(cmyk, format="JPEG")
    tiffs = {}
    for name, data, photometric in [
        ("int16", np.zeros((8, 8), np.int16), "minisblack"),
        ("cmyk", np.zeros((8, 8, 4), np.uint8), "separated"),
        ("float", np.full((8, 8), 2.0, np.float32), "minisblack"),
    ]:
        tiffs[name] = __import__("io").BytesIO()
        tifffile.imwrite(tiffs[name], data, photometric=photometric)
    return {
        "empty.png": (b"", r"empty \(0 bytes\).*copy or scan it again"),
        "truncated.png": (png[: len(png) // 2], "could not be decoded.*truncated or corrupt"),
        "truncated16.png": (png16[: len(png16) // 2], "could not be decoded.*truncated"),
        "truncated.jpg": (jpeg.getvalue()[:300], "could not be decoded.*truncated"),
        "truncated.tif": (tif.getvalue()[:2000], "could not be decoded.*truncated"),
        "corrupt.png": (bytes(corrupt), "could not be decoded.*corrupt"),
        "notes.txt": (
            b"scanned 1921, box 4\n",
            "expected a JPEG, PNG or TIFF image, received data",
        ),
        "animation.png": (gif.getvalue(), "received a GIF image.*Convert it to PNG or TIFF"),
        "cmyk.jpg": (cmyk.getvalue(), "pixel mode 'CMYK' is not supported"),
        "cmyk.tif": (tiffs["cmyk"].getvalue(), "photometric interpretation SEPARATED"),
        "int16.tif": (tiffs["int16"].getvalue(), "int16 samples are not supported"),
        "float.tif": (tiffs["float"].getvalue(), r"samples must lie in \[0, 1\]"),
        "bomb.png": (_bomb_png(100_000, 100_000), r"10000000000 = 10000000.0|max_pixels"),
    }


@pytest.mark.parametrize("name", list(_bad_files()))
def test_bad_files_raise_clear_errors_and_stay_untouched(tmp_path, name):
    data, message = _bad_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DecodeError, match=message) as info:
        read_scan(path)
    assert str(path) in str(info.value)
    with pytest.raises(DecodeError):
        next(read_scan_pages(path))
    assert path.read_bytes() == data and _listing(tmp_path) == [name]


def test_decompression_bomb_message_says_how_to_raise_the_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(100_000, 100_000))
    with pytest.raises(
        DecodeError, match=r"100000x100000 = 10000.0 megapixels .* pass max_pixels="
    ):
        read_scan(path)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(small)
    with pytest.raises(DecodeError, match=r"more than max_pixels=100 "):
        read_scan(small, max_pixels=100)
    assert read_scan(small, max_pixels=400).size == (20, 20)


def test_missing_path_and_bad_options(tmp_path):
    with pytest.raises(InputError, match="there is no file at this path"):
        read_scan(tmp_path / "missing.tif")
    with pytest.raises(InputError, match="there is no file at this path"):
        read_scan(tmp_path)
    path = tmp_path / "g.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(InputError, match="max_pixels: expected an int >= 1 or None"):
        read_scan(path, max_pixels=0)
    with pytest.raises(InputError, match="page: expected 0 to 0"):
        read_scan(path, page=-1)
    with pytest.raises(InputError, match=r"path: expected a str or os\.PathLike"):
        read_scan(b"g.png")


@pytest.mark.parametrize(
    "name",
    [
        "instacolor.io.archival.read",
        "instacolor.io.archival.color",
        "instacolor.io.archival.provenance",
        "instacolor.io.archival.write",
    ],
)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
