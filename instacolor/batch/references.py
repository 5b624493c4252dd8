"""The colour references of each input of a batch (:mod:`instacolor.hints.sidecars`).

:class:`InputReferences` reads the batch's own references (``--reference``) once, and
an input's own (its ``NAME.reference.EXT`` sidecars and the ``"reference"`` field of its
hints) when the input is colorized: a reference shared by many inputs is read, checked
and encoded once while it is unchanged (the last 16 are kept), and a folder is listed
again only when it changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from instacolor.errors import DecodeError, InputError, InstacolorError
from instacolor.hints.files import HintsObject
from instacolor.hints.reference import Reference, read_references
from instacolor.hints.sidecars import own_references, sidecar_stem
from instacolor.weights import sha256_file

__all__ = ["InputReferences"]

#: Per-input references kept read (and encoded) at a time.
_KEPT = 16


class InputReferences:
    """The references of each input: the batch's, then the input's own.

    Args:
        paths: the batch's references (``--reference``), used by every input.
        origins: the manifest's ``origin`` of each of ``paths`` (default ``"option"``
            for all; the review app keeps the references an output was made with).
        digests: the sha256 of each of ``paths``' files, when the caller has just checked
            them (default: each file is hashed).

    Raises:
        InputError, DecodeError: a batch reference is missing, unreadable or gray.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        origins: Sequence[str] | None = None,
        digests: Sequence[str] | None = None,
    ) -> None:
        self.common: tuple[Reference, ...] = read_references(list(paths) or None) or ()
        self.paths = tuple(os.path.abspath(p) for p in paths)
        origins = ["option"] * len(paths) if origins is None else list(origins)
        digests = [sha256_file(p) for p in paths] if digests is None else list(digests)
        self.entries = tuple(
            {"path": str(p), "sha256": d, "origin": o}
            for p, o, d in zip(paths, origins, digests, strict=True)
        )
        self._read: dict[tuple, tuple[Reference, str]] = {}
        self._listings: dict[Path, tuple[int, list[str]]] = {}

    def _sidecar_names(self, folder: Path) -> list[str]:
        """The reference sidecars' names in ``folder``, listed again when it changes."""
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return []
        kept = self._listings.get(folder)
        if kept is None or kept[0] != mtime:
            try:
                names = [n for n in os.listdir(folder) if sidecar_stem(n) is not None]
            except OSError:
                names = []
            kept = self._listings[folder] = (mtime, names)
        return kept[1]

    def _read_one(self, path: Path, origin: str) -> tuple[Reference, str]:
        """One reference of an input's own, and its file's sha256."""
        label = "reference sidecar" if origin == "sidecar" else "reference in the hints"
        try:
            stat = os.stat(path)
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in self._read:
                (ref,) = read_references([path])
                if len(self._read) >= _KEPT:
                    self._read.pop(next(iter(self._read)))
                self._read[key] = (ref, sha256_file(path))
            return self._read[key]
        except FileNotFoundError:
            raise InputError(f"{label} {path}: expected an image file, it does not exist") from None
        except (InstacolorError, OSError) as exc:
            text = str(exc).removeprefix("reference 0: ").replace(f", {path} ", ", it ")
            kind = type(exc) if isinstance(exc, InstacolorError) else DecodeError
            raise kind(f"{label} {path}: {text}") from None

    def of(
        self, source: Path, hints: HintsObject | None = None
    ) -> tuple[tuple[Reference, ...] | None, list[dict[str, str]]]:
        """The references of one input and their manifest entries.

        Args:
            source: the input.
            hints: its hints object, read once for its hints and its references
                (:func:`~instacolor.hints.hints_object_for`), or None.

        Returns:
            ``(references or None, entries)``: the batch's references then the input's own
            (a path given twice once), and ``{"path", "sha256", "origin"}`` for each.

        Raises:
            InputError, DecodeError: naming the file, for a reference of the input's own
                that is missing, unreadable or gray, or a bad ``"reference"`` field.
        """
        refs = list(self.common)
        entries = list(self.entries)
        seen = set(self.paths)
        names = self._sidecar_names(source.parent)
        found = own_references(source, hints, names)
        for path, origin in found:
            if os.path.abspath(path) in seen:
                continue
            seen.add(os.path.abspath(path))
            ref, sha = self._read_one(path, origin)
            refs.append(ref)
            entries.append({"path": str(path), "sha256": sha, "origin": origin})
        return (tuple(refs) or None), entries
