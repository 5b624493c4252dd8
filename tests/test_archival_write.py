"""Writing colorized files (instacolor.io.archival.write, .provenance): bit depth, sRGB ICC,
carried EXIF/XMP/IPTC, provenance, atomic replacement, refusing the input."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import ExifTags, Image, IptcImagePlugin

from instacolor.errors import DecodeError, InputError
from instacolor.io.archival import (
    DIGITAL_SOURCE_TYPE,
    SRGB_PROFILE,
    Provenance,
    parse_provenance,
    provenance_xmp,
    read_provenance,
    read_scan,
    read_xmp,
    settings_text,
    write_colorized,
)
from tests.archival_files import (
    L_STEP_16,
    TITLE_XMP,
    _gray_rgb16,
    _listing,
    _record,
    _tiff16,
)


@pytest.fixture
def tiff16(tmp_path) -> Path:
    return _tiff16(tmp_path)


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


def test_settings_round_trip_and_older_packets_without_them():
    record = Provenance(
        model="m", weights_sha256="a" * 64, input_sha256="b" * 64,
        settings=settings_text(decode="annealed-mean", temperature=0.38, mix=0.6, hints=None),
    )  # fmt: skip
    assert record.settings == "decode=annealed-mean;temperature=0.38;mix=0.6"
    packet = provenance_xmp(record)
    assert b"<instacolor:Settings>decode=annealed-mean;" in packet
    assert parse_provenance(packet) == record
    older = provenance_xmp(Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64))
    assert b"Settings" not in older and parse_provenance(older).settings == ""
    with pytest.raises(InputError, match="settings: expected a string"):
        Provenance(model="m", weights_sha256="a" * 64, input_sha256="b" * 64, settings=3)
