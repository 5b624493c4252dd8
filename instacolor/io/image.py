"""In-memory image coercion at the API's edge: input -> full-resolution L, RGB -> output kind.

Accepted inputs (:func:`read_luminance`):

* ``numpy.ndarray`` of dtype uint8, uint16 or float (``[0, 1]``), shaped ``(H, W)``,
  ``(H, W, 1)`` or ``(H, W, 3)``; a 3-channel array must hold gray (channels equal
  within ``color_tolerance``), or a :class:`~instacolor.errors.InputError` says so;
* ``PIL.Image.Image`` in modes ``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``I;16*``,
  ``I`` and ``F`` (alpha is dropped);
* a path (``str`` or ``os.PathLike``) to any file Pillow reads.

:func:`to_output` turns the colorized sRGB back into the kind the caller gave: numpy
of the same dtype (3 channels), or a PIL ``RGB`` image (also for paths and 16-bit PIL
images, since Pillow has no 16-bit RGB mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from instacolor.color import gray_to_l, rgb_to_l
from instacolor.errors import DecodeError, InputError

__all__ = ["DEFAULT_COLOR_TOLERANCE", "ImageKind", "read_luminance", "to_output"]

#: Largest channel difference (fraction of full scale) still taken as gray: 2/255.
DEFAULT_COLOR_TOLERANCE = 2.0 / 255.0


@dataclass(frozen=True)
class ImageKind:
    """What the caller passed, so the output can be given back in the same kind.

    Attributes:
        container: ``"numpy"``, ``"pil"`` or ``"path"``.
        dtype: numpy dtype of the output array (uint8, uint16 or float32).
    """

    container: str
    dtype: np.dtype


@lru_cache(maxsize=2)
def _l_table(levels: int) -> np.ndarray:
    values = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    return gray_to_l(values).to(torch.float32).numpy()


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


def _open_path(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"image path {str(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            return _from_pil(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DecodeError(
            f"{path}: could not be decoded as an image ({type(exc).__name__}: {exc}); "
            "expected a readable PNG, TIFF, JPEG or other Pillow-supported file"
        ) from exc


def _scale(arr: np.ndarray) -> float:
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype == np.uint16:
        return 65535.0
    return 1.0


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


def read_luminance(
    image: Any, *, color_tolerance: float = DEFAULT_COLOR_TOLERANCE
) -> tuple[np.ndarray, ImageKind]:
    """CIE L at full resolution and the kind of the input.

    Args:
        image: numpy array, PIL image or path (see the module docstring).
        color_tolerance: largest channel difference, as a fraction of full scale, for a
            3-channel image to count as gray.

    Returns:
        ``(L, kind)``: L ``(H, W)`` float32 in ``[0, 100]``, and the input's kind.

    Raises:
        InputError: unsupported type, dtype, shape or values, or a color image.
        DecodeError: a path that Pillow cannot decode.
    """
    if isinstance(image, str | os.PathLike):
        arr, container = _open_path(Path(image)), "path"
    elif isinstance(image, Image.Image):
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
    scale = _scale(arr)
    if arr.ndim == 3:
        spread = (arr.max(axis=2).astype(np.float64) - arr.min(axis=2)) / scale
        worst = float(spread.max())
        if worst > color_tolerance:
            share = float((spread > color_tolerance).mean())
            raise InputError(
                f"image: expected a grayscale image, received a color image (channels differ "
                f"by up to {worst * 255:.0f}/255 in {share:.1%} of pixels). Convert it to "
                "gray first, or raise color_tolerance to colorize its luminance"
            )
        rgb = torch.from_numpy(arr.astype(np.float32) / np.float32(scale)).permute(2, 0, 1)
        return rgb_to_l(rgb)[0].numpy(), kind
    if arr.dtype in (np.uint8, np.uint16):
        return _l_table(int(scale) + 1)[arr], kind
    return gray_to_l(torch.from_numpy(arr.astype(np.float32))).numpy(), kind


def to_output(rgb: np.ndarray, kind: ImageKind) -> Any:
    """Give the ``(H, W, 3)`` result (already in ``kind.dtype``) back in the input's kind."""
    if kind.container == "numpy":
        return rgb
    if rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb)
