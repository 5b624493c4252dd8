"""The colour references of one input: ``NAME.reference.jpg`` sidecars and hints files.

An input of a batch takes colours from (in this order, a path given twice used once):

1. the batch's own references (``instacolor colorize --reference PATH``);
2. its **reference sidecars**: the files ``NAME.reference.EXT`` beside it (``NAME`` the
   input's name without its suffix, exactly; ``EXT`` one of :data:`REFERENCE_SUFFIXES`
   in any case), all of them, in name order;
3. the ``"reference"`` field of its hints object (its line of the ``--hints`` JSON-lines
   file, else its ``NAME.hints.json`` sidecar): a path or a list of paths.

**The path rule of a hints file**: a reference it names is a relative path, resolved
against the folder of the hints file, and must stay inside that folder once resolved
(``..`` and symbolic links included). An absolute path, a path that leads out of the
folder, an empty or non-text path are refused (:class:`~instacolor.errors.InputError`,
that input fails): a hints file that travels with a folder of scans can make instacolor
read only files of that folder. For a photo elsewhere, use ``--reference``.

A folder walk never takes a reference sidecar (:func:`is_reference_sidecar`) or a file a
hints file names as a reference as an input photo (:func:`named_references`).

Example:
    >>> is_reference_sidecar("street 1962.reference.JPG"), is_reference_sidecar("a.jpg")
    (True, False)
    >>> references_in({"reference": "colour/car.jpg"}, "/scans/a.hints.json", "hints")
    [PosixPath('/scans/colour/car.jpg')]
    >>> references_in({"reference": "../car.jpg"}, "/scans/a.hints.json", "hints")
    Traceback (most recent call last):
    ...
    instacolor.errors.InputError: hints /scans/a.hints.json: reference '../car.jpg' is a path ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from instacolor.errors import InputError
from instacolor.hints.files import (
    HintsObject,
    hints_object_for,
    read_hints_object,
    references_in,
    sidecar_path,
)

__all__ = [
    "REFERENCE_SUFFIXES",
    "input_references",
    "is_reference_sidecar",
    "named_references",
    "own_references",
    "reference_sidecars",
    "references_in",
    "sidecar_stem",
]

#: Suffixes of a reference sidecar ``NAME.reference.EXT`` (any case).
REFERENCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_MARK = ".reference"


def sidecar_stem(name: str) -> str | None:
    """``NAME`` of a reference sidecar's file name ``NAME.reference.EXT``, else None."""
    lower = name.lower()
    for suffix in REFERENCE_SUFFIXES:
        if lower.endswith(_MARK + suffix) and len(name) > len(_MARK + suffix):
            return name[: -len(_MARK + suffix)]
    return None


def is_reference_sidecar(name: str) -> bool:
    """Whether a file name is a reference sidecar's (``NAME.reference.EXT``)."""
    return sidecar_stem(name) is not None


def reference_sidecars(source: str | Path, listing: Iterable[str] | None = None) -> list[Path]:
    """The reference sidecars of ``source``, in name order.

    Args:
        source: an input photo.
        listing: the names in ``source``'s folder (default: listed now).

    Returns:
        ``NAME.reference.EXT`` paths beside ``source`` (empty when its folder cannot be
        listed).
    """
    source = Path(source)
    if listing is None:
        try:
            listing = os.listdir(source.parent)
        except OSError:
            return []
    return [source.with_name(n) for n in sorted(listing) if sidecar_stem(n) == source.stem]


def named_references(
    sources: Iterable[Path], lines: Mapping[str, Any] | None, lines_path: str | Path | None
) -> set[Path]:
    """Every file the hints of a batch name as a reference, resolved; invalid ones left
    out (the input they belong to fails when it is colorized).

    Args:
        sources: the batch's inputs (their ``NAME.hints.json`` sidecars are read).
        lines: the ``--hints`` JSON-lines table (:func:`~instacolor.hints.read_hints_lines`).
        lines_path: the path of that file.
    """
    found: set[Path] = set()
    for data in (lines or {}).values():
        with contextlib.suppress(InputError):
            found.update(references_in(data, lines_path or ".", "hints"))
    seen: set[Path] = set()
    for source in sources:
        try:
            sidecar = sidecar_path(source)
            if sidecar in seen or not sidecar.is_file():
                continue
            seen.add(sidecar)
            found.update(read_hints_object(sidecar).references)
        except (OSError, InputError):  # a bad sidecar fails its input later
            continue
    return found


def input_references(
    source: str | Path,
    lines: Mapping[str, Any] | None = None,
    lines_path: str | Path | None = None,
    listing: Iterable[str] | None = None,
) -> list[tuple[Path, str]]:
    """The references of one input besides the batch's own, with where each was named.

    Args:
        source: the input photo.
        lines: the ``--hints`` JSON-lines table (:func:`~instacolor.hints.read_hints_lines`),
            or None.
        lines_path: the path of that file (its folder resolves relative references).
        listing: the names in ``source``'s folder (default: listed now).

    Returns:
        ``(path, origin)`` pairs: its reference sidecars (``"sidecar"``, in name order),
        then the paths of its hints object's ``"reference"`` field (``"hints"``): its
        line of ``lines``, else its ``NAME.hints.json`` sidecar.

    Raises:
        InputError: its hints sidecar cannot be read as JSON, or its ``"reference"``
            field is not valid (see :func:`references_in`).
    """
    found = hints_object_for(source, lines, lines_path)
    return own_references(source, found, listing)


def own_references(
    source: str | Path, hints: HintsObject | None, listing: Iterable[str] | None = None
) -> list[tuple[Path, str]]:
    """:func:`input_references` from the input's hints object, read already.

    Args:
        source: the input photo.
        hints: its hints object (:func:`~instacolor.hints.files.hints_object_for`), or None.
        listing: the names in ``source``'s folder (default: listed now).

    Raises:
        InputError: the hints object's ``"reference"`` field is not valid.
    """
    out = [(p, "sidecar") for p in reference_sidecars(Path(source), listing)]
    return out + [(p, "hints") for p in (() if hints is None else hints.references)]
