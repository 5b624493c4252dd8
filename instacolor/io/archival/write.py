"""Archival output: colorized RGB -> PNG, TIFF or JPEG with sRGB ICC, metadata and provenance.

:func:`write_colorized` writes atomically: the file is encoded into a hidden temporary
file in the destination folder, flushed and fsynced, then renamed over the
destination with :func:`os.replace`. On any failure the temporary file is removed and
an existing file at the destination is left as it was. It refuses to write over the
source scan. The bit depth of the source is kept (16-bit in -> 16-bit out) for PNG and
TIFF; JPEG is 8-bit only, so 16-bit images are rounded to 8 bits for it.

Where each piece of metadata goes:

* **PNG**: RGB 8 or 16 bit; the sRGB profile in ``iCCP``; EXIF in ``eXIf``; XMP in
  iTXt ``XML:com.adobe.xmp``; the provenance also as tEXt ``Software`` and iTXt
  ``instacolor:provenance`` (JSON of :meth:`Provenance.to_dict`); DPI in ``pHYs``.
  IPTC-IIM is not written: PNG has no standard place for it (IPTC Core fields in
  the XMP are kept).
* **TIFF**: RGB 8 or 16 bit, Deflate with horizontal predictor; the sRGB profile
  (tag 34675), XMP (700), IPTC-IIM (33723), Software (305) = ``instacolor
  <version>``, X/YResolution in inches; from the EXIF, the IFD0 text tags (Make,
  Model, Artist, Copyright, DateTime, ImageDescription...) and the Exif and GPS
  sub-IFDs.
* **JPEG**: RGB 8 bit, quality 95, no chroma subsampling; the sRGB profile (APP2),
  EXIF with Software (APP1), XMP (APP1), IPTC-IIM as Photoshop resource 0x0404
  (APP13), DPI in the JFIF header. A source EXIF or XMP too large for one JPEG
  segment (64 KiB) is reduced to instacolor's own, with a ``UserWarning``.

The TIFF ImageDescription (270) is the source's own, if any: instacolor never replaces
an archive's caption with its own data; its record lives in XMP (see
:mod:`instacolor.io.archival.provenance`) in every format. The EXIF Software tag names
instacolor, since instacolor made the file.

Example:
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from instacolor.io.archival.write import write_colorized
    >>> from instacolor.io.archival.provenance import Provenance, read_provenance
    >>> record = Provenance(model="demo", weights_sha256="a" * 64, input_sha256="b" * 64)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "photo.png"
    >>> path = write_colorized(out, np.zeros((4, 6, 3), np.uint16), provenance=record)
    >>> read_provenance(path) == record
    True
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image

from instacolor.errors import InputError
from instacolor.io.archival.color import SRGB_PROFILE
from instacolor.io.archival.provenance import Provenance, provenance_xmp
from instacolor.io.archival.read import ScanImage
from instacolor.io.names import temp_name

__all__ = ["JPEG_MAX_SIDE", "OUTPUT_FORMATS", "write_colorized"]

#: Output format by file suffix.
OUTPUT_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Largest width or height libjpeg writes.
JPEG_MAX_SIDE = 65500
_FORMAT_NAMES = {"PNG": "PNG", "TIFF": "TIFF", "TIF": "TIFF", "JPEG": "JPEG", "JPG": "JPEG"}
_JPEG_MARKER_MAX = 65533  # payload bytes of one JPEG APPn segment
_XMP_JPEG_MAX = _JPEG_MARKER_MAX - 29  # less b"http://ns.adobe.com/xap/1.0/\0"
_TIFF_TEXT_TAGS = (269, 270, 271, 272, 285, 306, 315, 316, 33432)
_SUB_IFDS = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
_PNG_LEVEL = 6
_TIFF_BYTEORDER = "<"


def _output_format(path: Path, format: str | None) -> str:
    by_suffix = OUTPUT_FORMATS.get(path.suffix.lower())
    if format is None:
        if by_suffix is None:
            raise InputError(
                f"{path}: cannot tell the output format from the suffix {path.suffix!r}; expected "
                f"one of {sorted(OUTPUT_FORMATS)} or format='PNG', 'TIFF' or 'JPEG'"
            )
        return by_suffix
    name = _FORMAT_NAMES.get(str(format).upper())
    if name is None:
        raise InputError(f"format: expected 'PNG', 'TIFF' or 'JPEG', received {format!r}")
    if by_suffix is not None and by_suffix != name:
        raise InputError(
            f"format: {format!r} conflicts with the suffix of {path} ({by_suffix}); "
            "change the suffix or leave format=None"
        )
    return name


def _check_rgb(rgb) -> None:
    if not isinstance(rgb, np.ndarray):
        raise InputError(f"rgb: expected a numpy array, received {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise InputError(f"rgb: expected shape (H, W, 3), received {rgb.shape}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise InputError(f"rgb: expected dtype uint8 or uint16, received {rgb.dtype}")


def _to_depth(rgb: np.ndarray, depth: int) -> np.ndarray:
    """Exact 8 <-> 16 bit conversion: ``x * 257`` up, ``round(x * 255 / 65535)`` down."""
    if depth == 8 and rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if depth == 16 and rgb.dtype == np.uint8:
        return rgb.astype(np.uint16) * np.uint16(257)
    return np.ascontiguousarray(rgb)


def _check_source(path: Path, rgb: np.ndarray, provenance: Provenance, source) -> None:
    if source is None:
        return
    if not isinstance(source, ScanImage):
        raise InputError(f"source: expected a ScanImage or None, received {type(source).__name__}")
    same = path == source.path
    with contextlib.suppress(OSError):
        same = same or os.path.samefile(path, source.path)
    if same:
        raise InputError(
            f"{path}: refusing to write over the source scan; choose another output path "
            "(instacolor never modifies its inputs)"
        )
    if rgb.shape[:2] != source.size:
        raise InputError(
            f"rgb: expected the full-resolution image of the source, shape {(*source.size, 3)}, "
            f"received {rgb.shape}"
        )
    if provenance.input_sha256 != source.sha256:
        raise InputError(
            f"provenance.input_sha256 ({provenance.input_sha256[:12]}...) is not the source's "
            f"sha256 ({source.sha256[:12]}...); build the Provenance from this ScanImage"
        )


def _exif_with_software(exif: bytes | None, tool: str) -> Image.Exif:
    record = Image.Exif()
    if exif:
        record.load(exif)
    record[ExifTags.Base.Software] = tool
    record[ExifTags.Base.Orientation] = 1
    return record


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_itxt(keyword: str, text: bytes) -> bytes:
    return _png_chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text)


def _write_png(fh: BinaryIO, rgb, exif: Image.Exif, xmp, iptc, dpi, provenance) -> None:
    import imagecodecs  # on first use: import instacolor stays light

    stream = memoryview(imagecodecs.png_encode(rgb, level=_PNG_LEVEL))
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    chunks = [_png_chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(SRGB_PROFILE))]
    if dpi is not None:
        per_metre = [round(d / 0.0254) for d in dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    chunks.append(_png_chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\0\0")))
    software = provenance.creator_tool.encode("latin-1", "replace")
    chunks.append(_png_chunk(b"tEXt", b"Software\0" + software))
    chunks.append(_png_itxt("XML:com.adobe.xmp", xmp))
    record = json.dumps(provenance.to_dict(), sort_keys=True).encode("utf-8")
    chunks.append(_png_itxt("instacolor:provenance", record))
    fh.write(stream[:ihdr_end])
    fh.write(b"".join(chunks))
    fh.write(stream[ihdr_end:])


def _append_sub_ifds(fh: BinaryIO, exif: Image.Exif) -> None:
    """Write the Exif/GPS sub-IFDs at the end of the TIFF and point IFD0 at them.

    tifffile writes image IFDs only and will not write tags 34665/34853, so IFD0 gets a
    LONG placeholder under the neighbouring code (34664/34852: no other IFD0 tag lies
    between, so the entries stay sorted). Each sub-IFD is serialised by Pillow for its
    final file offset and appended; then the placeholder entry gets the real code and
    the offset.
    """
    import tifffile

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        tags = tif.pages[0].tags
        entries = {
            code: (tags[code - 1].offset, tags[code - 1].valueoffset)
            for code in _SUB_IFDS
            if code - 1 in tags
        }
    for code, (entry, value_at) in entries.items():
        block = Image.Exif()
        block.endian = _TIFF_BYTEORDER
        for tag, value in exif.get_ifd(code).items():
            block[tag] = value
        end = fh.seek(0, os.SEEK_END)
        if end % 2:  # IFDs start on a word boundary
            end += fh.write(b"\0")
        fh.write(block.tobytes(end)[6 + 8 :])  # drop b"Exif\0\0" and the 8-byte header
        fh.seek(entry)
        fh.write(struct.pack(_TIFF_BYTEORDER + "H", code))
        fh.seek(value_at)
        fh.write(struct.pack(_TIFF_BYTEORDER + "I", end))


def _write_tiff(fh: BinaryIO, rgb, exif: Image.Exif, xmp, iptc, dpi, provenance) -> None:
    import tifffile

    extratags = [(700, 1, len(xmp), xmp, True)]
    if iptc:
        extratags.append((33723, 7, len(iptc), iptc, True))
    for tag in _TIFF_TEXT_TAGS:
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\0 "):
            extratags.append((tag, 2, 0, value.encode("utf-8"), True))
    subs = [code for code in _SUB_IFDS if exif.get_ifd(code)]
    extratags += [(code - 1, 4, 1, 0, True) for code in subs]  # see _append_sub_ifds
    tifffile.imwrite(
        fh,
        rgb,
        byteorder=_TIFF_BYTEORDER,
        bigtiff=False,
        photometric="rgb",
        compression="zlib",
        predictor=True,
        iccprofile=SRGB_PROFILE,
        software=provenance.creator_tool.encode("ascii", "replace"),
        resolution=dpi,
        resolutionunit="INCH" if dpi is not None else None,
        metadata=None,
        extratags=extratags,
    )
    if subs:
        _append_sub_ifds(fh, exif)


def _app13(iptc: bytes) -> bytes:
    """A JPEG APP13 segment holding IPTC-IIM as Photoshop image resource 0x0404."""
    resource = b"8BIM\x04\x04\0\0" + struct.pack(">I", len(iptc)) + iptc + b"\0" * (len(iptc) % 2)
    payload = b"Photoshop 3.0\0" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def _write_jpeg(fh: BinaryIO, rgb, exif: Image.Exif, xmp, iptc, dpi, provenance, quality) -> None:
    exif_bytes = exif.tobytes()
    if len(exif_bytes) > _JPEG_MARKER_MAX:
        warnings.warn(
            "the source EXIF is larger than one JPEG segment; only the Software and "
            "Orientation tags are written (use PNG or TIFF to keep it all)",
            UserWarning,
            stacklevel=4,
        )
        exif_bytes = _exif_with_software(None, provenance.creator_tool).tobytes()
    if len(xmp) > _XMP_JPEG_MAX:
        warnings.warn(
            "the source XMP is larger than one JPEG segment; only instacolor's provenance is "
            "written to XMP (use PNG or TIFF to keep it all)",
            UserWarning,
            stacklevel=4,
        )
        xmp = provenance_xmp(provenance)
    extra = b""
    if iptc and len(iptc) + 26 <= _JPEG_MARKER_MAX:
        extra = _app13(iptc)
    elif iptc:
        warnings.warn("the source IPTC data is too large for JPEG and is dropped", stacklevel=4)
    density = {"dpi": tuple(round(d) for d in dpi)} if dpi is not None else {}
    # Encode in memory: Pillow writes straight to a file descriptor when it has one and
    # does not notice a short write (disk full), which would leave a truncated file.
    encoded = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(
        encoded,
        format="JPEG",
        quality=quality,
        subsampling=0,
        icc_profile=SRGB_PROFILE,
        exif=exif_bytes,
        xmp=xmp,
        extra=extra,  # Pillow writes these bytes after its own APPn segments
        **density,
    )
    fh.write(encoded.getbuffer())


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` into a temporary file beside ``path``, fsync, and rename over ``path``."""
    temp = path.with_name(temp_name(path.name, secrets.token_hex(4)))  # fits any valid name
    handle = open(temp, "x+b")  # exclusive create, mode 0o666 less the umask  # noqa: SIM115
    try:
        with handle as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename durable too (POSIX)
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def write_colorized(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    provenance: Provenance,
    source: ScanImage | None = None,
    format: str | None = None,
    overwrite: bool = False,
    jpeg_quality: int = 95,
) -> Path:
    """Write a colorized image with sRGB ICC, the source's metadata and provenance, atomically.

    Args:
        path: output file; its suffix (``.png``, ``.tif``/``.tiff``, ``.jpg``/``.jpeg``)
            picks the format unless ``format`` is given.
        rgb: ``(H, W, 3)`` uint8 or uint16 sRGB at full resolution.
        provenance: the record written to XMP (and text chunk / Software tag).
        source: the scan it was made from. Its EXIF, XMP and IPTC are carried over,
            its bit depth (8 or 16) is written for PNG and TIFF, and the output may
            not be the source file. Without it, the depth of ``rgb`` is written.
        format: ``"PNG"``, ``"TIFF"`` or ``"JPEG"``; must agree with a known suffix.
        overwrite: replace an existing file at ``path`` (atomically). Off by default.
        jpeg_quality: JPEG quality, 1 to 100.

    Returns:
        The absolute path written.

    Raises:
        InputError: bad ``rgb``, format, options or folder; ``path`` is the source
            file, exists without ``overwrite``, or ``provenance`` does not match
            ``source``.
        OSError: the file could not be written (permissions, disk full); nothing is
            left behind and an existing file is unchanged.
    """
    dest = Path(path).absolute()
    fmt = _output_format(dest, format)
    _check_rgb(rgb)
    if not isinstance(provenance, Provenance):
        raise InputError(f"provenance: expected a Provenance, received {type(provenance).__name__}")
    _check_source(dest, rgb, provenance, source)
    if not dest.parent.is_dir():
        raise InputError(f"{dest.parent}: expected an existing folder for the output")
    if dest.is_dir() or (dest.exists() and not overwrite):
        raise InputError(
            f"{dest}: a file or folder exists there; pass overwrite=True to replace it"
        )
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int):
        raise InputError(f"jpeg_quality: expected an int from 1 to 100, received {jpeg_quality!r}")
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"jpeg_quality: expected an int from 1 to 100, received {jpeg_quality!r}")
    if fmt == "JPEG" and max(rgb.shape[:2]) > JPEG_MAX_SIDE:
        raise InputError(
            f"rgb: JPEG holds at most {JPEG_MAX_SIDE} pixels a side, received {rgb.shape[:2]}; "
            "write PNG or TIFF instead"
        )
    depth = 8 if fmt == "JPEG" else (source.bit_depth if source else rgb.dtype.itemsize * 8)
    pixels = _to_depth(rgb, depth)
    exif = _exif_with_software(source.exif if source else None, provenance.creator_tool)
    xmp = provenance_xmp(provenance, source.xmp if source else None)
    meta = (exif, xmp, source.iptc if source else None, source.dpi if source else None)
    if fmt == "PNG":
        _atomic_write(dest, lambda fh: _write_png(fh, pixels, *meta, provenance))
    elif fmt == "TIFF":
        _atomic_write(dest, lambda fh: _write_tiff(fh, pixels, *meta, provenance))
    else:
        _atomic_write(dest, lambda fh: _write_jpeg(fh, pixels, *meta, provenance, jpeg_quality))
    return dest
