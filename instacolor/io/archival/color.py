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
* **Colour test** (:func:`is_color`, the one rule of every reader: files for the API
  and the CLI, and in-memory arrays and PIL images for the API), from two statistics:

  1. the *channel spread*: the largest difference between the colour channels of
     any pixel, as a fraction of full scale (of the sRGB samples after ICC
     conversion); an image whose spread is at most ``color_tolerance`` (default
     :data:`DEFAULT_COLOR_TOLERANCE` = 2/255) is **gray**;
  2. the *tone deviation* (:func:`tone_deviation`, on a preview of at most 256
     pixels a side, block means): the 98th percentile of the Lab distance of a
     pixel's (a, b) from the image's tone curve, the median (a, b) of the pixels of
     about the same L. A gray or toned print (sepia, cyanotype, a tinted scan)
     follows one tone curve; a colour photograph has different hues at the same L.

  Any other image is **in colour** when its tone deviation is over
  ``color_threshold`` (default :data:`DEFAULT_COLOR_THRESHOLD` = 10), else **toned**;
  ``color_threshold=None`` counts toned images as colour too. The CLI and the batch
  reader use the default threshold (they colorize gray and toned scans and skip
  colour ones unless ``--force``); the API uses ``None`` (it colorizes gray images
  and refuses toned and colour ones unless ``color_tolerance`` is raised, since a
  flat colour field has no tone deviation).

Example:
    >>> import numpy as np
    >>> from instacolor.io.archival.color import light_and_preview
    >>> light, preview, spread = light_and_preview(np.full((4, 6, 3), 255, np.uint8), None)
    >>> light.shape, float(light.max()), preview.shape, spread
    ((4, 6), 100.0, (4, 6, 3), 0.0)
"""

from __future__ import annotations

import numbers
import warnings
from functools import lru_cache

import numpy as np
import torch
from PIL import ImageCms

from instacolor.color import gray_to_l, rgb_to_l, rgb_to_lab
from instacolor.errors import InputError

__all__ = [
    "COLOR_QUANTILE",
    "DEFAULT_COLOR_THRESHOLD",
    "DEFAULT_COLOR_TOLERANCE",
    "SRGB_PROFILE",
    "is_color",
    "light_and_preview",
    "orient",
    "tone_deviation",
    "usable_profile",
]

#: Largest channel difference (fraction of full scale) of an image still taken as gray: 2/255.
DEFAULT_COLOR_TOLERANCE = 2.0 / 255.0
#: ``tone_deviation`` (Lab units) above which an image that is not gray counts as in colour.
#: Chosen on synthetic sepia, cyanotype and white-balance-tinted gray images, with
#: scanner noise and JPEG compression (the statistic stayed at or below 9.1), and colour
#: photographs (scikit-image samples and two COCO photos: at least 12.3).
DEFAULT_COLOR_THRESHOLD = 10.0
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
    present, counts = np.unique(bins, return_counts=True)
    centers = (present + 0.5) * _TONE_BIN
    # the pixels grouped by bin once (one integer sort), then each bin's median
    grouped = ab[:, np.argsort(bins, kind="stable")]
    ends = np.cumsum(counts)
    medians = np.stack(
        [np.median(grouped[:, e - n : e], axis=1) for e, n in zip(ends, counts)], axis=1
    )
    curve = np.stack([np.interp(light, centers, medians[i]) for i in range(2)])
    return float(np.quantile(np.hypot(*(ab - curve)), quantile))


def is_color(
    spread: float,
    deviation: float,
    *,
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
    color_threshold: float | None = DEFAULT_COLOR_THRESHOLD,
) -> bool:
    """The colour test of every reader (see the module docstring).

    Args:
        spread: largest channel difference of any pixel, fraction of full scale
            (the third value of :func:`light_and_preview`; 0 for gray samples).
        deviation: the image's :func:`tone_deviation` (Lab units).
        color_tolerance: ``spread`` up to which the image is gray.
        color_threshold: ``deviation`` above which an image that is not gray is in
            colour (below: toned); None counts every image that is not gray as colour.

    Returns:
        Whether the image counts as in colour.

    Example:
        >>> is_color(1 / 255, 30.0), is_color(0.2, 4.0), is_color(0.2, 12.0)
        (False, False, True)
        >>> is_color(0.2, 4.0, color_threshold=None)
        True
    """
    if spread <= color_tolerance:
        return False
    return color_threshold is None or deviation > color_threshold


def check_color_options(color_tolerance: object, color_threshold: object) -> None:
    """Raise :class:`~instacolor.errors.InputError` unless both options are usable."""
    if (
        isinstance(color_tolerance, bool)
        or not isinstance(color_tolerance, numbers.Real)
        or not color_tolerance >= 0
    ):
        raise InputError(
            f"color_tolerance: expected a number >= 0 (a fraction of full scale, default "
            f"2/255), received {color_tolerance!r}"
        )
    if color_threshold is not None and (
        isinstance(color_threshold, bool) or not isinstance(color_threshold, numbers.Real)
    ):
        raise InputError(
            f"color_threshold: expected a number (Lab units, default 10) or None, "
            f"received {color_threshold!r}"
        )


def _cms(pixels: np.ndarray, profile: bytes) -> np.ndarray:
    """``(h, w)`` gray or ``(h, w, 3)`` RGB under ``profile`` -> ``(h, w, 3)`` float32 sRGB."""
    import imagecodecs  # on first use: import instacolor stays light

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
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """CIE L at full resolution, a small sRGB preview and the channel spread.

    Args:
        pixels: ``(H, W)`` gray or ``(H, W, 3)`` RGB; uint8, uint16 or float in [0, 1].
        profile: ICC profile to convert from (see :func:`usable_profile`), or None for sRGB.

    Returns:
        ``(light, preview, spread)``: L ``(H, W)`` float32 in ``[0, 100]``; the preview
        ``(h, w, 3)`` float32 in ``[0, 1]``, at most 256 a side, for
        :func:`tone_deviation` (None for gray pixels without a profile: they have no
        chroma); and the largest difference between the colour channels of any pixel,
        as a fraction of full scale (0 for gray pixels), for :func:`is_color`.
    """
    if pixels.ndim == 2 and profile is None:
        if pixels.dtype.kind == "u":
            return _gray_table(int(np.iinfo(pixels.dtype).max) + 1)[pixels], None, 0.0
        light = gray_to_l(torch.from_numpy(pixels.astype(np.float32))).numpy()
        return np.clip(light, 0.0, 100.0).astype(np.float32, copy=False), None, 0.0
    height, width = pixels.shape[:2]
    factor = min(max(1, -(-max(height, width) // _PREVIEW_SIZE)), height, width)
    rows = max(factor, _BAND_PIXELS // width // factor * factor)
    scale = np.float32(np.iinfo(pixels.dtype).max if pixels.dtype.kind == "u" else 1.0)
    cols = width // factor * factor
    light = np.empty((height, width), np.float32)
    preview = np.empty((height // factor, width // factor, 3), np.float32)
    spread = 0.0
    for start in range(0, height, rows):
        band = pixels[start : start + rows]
        if profile is not None:
            rgb = _cms(band, profile)
            samples, full = rgb, 1.0
        else:
            rgb = band.astype(np.float32) / scale
            samples, full = band, float(scale)
        difference = samples.max(axis=2).astype(np.float64) - samples.min(axis=2)
        spread = max(spread, float(difference.max()) / full)
        light[start : start + rows] = rgb_to_l(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
        blocks = rgb.shape[0] // factor
        if blocks:
            cut = rgb[: blocks * factor, :cols]
            shaped = cut.reshape(blocks, factor, cols // factor, factor, 3)
            preview[start // factor : start // factor + blocks] = shaped.mean(axis=(1, 3))
    np.clip(light, 0.0, 100.0, out=light)
    return light, np.clip(preview, 0.0, 1.0), spread


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
