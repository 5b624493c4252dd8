"""Reading archival scans (instacolor.io.archival.read, .decode) from real files made here:
bit depths, layouts, pages, orientation, metadata; bad files raise clear errors and
stay untouched."""

from __future__ import annotations

import doctest
import importlib
import os
import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import ExifTags, Image, ImageOps

from instacolor.errors import DecodeError, InputError
from instacolor.io.archival import read_scan, read_scan_pages
from tests.archival_files import (
    IPTC,
    TITLE_XMP,
    _bomb_png,
    _exif,
    _gray_l,
    _listing,
    _photo,
    _png_bytes,
    _ramp16,
    _sha,
    _tiff16,
)


@pytest.fixture
def tiff16(tmp_path) -> Path:
    return _tiff16(tmp_path)


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
    with pytest.raises(InputError, match=r"there is no file at this path.*a folder"):
        read_scan(tmp_path)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # never opened: nobody writes it
    with pytest.raises(InputError, match="not a regular file: a FIFO"):
        read_scan(fifo)
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
