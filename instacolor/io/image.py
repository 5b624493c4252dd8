"""The API's edge: any input -> full-resolution L, and RGB -> the kind of the input.

Accepted inputs (:func:`read_luminance`):

* a path (``str`` or ``os.PathLike``) to a JPEG, PNG or TIFF file: read by the
  archival reader :func:`~instacolor.io.archival.read_scan`, the same code as the CLI
  (ICC profile -> sRGB, 16-bit precision, EXIF/TIFF orientation applied, the first
  page of a multi-page TIFF, at most :data:`~instacolor.io.archival.DEFAULT_MAX_PIXELS`
  pixels); other formats raise :class:`~instacolor.errors.DecodeError`;
* ``numpy.ndarray`` of dtype uint8, uint16 or float (``[0, 1]``), shaped ``(H, W)``,
  ``(H, W, 1)`` or ``(H, W, 3)`` (taken as sRGB);
* ``PIL.Image.Image`` in modes ``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``I;16*``,
  ``I`` and ``F`` (alpha is dropped; no ICC conversion or orientation: the pixels as
  they are).

**Colour test**, the same rule for every input and for the CLI
(:func:`~instacolor.io.archival.is_color`): an image whose colour channels agree within
``color_tolerance`` (default :data:`DEFAULT_COLOR_TOLERANCE` = 2/255 of full scale) at
every pixel is gray; any other image is toned (sepia, cyanotype, a tinted scan) when
its tone deviation is at most ``color_threshold`` (Lab units) and in colour above it.
The API passes ``color_threshold=None`` (the default here), which counts toned images
as colour: it colorizes gray images and raises :class:`~instacolor.errors.InputError`
for the others; raise ``color_tolerance`` (1.0 accepts any image) to colorize their
luminance. The CLI passes :data:`~instacolor.io.archival.DEFAULT_COLOR_THRESHOLD` = 10:
it colorizes gray and toned scans and skips colour ones unless ``--force``.

:func:`to_output` turns the colorized sRGB back into the kind the caller gave: numpy
of the same dtype (3 channels), or a PIL ``RGB`` image (also for paths and 16-bit PIL
images, since Pillow has no 16-bit RGB mode).

Example:
    >>> import numpy as np
    >>> light, kind = read_luminance(np.full((4, 6), 128, np.uint8))
    >>> light.shape, round(float(light[0, 0]), 2), kind.container, kind.dtype
    ((4, 6), 53.59, 'numpy', dtype('uint8'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from instacolor.errors import InputError
from instacolor.io.archival.color import (
    DEFAULT_COLOR_TOLERANCE,
    check_color_options,
    is_color,
    light_and_preview,
    tone_deviation,
)
from instacolor.io.archival.read import read_scan

__all__ = ["DEFAULT_COLOR_TOLERANCE", "ImageKind", "read_luminance", "to_output"]


@dataclass(frozen=True)
class ImageKind:
    """What the caller passed, so the output can be given back in the same kind.

    Attributes:
        container: ``"numpy"``, ``"pil"`` or ``"path"``.
        dtype: numpy dtype of the output array (uint8, uint16 or float32).
    """

    container: str
    dtype: np.dtype


def _from_pil(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if mode == "I":
        arr = np.asarray(image)
        if arr.min() < 0 or arr.max() > 65535:
            raise InputError(
                f"PIL mode 'I': expected values in [0, 65535], received [{arr.min()}, {arr.max()}]"
            )
        return arr.astype(np.uint16)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    if mode in ("P", "PA", "LA", "RGBA", "RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(image.convert("RGB"))
    raise InputError(f"PIL image mode {mode!r} is not supported; convert it to 'L' or 'RGB'")


def _validate(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_ or np.iscomplexobj(arr) or arr.dtype.kind not in "uif":
        raise InputError(
            f"image: expected dtype uint8, uint16 or float in [0, 1], received {arr.dtype}"
        )
    if arr.dtype.kind in "ui" and arr.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"image: expected dtype uint8 or uint16 for integer images, received {arr.dtype}; "
            "scale it to one of those or to float in [0, 1]"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(
            f"image: expected shape (H, W), (H, W, 1) or (H, W, 3), received {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"image: expected at least 1x1 pixels, received shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError("image: contains NaN or infinite values; expected finite [0, 1]")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"image: expected float values in [0, 1], received [{lo:.4g}, {hi:.4g}]; "
                "divide by the white level first"
            )
    return arr


def _refuse_color(name: str, spread: float, deviation: float) -> InputError:
    return InputError(
        f"{name}: expected a grayscale image, received a colour or toned image (channels "
        f"differ by up to {spread * 255:.0f}/255, tone deviation {deviation:.1f} Lab). Convert "
        "it to gray first, or raise color_tolerance (1.0 accepts any image) to colorize its "
        "luminance"
    )


def read_luminance(
    image: Any,
    *,
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
    color_threshold: float | None = None,
) -> tuple[np.ndarray, ImageKind]:
    """CIE L at full resolution and the kind of the input.

    Args:
        image: numpy array, PIL image or path (see the module docstring).
        color_tolerance: largest channel difference, as a fraction of full scale, for
            an image to count as gray.
        color_threshold: tone deviation (Lab units) above which an image that is not
            gray is refused as colour; None (the API's setting) refuses every image
            that is not gray. See the module docstring.

    Returns:
        ``(L, kind)``: L ``(H, W)`` float32 in ``[0, 100]``, in display orientation for
        files, and the input's kind.

    Raises:
        InputError: unsupported type, dtype, shape or values, a colour (or, with
            ``color_threshold=None``, toned) image, or a path that is not a file.
        DecodeError: a file that is not a readable JPEG, PNG or TIFF image.
    """
    check_color_options(color_tolerance, color_threshold)
    if isinstance(image, str | os.PathLike):
        scan = read_scan(image, color_tolerance=color_tolerance, color_threshold=color_threshold)
        if scan.is_color:
            raise _refuse_color(str(scan.path), scan.channel_spread, scan.tone_deviation)
        dtype = np.dtype(np.uint8 if scan.bit_depth == 8 else np.uint16)
        return scan.light, ImageKind(container="path", dtype=dtype)
    if isinstance(image, Image.Image):
        arr, container = _from_pil(image), "pil"
    elif isinstance(image, np.ndarray):
        arr, container = image, "numpy"
    else:
        raise InputError(
            f"image: expected a numpy array, a PIL image or a path, received {type(image).__name__}"
        )
    arr = _validate(arr)
    out_dtype = arr.dtype if arr.dtype in (np.uint8, np.uint16) else np.dtype(np.float32)
    kind = ImageKind(container=container, dtype=np.dtype(out_dtype))
    light, preview, spread = light_and_preview(arr, None)
    if spread > color_tolerance:
        deviation = tone_deviation(torch.from_numpy(preview).permute(2, 0, 1))
        if is_color(
            spread, deviation, color_tolerance=color_tolerance, color_threshold=color_threshold
        ):
            raise _refuse_color("image", spread, deviation)
    return light, kind


def to_output(rgb: np.ndarray, kind: ImageKind) -> Any:
    """Give the ``(H, W, 3)`` result (already in ``kind.dtype``) back in the input's kind."""
    if kind.container == "numpy":
        return rgb
    if rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb)
