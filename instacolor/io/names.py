"""File names derived from other file names, kept within the file-system's limit.

A batch writes files whose names are built from an input's name: the output's hidden
temporary file (``.NAME.1a2b3c4d.tmp``), the confidence map (``STEM.confidence.png``),
later pages of a TIFF (``STEM.page2.tif``). An input name may be up to :data:`NAME_MAX`
bytes long (255 on Linux, macOS and Windows file systems), so a name built from it can
be too long to create. :func:`fit_name` keeps such a name as it is when it fits, and
otherwise shortens the part taken from the input (cut at a character boundary) and adds
``~`` and 12 hex digits of its sha256, so that two long names stay distinct and the
same name always gives the same result.

Example:
    >>> fit_name("scan", ".confidence.png")
    'scan.confidence.png'
    >>> long = fit_name("a" * 251, ".confidence.png")
    >>> len(long.encode()), long.endswith(".confidence.png"), "~" in long
    (255, True, True)
"""

from __future__ import annotations

import hashlib
import os

from instacolor.errors import InputError

__all__ = ["NAME_MAX", "fit_name", "temp_name", "temp_owner"]

#: The longest file name, in bytes, that the file systems instacolor writes to accept.
NAME_MAX = 255
_DIGEST = 12


def _size(text: str) -> int:
    return len(os.fsencode(text))


def fit_name(name: str, suffix: str = "", *, prefix: str = "", limit: int = NAME_MAX) -> str:
    """``prefix + name + suffix``, with ``name`` shortened if the whole is over ``limit`` bytes.

    Args:
        name: the part taken from another file's name (may be shortened).
        suffix: kept as it is (``".confidence.png"``).
        prefix: kept as it is (``"."`` for a hidden file).
        limit: the longest name in bytes (as the file system encodes it).

    Returns:
        The name, at most ``limit`` bytes long.

    Raises:
        InputError: ``prefix`` and ``suffix`` alone leave no room for a name.
    """
    whole = f"{prefix}{name}{suffix}"
    if _size(whole) <= limit:
        return whole
    room = limit - _size(prefix) - _size(suffix) - 1 - _DIGEST
    if room < 1:
        raise InputError(
            f"file name: expected a prefix and suffix shorter than {limit - _DIGEST - 2} "
            f"bytes, received {_size(prefix) + _size(suffix)}"
        )
    kept, used = [], 0
    for char in name:  # whole characters only: the result is still valid text
        size = _size(char)
        if used + size > room:
            break
        kept.append(char)
        used += size
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:_DIGEST]
    return f"{prefix}{''.join(kept)}~{digest}{suffix}"


def temp_name(name: str, token: str) -> str:
    """The hidden temporary file written before ``name``: ``.NAME.TOKEN.tmp`` (fitted).

    Args:
        name: the final file's name.
        token: 8 hex digits, different for every write.
    """
    return fit_name(name, f".{token}.tmp", prefix=".")


def temp_owner(name: str) -> str:
    """The part of :func:`temp_name` between ``.`` and ``.TOKEN.tmp`` for the file ``name``.

    A stale temporary file belongs to ``name`` when it matches
    ``.{temp_owner(name)}.<8 hex>.tmp``.
    """
    return temp_name(name, "0" * 8)[1:-13]
