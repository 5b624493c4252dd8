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

The references an output was **made with** stay with it (:func:`kept`): the batch's
``--reference`` photos and those its hints named, as its manifest record lists them,
go into every preview and "apply" of the image, beside its ``NAME.reference.EXT``
sidecars (found again, as a batch run finds them) and a picked one; a request's
``"keep_references": false`` leaves them out. The record is data, not authority: a
listed file is used only if it is a regular file whose bytes still have the sha256 the
record gives (so a record can name only a file whose exact contents its writer already
knew); one that is missing or changed is left out and named in :attr:`Kept.dropped`.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instacolor.errors import DecodeError, InputError
from instacolor.hints.reference import Reference, read_references
from instacolor.hints.sidecars import REFERENCE_SUFFIXES, references_in
from instacolor.weights import sha256_file

__all__ = ["MAX_CANDIDATES", "MAX_KEPT", "Kept", "candidates", "kept", "picked"]

#: Most names offered for one image.
MAX_CANDIDATES = 300
#: Most references of a record kept for an image (more are dropped).
MAX_KEPT = 16
#: Largest reference file hashed (bytes); a larger one is dropped.
MAX_KEPT_BYTES = 512 << 20
_DEPTH = 2
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEPT_ORIGINS = ("option", "hints")  # sidecars are found again beside the input
_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()  # requests run in worker threads


@dataclass(frozen=True)
class Kept:
    """The references an image's output was made with, as far as they still hold.

    Attributes:
        paths: the files still as the record lists them, in its order.
        origins: each one's ``origin`` (``"option"`` or ``"hints"``).
        digests: each one's sha256, checked against its bytes.
        dropped: a reason for each listed reference left out (missing, changed, not a
            regular file), naming its file by its base name only.
    """

    paths: tuple[Path, ...] = ()
    origins: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Base names of :attr:`paths`, for the page."""
        return [p.name for p in self.paths]


def _digest(path: Path, st: os.stat_result) -> str:
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _digests_lock:
        found = _digests.get(key)
    if found is None:
        found = sha256_file(path)
        with _digests_lock:
            if len(_digests) >= 256:
                _digests.pop(next(iter(_digests)))
            _digests[key] = found
    return found


def kept(item) -> Kept:
    """The references of ``item``'s record that still hold (see the module's text).

    Args:
        item: the image (its ``record``, a manifest record read as JSON, is not trusted).

    Returns:
        :class:`Kept`: the entries of origin ``"option"`` or ``"hints"`` whose path is an
        absolute path to a regular file of at most :data:`MAX_KEPT_BYTES` whose sha256
        equals the record's; the first :data:`MAX_KEPT` of them.
    """
    entries = item.record.get("references") if isinstance(item.record, dict) else None
    paths: list[Path] = []
    origins: list[str] = []
    digests: list[str] = []
    dropped: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            dropped.append("a reference entry of the record is not valid")
            continue
        if entry.get("origin") not in _KEPT_ORIGINS:
            continue
        raw, digest = entry.get("path"), entry.get("sha256")
        if not isinstance(raw, str) or not isinstance(digest, str) or "\0" in raw:
            dropped.append("a reference entry of the record is not valid")
            continue
        path = Path(raw)
        name = path.name[:200]
        if not path.is_absolute() or not _HEX64.fullmatch(digest):
            dropped.append(f"{name!r}: the record's entry is not valid")
            continue
        try:
            st = os.stat(path)
        except OSError:
            dropped.append(f"{name!r}: the file is missing")
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEPT_BYTES:
            dropped.append(f"{name!r}: not a regular image file")
        elif len(paths) >= MAX_KEPT:
            dropped.append(f"{name!r}: more than {MAX_KEPT} references")
        elif path in paths:
            continue
        else:
            try:
                same = _digest(path, st) == digest
            except OSError:
                same = False
            if same:
                paths.append(path)
                origins.append(entry["origin"])
                digests.append(digest)
            else:
                dropped.append(f"{name!r}: the file changed since the output was made")
    return Kept(tuple(paths), tuple(origins), tuple(digests), tuple(dropped))


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
