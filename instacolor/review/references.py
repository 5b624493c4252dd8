"""A reference photo picked in the review app for one image.

The reviewer may pick any PNG, TIFF or JPEG file of the image's own input folder (and
its subfolders, two levels down) as a colour reference: :func:`candidates` lists them
(regular files only, no symbolic links, no hidden names, the input itself left out, at
most :data:`MAX_CANDIDATES`), and :func:`picked` accepts only a name of that list, so a
request can name no other file. The preview takes its colours from it; "apply" hands it
to the batch worker as the ``"reference"`` field of the image's hints line (the per-input
references of :mod:`instacolor.hints.sidecars`, relative to the input's folder), so the
manifest record lists it with its sha256 like any per-input reference. The app writes
nothing beside the inputs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from instacolor.errors import DecodeError, InputError
from instacolor.hints.reference import Reference, read_references
from instacolor.hints.sidecars import REFERENCE_SUFFIXES, references_in

__all__ = ["MAX_CANDIDATES", "candidates", "picked"]

#: Most names offered for one image.
MAX_CANDIDATES = 300
_DEPTH = 2


def _folder(item) -> tuple[Path, Path]:
    """``(resolved input, its folder)`` of an item, checked against the batch's folders."""
    item.checked()
    source = Path(item.input).resolve()
    return source, source.parent


def candidates(item) -> list[str]:
    """The names (``/``-separated, relative to the input's folder) a reviewer may pick.

    Raises:
        UntrustedPath: the item's input lies outside the batch's input folders.
    """
    source, folder = _folder(item)
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        depth = len(here.relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < _DEPTH else []
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in REFERENCE_SUFFIXES:
                continue
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode) or path == source:
                    continue
            except OSError:
                continue
            found.append(path.relative_to(folder).as_posix())
            if len(found) >= MAX_CANDIDATES:
                return found
    return found


def picked(item, payload: Any) -> tuple[str, Path, tuple[Reference, ...]] | None:
    """The reference a request picked: ``(name, path, references)``, or None.

    Args:
        item: the image.
        payload: the request's JSON object; its ``"reference"`` is None or a name that
            :func:`candidates` lists.

    Raises:
        InputError: another value, a name not offered, or a file that is not a colour
            photograph or cannot be read (the message names the file).
    """
    name = payload.get("reference") if isinstance(payload, dict) else None
    if name is None or name == "":
        return None
    if not isinstance(name, str) or len(name) > 4096:
        raise InputError("reference: expected the name of an image of the input's folder")
    if name not in candidates(item):
        raise InputError(
            f"reference: expected one of the images offered for this image, received {name[:200]!r}"
        )
    _, folder = _folder(item)
    (path,) = references_in({"reference": name}, folder / ".review", "reference")
    try:
        references = read_references([path])
    except (InputError, DecodeError) as exc:
        text = str(exc).removeprefix("reference 0: ")
        raise InputError(f"reference {name[:200]!r}: {text}") from None
    return name, path, references
