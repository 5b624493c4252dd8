"""Archival input: JPEG, PNG and TIFF scans -> :class:`ScanImage` (full-precision L + metadata).

:func:`read_scan` reads one page, :func:`read_scan_pages` every page of a multi-page
TIFF. It is the one file reader of instacolor: ``colorize(path)`` (through
:func:`instacolor.io.image.read_luminance`) and the CLI both read files with it. The
input file is opened read-only and never changed. What the reader does:

* **Formats**: JPEG, PNG and TIFF, 1 to 16 bits a sample (float TIFF in ``[0, 1]``
  too), gray, RGB or palette, with or without alpha. Alpha is dropped (the colour
  samples are used as stored, not composited). 16-bit samples keep 16-bit
  precision through to ``ScanImage.light``.
* **Orientation**: the EXIF/TIFF orientation (1..8) is applied to ``light`` (and
  ``dpi``), and the EXIF block kept in ``ScanImage.exif`` says orientation 1.
* **ICC profiles** are converted to sRGB (LittleCMS, float output, so 16 bits stay
  16 bits) before L is taken; see :mod:`instacolor.io.archival.color`. PNG gAMA/cHRM
  chunks are ignored.
* **Toned gray and colour**: RGB pixels give CIE L (D65) whatever their chroma, so a
  sepia-toned print or an RGB scan of a gray photograph gives its own L. The colour
  verdict ``is_color`` is the one rule of :func:`~instacolor.io.archival.color.is_color`:
  gray when the colour channels of every pixel agree within ``color_tolerance``
  (default 2/255 of full scale), otherwise colour when ``tone_deviation`` (the 98th
  percentile of the distance, in Lab units, of a pixel's (a, b) from the image's tone
  curve, on a 256-pixel preview) is over ``color_threshold`` (default
  :data:`DEFAULT_COLOR_THRESHOLD` = 10), toned (not colour) at or below it;
  ``color_threshold=None`` counts toned images as colour (the API's setting). The
  threshold 10 was chosen on synthetic sepia, cyanotype and white-balance-tinted
  gray images, with scanner noise and JPEG compression (the statistic stayed at or
  below 9.1), and colour photographs (scikit-image samples and two COCO photos: at
  least 12.3). Colour photographs faded to half saturation scored 7 to 16, so some
  count as gray; a gray scan whose colour channels are misregistered by 2 pixels or
  more can count as colour.
* **Limits and errors**: an image over ``max_pixels`` (default 200 megapixels) is
  refused before it is decoded; empty, truncated, corrupt, non-image or unsupported
  files raise :class:`~instacolor.errors.DecodeError` saying what was expected.

Example:
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from instacolor.io.archival import read_scan
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.png"
    >>> Image.fromarray(np.full((4, 6), 128, np.uint8)).save(path)
    >>> scan = read_scan(path)
    >>> scan.light.shape, scan.light.dtype, scan.bit_depth, scan.is_color
    ((4, 6), dtype('float32'), 8, False)
    >>> round(float(scan.light[0, 0]), 2), scan.format, scan.page_count
    (53.59, 'PNG', 1)
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from instacolor.errors import DecodeError, InputError, InstacolorError
from instacolor.io.archival.color import (
    COLOR_QUANTILE,
    DEFAULT_COLOR_THRESHOLD,
    DEFAULT_COLOR_TOLERANCE,
    SRGB_PROFILE,
    check_color_options,
    is_color,
    light_and_preview,
    orient,
    tone_deviation,
    usable_profile,
)
from instacolor.io.archival.decode import FORMATS, decode_page, page_count, sniff_format
from instacolor.io.regular import file_kind

__all__ = [
    "COLOR_QUANTILE",
    "DEFAULT_COLOR_THRESHOLD",
    "DEFAULT_COLOR_TOLERANCE",
    "DEFAULT_MAX_PIXELS",
    "SRGB_PROFILE",
    "ScanImage",
    "read_scan",
    "read_scan_pages",
    "tone_deviation",
]

#: Largest ``width * height`` decoded by default (a decompression-bomb guard).
DEFAULT_MAX_PIXELS = 200_000_000
_HASH_CHUNK = 1 << 20
_LIBRARY_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    RuntimeError,
    KeyError,
    IndexError,
    struct.error,
    zlib.error,
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, eq=False, repr=False)
class ScanImage:
    """One page of an archival scan: its L plane at full precision and its metadata.

    Attributes:
        light: ``(H, W)`` float32 CIE L in ``[0, 100]`` (D65, of the sRGB-converted
            image), in display orientation (EXIF orientation applied).
        bit_depth: 8 or 16: the precision of the source samples (1 to 8 bit and
            palette sources give 8; 9 to 16 bit and float give 16). Writers keep it.
        is_color: the image is already in colour by the colour test (see the module
            docstring): ``channel_spread > color_tolerance`` and, unless the reader's
            ``color_threshold`` was None, ``tone_deviation > color_threshold``.
        tone_deviation: the colour statistic of :func:`tone_deviation` (0 for gray).
        format: ``"JPEG"``, ``"PNG"`` or ``"TIFF"``.
        page: index of this page among the file's full-resolution pages.
        page_count: number of such pages (1 for JPEG and PNG).
        path: absolute path of the source file.
        sha256: hex SHA-256 of the whole source file.
        has_alpha: whether the source had an alpha channel (dropped).
        icc_profile: the source's embedded ICC profile, unchanged, or None.
        exif: EXIF block (``b"Exif\\0\\0"`` + TIFF structure) with the descriptive
            IFD0 tags and the Exif and GPS sub-IFDs, orientation set to 1, or None.
            MakerNote is dropped (its internal offsets do not survive a rewrite).
        xmp: the source's XMP packet as stored, or None.
        iptc: the source's IPTC-IIM data (JPEG APP13, TIFF tag 33723), or None.
        dpi: ``(x, y)`` pixels per inch in display orientation, or None.
        channel_spread: the largest difference between the colour channels of any
            pixel, as a fraction of full scale, after ICC conversion (0 for gray).
    """

    light: np.ndarray
    bit_depth: int
    is_color: bool
    tone_deviation: float
    format: str
    page: int
    page_count: int
    path: Path
    sha256: str
    has_alpha: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    dpi: tuple[float, float] | None = None
    channel_spread: float = 0.0

    def __post_init__(self) -> None:
        light = self.light
        if not isinstance(light, np.ndarray) or light.ndim != 2 or light.dtype != np.float32:
            got = (getattr(light, "shape", None), getattr(light, "dtype", type(light).__name__))
            raise InputError(f"light: expected an (H, W) float32 array, received {got}")
        if self.bit_depth not in (8, 16):
            raise InputError(f"bit_depth: expected 8 or 16, received {self.bit_depth!r}")
        if self.format not in FORMATS:
            raise InputError(f"format: expected one of {FORMATS}, received {self.format!r}")
        if not 0 <= self.page < self.page_count:
            raise InputError(
                f"page: expected 0 <= page < page_count={self.page_count}, received {self.page}"
            )
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise InputError(f"sha256: expected 64 lowercase hex digits, received {self.sha256!r}")

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of ``light``."""
        return int(self.light.shape[0]), int(self.light.shape[1])

    def __repr__(self) -> str:
        return (
            f"ScanImage(path='{self.path}', page={self.page}/{self.page_count}, "
            f"format={self.format}, size={self.size}, bit_depth={self.bit_depth}, "
            f"is_color={self.is_color}, tone_deviation={self.tone_deviation:.2f})"
        )


def _guess_format(fh: BinaryIO) -> str | None:
    """Pillow's name for a format we do not accept, only to word the error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fh.seek(0)
            return Image.open(fh).format
    except Exception:  # any failure just means "unknown"
        return None


@contextmanager
def _opened(path: str | os.PathLike) -> Iterator[tuple[Path, BinaryIO, str, str]]:
    """Open read-only, hash, and identify: yields ``(path, fh, sha256, format)``."""
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"path: expected a str or os.PathLike, received {type(path).__name__}")
    file = Path(path).absolute()
    if not file.is_file():
        try:  # what is there instead (never opened)
            kind = file_kind(file.stat().st_mode)
        except OSError:
            what = "it does not exist"
        else:
            what = "it is a folder" if kind == "a folder" else f"it is not a regular file: {kind}"
        raise InputError(
            f"{file}: expected an existing image file; there is no file at this path ({what}): "
            "check the path"
        )
    with file.open("rb") as fh:
        digest, size = hashlib.sha256(), 0
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if size == 0:
            raise DecodeError(
                f"{file}: the file is empty (0 bytes); expected a JPEG, PNG or TIFF image. "
                "The copy or scan was probably interrupted: copy or scan it again"
            )
        fh.seek(0)
        head = fh.read(16)
        fmt = sniff_format(head)
        if fmt is None:
            seen = _guess_format(fh)
            looks = f"a {seen} image" if seen else f"data starting with {head[:8]!r}"
            raise DecodeError(
                f"{file}: expected a JPEG, PNG or TIFF image, received {looks}. "
                "Convert it to PNG or TIFF, or check that the path points to an image"
            )
        yield file, fh, digest.hexdigest(), fmt


def _wrap_decode_errors(call, file: Path, fmt: str):
    try:
        return call()
    except InstacolorError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise DecodeError(
            f"{file}: this {fmt} file could not be decoded ({type(exc).__name__}: {exc}). "
            f"Expected a complete, undamaged {fmt} file; it is probably truncated or corrupt: "
            "copy, export or scan it again (the file itself was not changed)"
        ) from exc


def _check_options(max_pixels, color_tolerance, color_threshold) -> None:
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise InputError(f"max_pixels: expected an int >= 1 or None, received {max_pixels!r}")
    check_color_options(color_tolerance, color_threshold)


def _scan(fh, fmt, page, count, file, sha, max_pixels, color) -> ScanImage:
    """Decode and measure one page; ``color`` is ``(color_tolerance, color_threshold)``."""
    raw = _wrap_decode_errors(lambda: decode_page(fh, fmt, page, max_pixels, str(file)), file, fmt)
    profile = usable_profile(raw.pixels, raw.icc_profile, str(file))
    light, preview, spread = light_and_preview(raw.pixels, profile)
    deviation = 0.0
    if preview is not None:
        deviation = tone_deviation(torch.from_numpy(preview).permute(2, 0, 1))
    light = np.ascontiguousarray(orient(light, raw.orientation))
    dpi = raw.dpi
    if dpi is not None and raw.orientation >= 5:  # a quarter turn swaps the axes
        dpi = (dpi[1], dpi[0])
    return ScanImage(
        light=light,
        bit_depth=raw.bit_depth,
        is_color=is_color(spread, deviation, color_tolerance=color[0], color_threshold=color[1]),
        tone_deviation=deviation,
        format=fmt,
        page=page,
        page_count=count,
        path=file,
        sha256=sha,
        has_alpha=raw.has_alpha,
        icc_profile=raw.icc_profile,
        exif=raw.exif,
        xmp=raw.xmp,
        iptc=raw.iptc,
        dpi=dpi,
        channel_spread=spread,
    )


def read_scan(
    path: str | os.PathLike,
    *,
    page: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
    color_threshold: float | None = DEFAULT_COLOR_THRESHOLD,
) -> ScanImage:
    """Read one page of a JPEG, PNG or TIFF scan (see the module docstring).

    Args:
        path: the image file; it is only read.
        page: page index for multi-page TIFF (full-resolution pages only; 0 otherwise).
        max_pixels: largest ``width * height`` to decode; None disables the guard.
        color_tolerance: channel spread (fraction of full scale) up to which the image
            is gray, whatever its ``tone_deviation``.
        color_threshold: ``tone_deviation`` above which an image that is not gray is
            in colour (``is_color``); None: every image that is not gray. Callers
            skip colour images by default and offer a ``force`` option to recolour.

    Returns:
        The page's :class:`ScanImage`.

    Raises:
        InputError: ``path`` is not an existing file, or bad ``page`` or options.
        DecodeError: empty, truncated, corrupt, non-image or unsupported file, or one
            larger than ``max_pixels``.
    """
    _check_options(max_pixels, color_tolerance, color_threshold)
    if isinstance(page, bool) or not isinstance(page, int):
        raise InputError(f"page: expected an int, received {page!r}")
    with _opened(path) as (file, fh, sha, fmt):
        count = _wrap_decode_errors(lambda: page_count(fh, fmt), file, fmt)
        if not 0 <= page < count:
            raise InputError(
                f"page: expected 0 to {count - 1} for {file} ({count} page(s)), received {page}"
            )
        color = (color_tolerance, color_threshold)
        return _scan(fh, fmt, page, count, file, sha, max_pixels, color)


def read_scan_pages(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
    color_threshold: float | None = DEFAULT_COLOR_THRESHOLD,
) -> Iterator[ScanImage]:
    """Every full-resolution page of a scan, one :class:`ScanImage` at a time.

    A JPEG or PNG yields one page. Pages are decoded lazily, so memory holds one page
    at a time. Bad options raise at once; file errors (see :func:`read_scan`) when
    iteration reaches them, the first ones (missing, empty or non-image file) on the
    first ``next()``. The file stays open until the iterator is exhausted or closed.
    """
    _check_options(max_pixels, color_tolerance, color_threshold)
    return _iter_pages(path, max_pixels, (color_tolerance, color_threshold))


def _iter_pages(path, max_pixels, color) -> Iterator[ScanImage]:
    with _opened(path) as (file, fh, sha, fmt):
        count = _wrap_decode_errors(lambda: page_count(fh, fmt), file, fmt)
        for index in range(count):
            yield _scan(fh, fmt, index, count, file, sha, max_pixels, color)
