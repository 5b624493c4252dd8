"""Colour stage of the archival reader: ICC -> sRGB, CIE L at full precision, colour test.

* **ICC profiles** are converted to sRGB with LittleCMS through
  ``imagecodecs.cms_transform``: relative colorimetric intent, the samples at their
  own bit depth in and 32-bit float sRGB out, so a 16-bit input keeps its precision
  (Pillow's ImageCms has no 16-bit RGB mode). Colours outside sRGB are not clipped
  before L is computed. A profile that maps a probe grid to within 1/1024 of sRGB is
  taken as sRGB and skipped; one that cannot be applied (corrupt, or made for other
  channels) is ignored with a ``UserWarning``.
* **L**: gray samples go through a lookup table, RGB through
  :func:`~instacolor.color.rgb_to_l`, in bands of rows so the float temporaries stay
  small. RGB pixels give their L whatever their chroma: a sepia-toned print or an
  RGB scan of a gray photograph gives its own L.
* **Colour test**: :func:`tone_deviation` on a preview of at most 256 pixels a side
  (block means): the 98th percentile of the Lab distance of a pixel's (a, b) from the
  image's tone curve, the median (a, b) of the pixels of about the same L. A gray or
  toned print (sepia, cyanotype, a tinted scan) follows one tone curve; a colour
  photograph has different hues at the same L. Threshold: see
  :data:`instacolor.io.archival.DEFAULT_COLOR_THRESHOLD`.

Example:
    >>> import numpy as np
    >>> from instacolor.io.archival.color import light_and_preview
    >>> light, preview = light_and_preview(np.full((4, 6, 3), 255, np.uint8), None)
    >>> light.shape, float(light.max()), preview.shape
    ((4, 6), 100.0, (4, 6, 3))
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import imagecodecs
import numpy as np
import torch
from PIL import ImageCms

from instacolor.color import gray_to_l, rgb_to_l, rgb_to_lab
from instacolor.errors import InputError

__all__ = [
    "COLOR_QUANTILE",
    "SRGB_PROFILE",
    "light_and_preview",
    "orient",
    "tone_deviation",
    "usable_profile",
]

#: Share of preview pixels whose deviation stays under the reported statistic.
COLOR_QUANTILE = 0.98
#: The sRGB profile everything is converted to and that outputs embed (LittleCMS's).
SRGB_PROFILE: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

_PREVIEW_SIZE = 256  # longest side of the preview the colour statistic is measured on
_TONE_BIN = 2.0  # L width of the bins of the tone curve
_BAND_PIXELS = 1 << 21  # pixels converted at a time (bounds the float temporaries)
_SRGB_TOLERANCE = 1.0 / 1024
_RELATIVE_COLORIMETRIC = 1


def tone_deviation(rgb: torch.Tensor, *, quantile: float = COLOR_QUANTILE) -> float:
    """How far an image's chroma strays from a single tone curve, in Lab units.

    The tone curve is the median (a, b) of the pixels in each 2-unit L bin, linearly
    interpolated in L. A gray, sepia, cyanotype or tinted print stays close to it
    (noise and JPEG artefacts only); a colour photograph has different hues at the
    same L. Meant for a small preview (a few hundred pixels a side).

    Args:
        rgb: ``(3, H, W)`` float sRGB in ``[0, 1]``.
        quantile: share of pixels whose distance stays under the returned value.

    Returns:
        The ``quantile`` of the per-pixel distance ``|(a, b) - curve(L)|``; 0 for an
        empty image.

    Example:
        >>> import torch
        >>> gray = torch.linspace(0, 1, 64).repeat(3, 64, 1)
        >>> round(tone_deviation(gray), 3)
        0.0
        >>> rainbow = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> tone_deviation(rainbow) > 10
        True
    """
    if not isinstance(rgb, torch.Tensor) or rgb.dim() != 3 or rgb.shape[0] != 3:
        shape = tuple(rgb.shape) if isinstance(rgb, torch.Tensor) else type(rgb).__name__
        raise InputError(f"tone_deviation: expected a (3, H, W) tensor, received {shape}")
    if rgb[0].numel() == 0:
        return 0.0
    lab = rgb_to_lab(rgb.double()).reshape(3, -1).numpy()
    light, ab = lab[0], lab[1:]
    bins = np.clip(np.floor(light / _TONE_BIN), 0, 100 / _TONE_BIN - 1).astype(np.int64)
    present = np.unique(bins)
    centers = (present + 0.5) * _TONE_BIN
    medians = np.stack([np.median(ab[:, bins == b], axis=1) for b in present], axis=1)
    curve = np.stack([np.interp(light, centers, medians[i]) for i in range(2)])
    return float(np.quantile(np.hypot(*(ab - curve)), quantile))


def _cms(pixels: np.ndarray, profile: bytes) -> np.ndarray:
    """``(h, w)`` gray or ``(h, w, 3)`` RGB under ``profile`` -> ``(h, w, 3)`` float32 sRGB."""
    return imagecodecs.cms_transform(
        np.ascontiguousarray(pixels),
        profile,
        SRGB_PROFILE,
        colorspace="gray" if pixels.ndim == 2 else "rgb",
        outcolorspace="rgb",
        outdtype=np.float32,
        intent=_RELATIVE_COLORIMETRIC,
    )


@lru_cache(maxsize=32)
def _matches_srgb(profile: bytes, gray: bool) -> bool:
    """Whether ``profile`` maps a probe grid to within ``_SRGB_TOLERANCE`` of sRGB."""
    ramp = np.linspace(0.0, 1.0, 9)
    if gray:
        probe = ramp.reshape(1, -1)
        expected = np.repeat(probe[..., None], 3, axis=-1)
    else:
        probe = np.stack(np.meshgrid(ramp, ramp, ramp, indexing="ij"), -1).reshape(1, -1, 3)
        expected = probe
    out = _cms(np.round(probe * 65535).astype(np.uint16), profile)
    return float(np.abs(out - expected).max()) <= _SRGB_TOLERANCE


def usable_profile(pixels: np.ndarray, profile: bytes | None, name: str) -> bytes | None:
    """The profile to convert ``pixels`` from, or None (none, sRGB already, or unusable).

    Args:
        pixels: ``(H, W)`` gray or ``(H, W, 3)`` RGB samples the profile describes.
        profile: embedded ICC profile bytes, or None.
        name: how the file is named in the warning about an unusable profile.
    """
    if profile is None:
        return None
    try:
        return None if _matches_srgb(profile, pixels.ndim == 2) else profile
    except RuntimeError as exc:  # imagecodecs.CmsError
        kind = "gray" if pixels.ndim == 2 else "RGB"
        warnings.warn(
            f"{name}: the embedded ICC profile cannot be applied to {kind} pixels ({exc}); "
            "the pixels are read as sRGB. Re-export the file with a valid profile to silence this",
            UserWarning,
            stacklevel=4,
        )
        return None


@lru_cache(maxsize=2)
def _gray_table(levels: int) -> np.ndarray:
    values = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    return gray_to_l(values).to(torch.float32).numpy()


def light_and_preview(
    pixels: np.ndarray, profile: bytes | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """CIE L at full resolution and a small sRGB preview for :func:`tone_deviation`.

    Args:
        pixels: ``(H, W)`` gray or ``(H, W, 3)`` RGB; uint8, uint16 or float32 in [0, 1].
        profile: ICC profile to convert from (see :func:`usable_profile`), or None for sRGB.

    Returns:
        ``(light, preview)``: L ``(H, W)`` float32 (not yet clipped to ``[0, 100]``) and
        the preview ``(h, w, 3)`` float32 in ``[0, 1]``, at most 256 a side; the preview
        is None for gray pixels without a profile (they have no chroma).
    """
    if pixels.ndim == 2 and profile is None:
        if pixels.dtype.kind == "u":
            return _gray_table(int(np.iinfo(pixels.dtype).max) + 1)[pixels], None
        return gray_to_l(torch.from_numpy(pixels)).numpy().astype(np.float32), None
    height, width = pixels.shape[:2]
    factor = min(max(1, -(-max(height, width) // _PREVIEW_SIZE)), height, width)
    rows = max(factor, _BAND_PIXELS // width // factor * factor)
    scale = np.float32(np.iinfo(pixels.dtype).max if pixels.dtype.kind == "u" else 1.0)
    cols = width // factor * factor
    light = np.empty((height, width), np.float32)
    preview = np.empty((height // factor, width // factor, 3), np.float32)
    for start in range(0, height, rows):
        band = pixels[start : start + rows]
        rgb = _cms(band, profile) if profile is not None else band.astype(np.float32) / scale
        light[start : start + rows] = rgb_to_l(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
        blocks = rgb.shape[0] // factor
        if blocks:
            cut = rgb[: blocks * factor, :cols]
            shaped = cut.reshape(blocks, factor, cols // factor, factor, 3)
            preview[start // factor : start // factor + blocks] = shaped.mean(axis=(1, 3))
    return light, np.clip(preview, 0.0, 1.0)


_ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: np.rot90(a, 1),
}


def orient(plane: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an ``(H, W)`` plane stored with EXIF ``orientation`` (1..8) upright (a view)."""
    return _ORIENTATIONS[orientation](plane)
