"""Colour hints: what the caller knows about the colours of an image.

* :class:`Lab` - a chroma ``(a, b)`` in CIE Lab units (D65), the colour of a hint;
* :class:`HintPoint` - one point ``(x, y)`` in input pixels with its colour and radius;
* :class:`Hints` - the points and per-instance colours of one image.

Colours are given as an sRGB triple of integers 0-255, a hex string (``"#c03020"``,
``"c03020"``, ``"#c32"``) or :class:`Lab`; only the chroma counts (the luminance is
always the photograph's own). :func:`as_lab` does the conversion.

Example:
    >>> hints = Hints(points=[(10, 20, "#c03020"), (30, 5, Lab(0.0, 40.0), 2)])
    >>> len(hints), hints.points[1].radius
    (2, 2.0)
    >>> hints.points[0].color  # doctest: +ELLIPSIS
    Lab(a=55.8..., b=43.7...)
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from instacolor.color import AB_NORM, rgb_to_lab
from instacolor.errors import InputError

__all__ = ["HintPoint", "Hints", "Lab", "as_lab"]

_COLOR_HELP = (
    "give an sRGB triple of integers 0-255 such as (192, 48, 32), a hex string such as "
    "'#c03020', or Lab(a, b) with a and b in [-110, 110]"
)


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Lab:
    """A chroma in CIE Lab (D65): ``a`` (green -> red) and ``b`` (blue -> yellow).

    Attributes:
        a: float in ``[-110, 110]`` (the networks' range).
        b: float in ``[-110, 110]``.
    """

    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            v = getattr(self, name)
            if not _real(v) or not math.isfinite(v) or abs(v) > AB_NORM:
                raise InputError(
                    f"Lab.{name}: expected a finite number in [-{AB_NORM:g}, {AB_NORM:g}], "
                    f"received {v!r}; {_COLOR_HELP}"
                )
            object.__setattr__(self, name, float(v))


def _srgb_to_lab(rgb: Sequence[int]) -> Lab:
    t = torch.tensor([c / 255.0 for c in rgb], dtype=torch.float64).view(3, 1, 1)
    _, a, b = rgb_to_lab(t).flatten().tolist()
    return Lab(a, b)


def as_lab(color: Any, name: str = "color") -> Lab:
    """The chroma of ``color`` (sRGB uint8 triple, hex string or :class:`Lab`).

    Args:
        color: ``Lab``; a sequence of three integers 0-255 (sRGB); or a hex string
            ``"#rrggbb"``, ``"rrggbb"`` or ``"#rgb"``.
        name: how the error message names the argument.

    Returns:
        :class:`Lab` (the sRGB colour's a and b; its L is not used).

    Raises:
        InputError: anything else, with what was expected.

    Example:
        >>> as_lab((128, 128, 128))  # a neutral gray has no chroma
        Lab(a=0.0, b=0.0)
    """
    if isinstance(color, Lab):
        return color
    if isinstance(color, str):
        text = color.strip().removeprefix("#")
        if len(text) == 3:
            text = "".join(c * 2 for c in text)
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise InputError(
                f"{name}: expected a hex colour '#rrggbb' or '#rgb', received {color!r}; "
                f"{_COLOR_HELP}"
            )
        rgb = [int(text[i : i + 2], 16) for i in (0, 2, 4)]
        return _neutral(_srgb_to_lab(rgb), rgb)
    if isinstance(color, Sequence) or hasattr(color, "__array__"):
        items = list(color) if not hasattr(color, "tolist") else color.tolist()
        if (
            len(items) == 3
            and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in items)
            and all(0 <= c <= 255 for c in items)
        ):
            return _neutral(_srgb_to_lab([int(c) for c in items]), items)
    raise InputError(f"{name}: expected a colour, received {color!r}; {_COLOR_HELP}")


def _neutral(lab: Lab, rgb: Sequence[int]) -> Lab:
    """An exactly neutral sRGB gray has chroma 0 (not the 1e-15 of the conversion)."""
    return Lab(0.0, 0.0) if len(set(rgb)) == 1 else lab


@dataclass(frozen=True)
class HintPoint:
    """One colour hint.

    Attributes:
        x: column in input pixels (``0 <= x < W``; fractions allowed).
        y: row in input pixels (``0 <= y < H``).
        color: its chroma.
        radius: half side of the square it covers, in input pixels (0: the one pixel
            or working-grid cell holding ``(x, y)``).
    """

    x: float
    y: float
    color: Lab
    radius: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "radius"):
            v = getattr(self, name)
            if not _real(v) or not math.isfinite(v) or (name == "radius" and v < 0):
                expected = "a number >= 0" if name == "radius" else "a finite number"
                raise InputError(f"hint {name}: expected {expected} (input pixels), received {v!r}")
            object.__setattr__(self, name, float(v))
        object.__setattr__(self, "color", as_lab(self.color, "hint color"))


def _point(value: Any, index: int) -> HintPoint:
    if isinstance(value, HintPoint):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"x", "y", "color", "radius"}
        if unknown or not {"x", "y", "color"} <= set(value):
            raise InputError(
                f"hints point {index}: expected keys x, y, color (and optionally radius), "
                f"received {sorted(value)}"
            )
        return HintPoint(value["x"], value["y"], value["color"], value.get("radius", 0.0))
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (3, 4):
        try:
            return HintPoint(*value)
        except InputError as err:
            raise InputError(f"hints point {index}: {err}") from None
    raise InputError(
        f"hints point {index}: expected (x, y, color) or (x, y, color, radius), received "
        f"{value!r}; x, y in input pixels, color as sRGB (r, g, b), '#rrggbb' or Lab(a, b)"
    )


@dataclass(frozen=True)
class Hints:
    """The colour hints of one image.

    Attributes:
        points: :class:`HintPoint` values (given as ``HintPoint``, ``(x, y, color)``,
            ``(x, y, color, radius)`` or ``{"x", "y", "color", "radius"}``).
        instance_colors: ``{instance index: colour}``: the instance's mask (or the
            middle of its box when it has no mask) takes that colour.
    """

    points: tuple[HintPoint, ...] = ()
    instance_colors: Mapping[int, Lab] = field(default_factory=dict)

    def __post_init__(self) -> None:
        points = self.points
        if isinstance(points, (str, Mapping)) or not isinstance(points, Sequence):
            raise InputError(
                f"hints points: expected a list of (x, y, color) points, received "
                f"{type(points).__name__}"
            )
        object.__setattr__(self, "points", tuple(_point(p, i) for i, p in enumerate(points)))
        colors = self.instance_colors
        if not isinstance(colors, Mapping):
            raise InputError(
                f"instance_colors: expected a mapping {{instance index: colour}}, received "
                f"{type(colors).__name__}"
            )
        parsed = {}
        for key, color in colors.items():
            if not isinstance(key, numbers.Integral) or isinstance(key, bool) or key < 0:
                raise InputError(
                    f"instance_colors: expected instance indices (int >= 0) as keys, received "
                    f"{key!r}"
                )
            parsed[int(key)] = as_lab(color, f"instance_colors[{key}]")
        object.__setattr__(self, "instance_colors", MappingProxyType(dict(sorted(parsed.items()))))

    def __len__(self) -> int:
        """Number of hints: points plus coloured instances."""
        return len(self.points) + len(self.instance_colors)

    def to_json(self) -> dict:
        """A JSON-ready dict (colours as Lab ``[a, b]``); :meth:`sha256` hashes it."""
        return {
            "points": [
                {"x": p.x, "y": p.y, "lab": [p.color.a, p.color.b], "radius": p.radius}
                for p in self.points
            ],
            "instance_colors": {str(i): [c.a, c.b] for i, c in self.instance_colors.items()},
        }

    def sha256(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_json` (for manifests)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
