"""Files and helpers shared by the archival I/O tests: real images written with Pillow,
tifffile and imagecodecs, and reference L values computed independently."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import torch
from PIL import ExifTags, Image

from instacolor.color import gray_to_l, l_to_gray, rgb_to_l
from instacolor.io.archival import (
    Provenance,
    ScanImage,
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


def _tiff16(tmp_path: Path) -> Path:
    """A 16-bit gray TIFF with EXIF (orientation 6, Exif IFD), XMP, IPTC and 300x600 dpi."""
    exif = _exif(orientation=6)
    exif[700] = TITLE_XMP
    exif[33723] = IPTC
    path = tmp_path / "scan16.tif"
    Image.fromarray(_ramp16()).save(path, exif=exif.tobytes(), dpi=(300, 600))
    return path


def _profile(name: str, **kwargs) -> bytes:
    return imagecodecs.cms_profile(name, **kwargs)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


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
