"""Format layer of the archival reader: JPEG, PNG and TIFF bytes -> pixels and metadata.

:mod:`instacolor.io.archival.read` builds on this; nothing here converts colour. Pillow
decodes JPEG and PNG up to 8 bits a sample and reads their metadata; ``imagecodecs``
(libpng) decodes 16-bit PNG, which Pillow would cut to 8 bits for RGB and gray+alpha;
``tifffile`` (with ``imagecodecs`` for LZW, JPEG, PackBits...) decodes every TIFF page
and reads its tags, and Pillow reads a TIFF page's EXIF block. The Pillow plugin
classes are used directly so that Pillow's global decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``) is not consulted: the caller's ``max_pixels`` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import ExifTags, Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

from instacolor.errors import DecodeError

if TYPE_CHECKING:
    import tifffile  # imported where a TIFF or 16-bit PNG is read: import instacolor stays light

__all__ = ["FORMATS", "RawPage", "decode_page", "open_pillow", "page_count", "sniff_format"]

#: Formats the archival reader accepts, by the name Pillow gives them.
FORMATS = ("JPEG", "PNG", "TIFF")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)
_PILLOW = {
    "PNG": PngImagePlugin.PngImageFile,
    "JPEG": JpegImagePlugin.JpegImageFile,
    "TIFF": TiffImagePlugin.TiffImageFile,
}
#: EXIF IFD0 tags that describe the photograph (not the pixel layout) and are carried.
_EXIF_KEEP = frozenset(
    {269, 270, 271, 272, 274, 285, 305, 306, 315, 316, 18246, 18249, 33432}
    | set(range(40091, 40096))  # Windows XPTitle ... XPSubject
)
#: Tags dropped from the Exif sub-IFD: offsets inside them do not survive relocation.
_EXIF_SUB_DROP = frozenset({0x927C, ExifTags.IFD.Interop})
_IPTC_RESOURCE = 0x0404  # Photoshop image resource holding IPTC-IIM in JPEG APP13
_PNG_IHDR_DEPTH = 24  # byte offset of the bit depth in a PNG (IHDR is always first)


@dataclass(frozen=True, eq=False)
class RawPage:
    """One decoded page before colour management, in stored (not display) orientation.

    Attributes:
        pixels: ``(H, W)`` gray or ``(H, W, 3)`` RGB; uint8, uint16, or float32 in
            ``[0, 1]``. Alpha is already removed.
        bit_depth: 8 or 16, the precision class of the source samples.
        has_alpha: whether the source had an alpha (extra) channel.
        orientation: EXIF/TIFF orientation 1..8 (1 when absent or invalid).
        icc_profile: embedded ICC profile bytes, or None.
        exif: EXIF block (``b"Exif\\0\\0"`` + TIFF structure), descriptive tags only and
            orientation set to 1; None when the file has none.
        xmp: XMP packet bytes, or None.
        iptc: IPTC-IIM bytes (JPEG APP13 resource 0x0404 or TIFF tag 33723), or None.
        dpi: ``(x, y)`` pixels per inch, or None.
    """

    pixels: np.ndarray
    bit_depth: int
    has_alpha: bool
    orientation: int
    icc_profile: bytes | None
    exif: bytes | None
    xmp: bytes | None
    iptc: bytes | None
    dpi: tuple[float, float] | None


def sniff_format(head: bytes) -> str | None:
    """``"JPEG"``, ``"PNG"`` or ``"TIFF"`` from the first bytes of a file, else None."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def open_pillow(fh: BinaryIO, fmt: str) -> Image.Image:
    """Open ``fh`` with the Pillow plugin for ``fmt``, reading headers only.

    The plugin class is called directly, so Pillow's global pixel limit is not
    applied; callers check the size against their own limit before decoding.
    """
    fh.seek(0)
    return _PILLOW[fmt](fh)


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if width < 1 or height < 1:
        raise DecodeError(f"{name}: expected at least 1x1 pixels, the header says {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise DecodeError(
            f"{name}: {width}x{height} = {width * height / 1e6:.1f} megapixels is more than "
            f"max_pixels={max_pixels:,} (a guard against decompression bombs). If the file is "
            f"a genuine scan, pass max_pixels={width * height:,} or more (None disables it)"
        )


def _rational(value) -> float:
    if isinstance(value, tuple):
        return float(value[0]) / float(value[1]) if len(value) == 2 and value[1] else 0.0
    return float(value)


def _clean_exif(exif: Image.Exif) -> bytes | None:
    """Descriptive IFD0 tags plus the Exif and GPS sub-IFDs, orientation set to 1."""
    out = Image.Exif()
    for tag, value in exif.items():
        if tag in _EXIF_KEEP:
            out[tag] = value
    for tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
        sub = {k: v for k, v in exif.get_ifd(tag).items() if k not in _EXIF_SUB_DROP}
        if sub:
            out[tag] = sub
    if not len(out):
        return None
    out[ExifTags.Base.Orientation] = 1
    return out.tobytes()


def _pillow_exif(im: Image.Image) -> tuple[bytes | None, int]:
    """Cleaned EXIF bytes and the orientation; unreadable EXIF counts as absent."""
    try:
        exif = im.getexif()
        orientation = int(exif.get(ExifTags.Base.Orientation, 1))
        return _clean_exif(exif), orientation if 1 <= orientation <= 8 else 1
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, IndexError):
        return None, 1


def _as_bytes(value) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value or None
    if isinstance(value, str):
        return value.encode("utf-8") or None
    return bytes(value) or None


def _pillow_pixels(im: Image.Image, name: str) -> tuple[np.ndarray, bool]:
    mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L")), False
    if mode in ("LA", "La"):
        return np.asarray(im)[:, :, 0], True
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGB")), has_alpha
    if mode in ("RGB", "RGBA", "RGBX", "RGBa", "YCbCr"):
        return np.asarray(im.convert("RGB") if mode == "YCbCr" else im)[:, :, :3], mode == "RGBA"
    raise DecodeError(
        f"{name}: pixel mode {mode!r} is not supported; expected gray, RGB or palette "
        "(with or without alpha). Convert the file to RGB or gray first"
    )


def _split_alpha(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(H, W[, C])`` with C in 1..4 -> gray or RGB without alpha."""
    if arr.ndim == 2:
        return arr, False
    channels = arr.shape[2]
    if channels in (1, 2):
        return arr[:, :, 0], channels == 2
    return arr[:, :, :3], channels == 4


def _decode_pillow(fh: BinaryIO, fmt: str, max_pixels, name: str) -> RawPage:
    fh.seek(0)
    head = fh.read(32)
    im = open_pillow(fh, fmt)
    _check_size(im.width, im.height, max_pixels, name)
    if fmt == "PNG" and len(head) > _PNG_IHDR_DEPTH and head[_PNG_IHDR_DEPTH] == 16:
        import imagecodecs

        fh.seek(0)
        pixels, has_alpha = _split_alpha(imagecodecs.png_decode(fh.read()))
        depth = 16
        # Pillow's PNG getexif() decodes the image when no eXIf came before IDAT: skip it
        exif, orientation = _pillow_exif(im) if "exif" in im.info else (None, 1)
    else:
        im.load()  # before getexif(), which would otherwise load and hide decode errors
        pixels, has_alpha = _pillow_pixels(im, name)
        depth = 8
        exif, orientation = _pillow_exif(im)
    iptc = im.info.get("photoshop", {}).get(_IPTC_RESOURCE) if fmt == "JPEG" else None
    dpi = im.info.get("dpi")
    return RawPage(
        pixels=pixels,
        bit_depth=depth,
        has_alpha=has_alpha,
        orientation=orientation,
        icc_profile=_as_bytes(im.info.get("icc_profile")),
        exif=exif,
        xmp=_as_bytes(im.info.get("xmp")),
        iptc=_as_bytes(iptc),
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and min(dpi) > 0 else None,
    )


def _image_pages(tif: tifffile.TiffFile) -> list[int]:
    """Indices (in the IFD chain) of full images: reduced-resolution and mask IFDs skipped."""
    return [i for i, p in enumerate(tif.pages) if not (p.is_reduced or p.is_mask)]


def page_count(fh: BinaryIO, fmt: str) -> int:
    """Number of pages: full-resolution images of a TIFF, 1 for JPEG and PNG."""
    if fmt != "TIFF":
        return 1
    import tifffile

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        return len(_image_pages(tif))


def _tiff_samples(page: tifffile.TiffPage, name: str) -> tuple[np.ndarray, int]:
    """Pixels ``(H, W[, S])`` rescaled to a full uint8/uint16 range, or float in [0, 1]."""
    arr = page.asarray()
    if page.axes == "SYX":
        arr = np.moveaxis(arr, 0, -1)
    elif page.axes not in ("YX", "YXS"):
        raise DecodeError(f"{name}: TIFF page layout {page.axes!r} is not supported")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255), 8
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        low, high = float(arr.min()), float(arr.max())
        if not np.isfinite(arr).all() or low < 0.0 or high > 1.0:
            raise DecodeError(
                f"{name}: floating point samples must lie in [0, 1], received [{low:.4g}, "
                f"{high:.4g}] (or NaN); rescale the file to [0, 1] or convert it to 16-bit"
            )
        return arr, 16
    if arr.dtype not in (np.uint8, np.uint16):
        raise DecodeError(
            f"{name}: {arr.dtype} samples are not supported; expected 1 to 16 bit unsigned "
            "integers or floats in [0, 1]. Convert the file to 16-bit"
        )
    bits = int(page.bitspersample)
    depth = 8 if bits <= 8 else 16
    stored, full = (1 << bits) - 1, (1 << depth) - 1
    if stored != full:  # e.g. 4-bit or 12-bit samples
        scaled = (arr.astype(np.uint32) * full + stored // 2) // stored
        arr = scaled.astype(np.uint8 if depth == 8 else np.uint16)
    return arr, depth


def _tiff_pixels(page: tifffile.TiffPage, name: str) -> tuple[np.ndarray, int, bool]:
    import tifffile

    photometric = tifffile.PHOTOMETRIC
    kind = page.photometric
    if kind == photometric.PALETTE:
        index = page.asarray()
        rgb = np.moveaxis(page.colormap, 0, -1)[index]  # uint16 colormap
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), 8, False
    arr, depth = _tiff_samples(page, name)
    if kind == photometric.MINISWHITE:
        arr = (1.0 - arr) if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max - arr
    if kind in (photometric.MINISBLACK, photometric.MINISWHITE):
        gray, has_alpha = _split_alpha(arr)
        return gray, depth, has_alpha
    rgb_like = kind == photometric.RGB or (
        kind == photometric.YCBCR and page.compression == tifffile.COMPRESSION.JPEG
    )
    if rgb_like and arr.ndim == 3 and arr.shape[2] >= 3:
        rgb, has_alpha = _split_alpha(arr)
        return rgb, depth, has_alpha
    raise DecodeError(
        f"{name}: TIFF photometric interpretation {kind.name if kind else kind} with "
        f"{page.samplesperpixel} samples is not supported; expected gray, RGB or palette. "
        "Convert the file to RGB or gray first"
    )


def _tiff_dpi(page: tifffile.TiffPage) -> tuple[float, float] | None:
    tags = page.tags
    if 282 not in tags or 283 not in tags:
        return None
    unit = tags.valueof(296, 2)
    factor = {2: 1.0, 3: 2.54}.get(int(unit))
    x, y = _rational(tags.valueof(282)), _rational(tags.valueof(283))
    if factor is None or x <= 0 or y <= 0:
        return None
    return x * factor, y * factor


def _decode_tiff(fh: BinaryIO, index: int, max_pixels, name: str) -> RawPage:
    import tifffile

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        pages = _image_pages(tif)
        ifd = pages[index]
        page = tif.pages[ifd]
        _check_size(int(page.imagewidth), int(page.imagelength), max_pixels, name)
        pixels, depth, has_alpha = _tiff_pixels(page, name)
        tags = page.tags
        orientation = int(tags.valueof(274, 1))
        meta = {code: _as_bytes(tags.valueof(code)) for code in (34675, 700, 33723)}
        dpi = _tiff_dpi(page)
    try:
        im = open_pillow(fh, "TIFF")
        im.seek(ifd)
        exif, _ = _pillow_exif(im)
    except (OSError, ValueError, SyntaxError, EOFError, KeyError, TypeError, IndexError):
        exif = None  # a layout Pillow cannot parse: the pixels came from tifffile anyway
    return RawPage(
        pixels=pixels,
        bit_depth=depth,
        has_alpha=has_alpha,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        icc_profile=meta[34675],
        exif=exif,
        xmp=meta[700],
        iptc=meta[33723],
        dpi=dpi,
    )


def decode_page(fh: BinaryIO, fmt: str, page: int, max_pixels: int | None, name: str) -> RawPage:
    """Decode page ``page`` (0 for JPEG/PNG) of an open file in format ``fmt``.

    Args:
        fh: binary file object positioned anywhere; it is only read.
        fmt: ``"JPEG"``, ``"PNG"`` or ``"TIFF"`` (see :func:`sniff_format`).
        page: page index in ``range(page_count(fh, fmt))``.
        max_pixels: largest ``width * height`` decoded, or None for no limit.
        name: how the file is named in error messages.

    Returns:
        The page's :class:`RawPage`.

    Raises:
        DecodeError: an unsupported layout or a size over ``max_pixels``; library
            errors (truncated or corrupt data) propagate for the caller to wrap.
    """
    if fmt == "TIFF":
        return _decode_tiff(fh, page, max_pixels, name)
    return _decode_pillow(fh, fmt, max_pixels, name)
