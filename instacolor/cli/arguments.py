"""Argument types shared by the ``instacolor`` subcommands.

Each turns an option's text into its value or raises :class:`argparse.ArgumentTypeError`
saying what was expected and what was received (argparse then exits with status 2).
Kept apart from :mod:`instacolor.cli.main` so that subcommand modules can use them
without importing the command that imports them.

Example:
    >>> positive("3"), fraction("0.5"), pixels("none")
    (3, 0.5, None)
    >>> decoding("annealed-mean:0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: temperature: expected a number in (0, 10], received 0.0; ...
"""

from __future__ import annotations

import argparse

from instacolor.colorizer import MAX_SATURATION
from instacolor.errors import InputError
from instacolor.structures import Decoding

__all__ = ["DECODE_HELP", "decoding", "fraction", "pixels", "positive", "saturation"]

#: The help text of ``--decode``.
DECODE_HELP = (
    "how the chroma is decoded: regression, annealed-mean, annealed-mean:T or "
    "annealed-mean:T:MIX (T the temperature, 0.38 vivid, 1 the mean; MIX the annealed "
    "mean's weight blended with the regression, 0-1); left out: the weights' default "
    "(annealed-mean needs a trained classification head, see 'instacolor models')"
)


def positive(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, received {text}")
    return value


def saturation(text: str) -> float:
    """A chroma factor from 0 to ``MAX_SATURATION``."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_SATURATION:
        raise argparse.ArgumentTypeError(
            f"expected a number from 0 to {MAX_SATURATION:g}, received {text}; 1 keeps the "
            "colours as predicted"
        )
    return value


def decoding(text: str) -> str:
    """A decoding spec (:meth:`~instacolor.structures.Decoding.parse`), checked and kept as
    text: the parts it leaves out are the weights' defaults, known once they are loaded."""
    try:
        Decoding.parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("decode: ")) from None
    return text.strip()


def pixels(text: str) -> int | None:
    """A pixel limit >= 1, or ``0``/``none`` for no limit."""
    if text.lower() in ("0", "none"):
        return None
    return positive(text)
