"""The one-call API: :func:`colorize` and :func:`colorize_full`.

Both run a :class:`~instacolor.colorizer.Colorizer`: one given (``colorizer=``, every
load-time option) or one cached per ``(weights, device, detector, backend)``.

Example:
    >>> import numpy as np
    >>> from instacolor import Colorizer, colorize
    >>> gray = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) % 256).astype(np.uint8)
    >>> colorizer = Colorizer(working_size=64)  # doctest: +SKIP
    >>> colorize(gray, colorizer=colorizer, instances=[[4, 4, 40, 30]]).shape  # doctest: +SKIP
    (48, 64, 3)
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from instacolor.colorizer import Colorizer
from instacolor.errors import InputError
from instacolor.structures import ColorizeResult, Decoding

__all__ = ["Colorizer", "colorize", "colorize_full"]


@lru_cache(maxsize=2)
def _cached_colorizer(weights, device: str, detector: str | None, backend: str) -> Colorizer:
    """One colorizer per networks; saturation and decoding are per call."""
    return Colorizer(weights, device=device, detector=detector, backend=backend)


def _colorizer_for(
    colorizer: Colorizer | None, weights: Any, device: Any, detector: Any, backend: str
) -> Colorizer:
    if colorizer is None:
        return _cached_colorizer(weights, str(device), detector, backend)
    if not isinstance(colorizer, Colorizer):
        raise InputError(
            f"colorizer: expected a Colorizer or None, received {type(colorizer).__name__}"
        )
    given = {
        name: value
        for name, value, default in (
            ("weights", weights, "default"),
            ("device", device, "cpu"),
            ("detector", detector, None),
            ("backend", backend, "torch"),
        )
        if value != default
    }
    if given:
        raise InputError(
            f"colorizer: expected either a Colorizer or the options that build one, received "
            f"both (colorizer and {', '.join(sorted(given))}); build the Colorizer with them"
        )
    return colorizer


def colorize_full(
    image: Any,
    *,
    colorizer: Colorizer | None = None,
    weights: str | os.PathLike = "default",
    device: str = "cpu",
    detector: str | None = None,
    backend: str = "torch",
    instances: Any = None,
    semantic: Any = None,
    saturation: float | None = None,
    decode: Decoding | str | None = None,
    hints: Any = None,
    reference: Any = None,
) -> ColorizeResult:
    """Colorize one grayscale image; everything the colorization produced.

    The arguments are :func:`colorize`'s; the return value is
    :meth:`Colorizer.colorize_full`'s :class:`~instacolor.structures.ColorizeResult`.
    """
    chosen = _colorizer_for(colorizer, weights, device, detector, backend)
    return chosen.colorize_full(
        image, instances=instances, semantic=semantic, saturation=saturation, decode=decode,
        hints=hints, reference=reference,
    )  # fmt: skip


def colorize(
    image: Any,
    *,
    colorizer: Colorizer | None = None,
    weights: str | os.PathLike = "default",
    device: str = "cpu",
    detector: str | None = None,
    backend: str = "torch",
    instances: Any = None,
    semantic: Any = None,
    saturation: float | None = None,
    decode: Decoding | str | None = None,
    hints: Any = None,
    reference: Any = None,
) -> Any:
    """Colorize one grayscale image with a cached or a given :class:`Colorizer`.

    Args:
        image: numpy array (uint8, uint16 or float in [0, 1]; gray or RGB holding gray),
            PIL image, or path.
        colorizer: the :class:`Colorizer` to run (it holds every load-time option:
            working size, detector thresholds, hint settings...); None: one built from
            ``weights``, ``device``, ``detector`` and ``backend``, loaded on first use and
            kept for the next call (the two most recent combinations).
        weights, device, detector, backend: as for :class:`Colorizer` (only without
            ``colorizer``). A ``detector`` (``"torchvision"``, ``"detectron2"``, ``"+sam"``
            refinement) finds the instances when none are given; its weights missing
            raise a ``WeightsError`` (``Colorizer(..., fallback_to_full_image=True)``
            continues without instances).
        instances, semantic, saturation, decode, hints, reference: per call, as for
            :meth:`Colorizer.colorize_full` (changing them reloads nothing).

    Returns:
        The colorized image in the input's kind (numpy of the same dtype with 3
        channels; PIL ``RGB`` for PIL and path inputs).

    Raises:
        InputError: a bad option, or ``colorizer`` given together with options that
            build one.

    Example:
        >>> import numpy as np
        >>> from instacolor import colorize
        >>> out = colorize(np.full((32, 48), 128, np.uint8))  # doctest: +SKIP
        >>> out.shape, out.dtype  # doctest: +SKIP
        ((32, 48, 3), dtype('uint8'))
    """
    return colorize_full(
        image, colorizer=colorizer, weights=weights, device=device, detector=detector,
        backend=backend, instances=instances, semantic=semantic, saturation=saturation,
        decode=decode, hints=hints, reference=reference,
    ).image  # fmt: skip
