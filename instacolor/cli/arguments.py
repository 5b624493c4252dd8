"""Argument types shared by the ``instacolor`` subcommands.

Each turns an option's text into its value or raises :class:`argparse.ArgumentTypeError`
saying what was expected and what was received (argparse then exits with status 2).
Kept apart from :mod:`instacolor.cli.main` so that subcommand modules can use them
without importing the command that imports them.

Example:
    >>> positive("3"), fraction("0.5"), pixels("none")
    (3, 0.5, None)
    >>> temperature("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a number in (0, 10], received '0'
"""

from __future__ import annotations

import argparse

from instacolor.api import MAX_SATURATION

__all__ = ["fraction", "mix", "pixels", "positive", "saturation", "temperature"]


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


def temperature(text: str) -> float:
    """An annealed-mean temperature in (0, 10]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 10], received {text!r}")
    return value


def mix(text: str) -> float:
    """The annealed mean's share from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"expected a number from 0 to 1, received {text!r}; 1 is the annealed mean alone, "
            "0 the regression"
        )
    return value


def pixels(text: str) -> int | None:
    """A pixel limit >= 1, or ``0``/``none`` for no limit."""
    if text.lower() in ("0", "none"):
        return None
    return positive(text)
