"""Colour reference photos: reading them and checking that they hold colour.

A reference is given as a path (JPEG, PNG, TIFF; EXIF orientation applied), an
``(H, W, 3)`` array (uint8, uint16 or float in ``[0, 1]``), a PIL image, or a non-empty
list of them; :func:`read_references` reads each into a :class:`Reference` (float32 sRGB,
at most 1024 px a side) and refuses what has no colour to take (a gray or toned photo).
Matching them against a gray photo is :mod:`~instacolor.hints.reference`'s work, which
imports this module (never the other way).

Example:
    >>> import numpy as np
    >>> rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    >>> refs = read_references([rgb])
    >>> refs[0].rgb.shape, refs[0].source
    ((48, 64, 3), 'array')
    >>> read_references(np.full((48, 64, 3), 128, np.uint8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    instacolor.errors.InputError: reference 0: expected a colour photograph, received a gray...
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from instacolor.errors import DecodeError, InputError
from instacolor.io.archival import DEFAULT_COLOR_THRESHOLD, tone_deviation

__all__ = ["Reference", "read_references", "references_sha256", "squash"]

#: Largest reference side kept for matching (a larger photo is shrunk when read).
_READ_SIDE = 1024
#: Side of the preview the colour test looks at.
_PREVIEW_SIDE = 128


@dataclass(frozen=True)
class Reference:
    """A colour reference photo, checked and shrunk for matching.

    Its matching descriptors are computed once per working size and kept with it, so a
    batch that gives every input the same reference (``--reference``, or one
    :class:`Reference` passed to many calls) encodes it once.

    Attributes:
        rgb: ``(H, W, 3)`` float32 sRGB in ``[0, 1]``, at most 1024 px a side.
        source: the path, or ``"array"`` / ``"PIL"``.
    """

    rgb: np.ndarray
    source: str
    _cells: dict = field(default_factory=dict, init=False, repr=False, compare=False)


def squash(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` resized to ``(side, side, 3)`` (bilinear, antialiased)."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    out = F.interpolate(t, (side, side), mode="bilinear", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _rgb_of(item: Any, index: int) -> tuple[np.ndarray, str]:
    """``(H, W, 3)`` float32 sRGB of one reference item."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"
            raise InputError(f"reference {index}: expected an image file, {path} {what}")
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)
                image.thumbnail((_READ_SIDE, _READ_SIDE))
                rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DecodeError(
                f"reference {index}: expected a readable JPEG, PNG or TIFF image, could not "
                f"decode {path} ({exc})"
            ) from exc
        return rgb, str(path)
    if isinstance(item, Image.Image):
        image = item.copy()
        image.thumbnail((_READ_SIDE, _READ_SIDE))
        return np.asarray(image.convert("RGB"), np.float32) / 255.0, "PIL"
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or min(item.shape[:2]) < 1:
            raise InputError(
                f"reference {index}: expected an (H, W, 3) colour array, received shape "
                f"{item.shape}"
            )
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(item.dtype)
        if scale is None and item.dtype.kind != "f":
            raise InputError(
                f"reference {index}: expected dtype uint8, uint16 or float in [0, 1], "
                f"received {item.dtype}"
            )
        if scale is not None:  # integers: in [0, 1] once scaled
            return np.divide(item, np.float32(scale), dtype=np.float32), "array"
        rgb = item.astype(np.float32)
        if not (np.isfinite(rgb).all() and rgb.min() >= 0.0 and rgb.max() <= 1.0):
            raise InputError(f"reference {index}: expected finite float values in [0, 1]")
        return rgb, "array"
    raise InputError(
        f"reference: expected a path, a numpy array, a PIL image or a list of them, "
        f"received {type(item).__name__}"
    )


def _check_colour(rgb: np.ndarray, index: int) -> None:
    """Refuse a gray or toned reference: there is no colour to take from it."""
    preview = torch.from_numpy(squash(rgb, _PREVIEW_SIDE)).permute(2, 0, 1)
    deviation = tone_deviation(preview)
    if deviation < DEFAULT_COLOR_THRESHOLD:
        raise InputError(
            f"reference {index}: expected a colour photograph, received a gray or toned "
            f"image (tone deviation {deviation:.1f} Lab, at least "
            f"{DEFAULT_COLOR_THRESHOLD:g} needed): there is no colour to take from it"
        )


def read_references(reference: Any) -> tuple[Reference, ...] | None:
    """Check and read the colour reference(s) given to a colorizer.

    Args:
        reference: None, a path, an ``(H, W, 3)`` array (uint8, uint16 or float in
            ``[0, 1]``), a PIL image, a :class:`Reference` (kept as it is), or a
            non-empty list / tuple of them.

    Returns:
        The references (None for None).

    Raises:
        InputError: an empty list, a wrong type or shape, a missing file, or a gray or
            toned reference (its :func:`~instacolor.io.archival.tone_deviation` under
            :data:`~instacolor.io.archival.DEFAULT_COLOR_THRESHOLD`): no colour to take.
        DecodeError: a file that cannot be decoded as an image.
    """
    if reference is None:
        return None
    items = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    if not items:
        raise InputError("reference: expected at least one colour photograph, received none")
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Reference):  # read and checked already
            out.append(item)
            continue
        rgb, source = _rgb_of(item, index)
        _check_colour(rgb, index)
        out.append(Reference(rgb=rgb, source=source))
    return tuple(out)


def references_sha256(references: tuple[Reference, ...]) -> str:
    """sha256 of the references' pixels as read (shape and float32 sRGB, in order).

    Records and provenance name the references by it (the same photo from a path, an
    array or a PIL image gives the same digest).
    """
    digest = hashlib.sha256()
    for ref in references:
        digest.update(np.asarray(ref.rgb.shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(ref.rgb, np.float32).tobytes())
    return digest.hexdigest()
