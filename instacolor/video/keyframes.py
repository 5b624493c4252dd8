"""Keyframe hints for a video: colour points given on chosen frames.

A hints file is UTF-8 JSON lines, one keyframe a line::

    {"frame": 0, "points": [[120, 80, "#c03020"], [300, 200, [40, 90, 200], 6]]}

``frame`` is the frame index from 0; ``points`` are ``[x, y, colour]`` or ``[x, y,
colour, radius]`` in the input frame's pixels (colours as for :meth:`Colorizer.colorize`:
``"#rrggbb"`` or ``[r, g, b]`` 0-255). The hinted colours act on their frame and are
carried forward along the motion through the rest of its shot
(:mod:`instacolor.video.temporal`). Blank lines and lines starting with ``#`` are
skipped; two lines for one frame join their points.

**References per shot**: a line may also (or instead of ``points``) name colour
photographs, ``"reference": PATH`` or a list of paths, relative to the hints file's
folder and inside it (the rule of :mod:`instacolor.hints.sidecars`)::

    {"frame": 240, "reference": ["hall_colour.jpg", "uniform.png"]}

From that frame on they replace the run's own references (``--reference``): they act
on that frame and on the first frame of every later shot, until a later line names
other references. Put the line on a shot's first frame to colour that whole shot from
them. Two lines for one frame join their references (:func:`read_shot_references`).

A run reads the file once (:func:`read_keyframe_file`) and takes its keyframes
(:func:`keyframes_of`), its references per shot (:func:`shot_references_of`) and its
sha256 from that one reading; :func:`record_digests` gives the sha256 of every
reference for the run's record, each file hashed once.

Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hints.jsonl"
    >>> _ = path.write_text(json.dumps({"frame": 3, "points": [[1, 2, "#ff0000"]]}) + "\\n")
    >>> sorted(read_keyframes(path, (10, 10)))
    [3]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instacolor.errors import DecodeError, InputError, UsageError
from instacolor.hints import Hints, Reference, as_hints, read_references
from instacolor.hints.files import MAX_HINTS_BYTES
from instacolor.hints.sidecars import references_in
from instacolor.io.regular import read_small
from instacolor.video.sources import file_sha256

__all__ = [
    "KeyframeFile",
    "keyframes_of",
    "read_keyframe_file",
    "read_keyframes",
    "read_shot_references",
    "record_digests",
    "scale_hints",
    "shot_references_of",
]


@dataclass(frozen=True)
class KeyframeFile:
    """A keyframe hints file, read and parsed once (its lines not yet checked further).

    Attributes:
        path: the file.
        sha256: sha256 of its bytes as read.
        lines: ``(where, record, frame)`` of each line: its place for messages
            (``--hints NAME line N``), its JSON object, its frame index.
    """

    path: Path
    sha256: str
    lines: tuple[tuple[str, dict, int], ...]


def read_keyframe_file(path: str | os.PathLike) -> KeyframeFile:
    """Read a keyframe hints file once: its bytes' sha256 and its JSON lines.

    Raises:
        UsageError: the file cannot be read (or is over 64 MiB), or a line is not a JSON
            object with a ``frame`` index >= 0 (the message names the line).
    """
    path = Path(path)
    try:
        data = read_small(path, MAX_HINTS_BYTES, pipes=True)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--hints: expected a readable UTF-8 JSON-lines file, received {str(path)!r} ({exc})"
        ) from exc
    return KeyframeFile(path, hashlib.sha256(data).hexdigest(), tuple(_lines(path, text)))


def _lines(path: Path, text: str):
    """``(where, record, frame)`` of each line of a keyframe hints file's text.

    Raises:
        UsageError: a line is not a JSON object with a ``frame`` index.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"--hints {path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{where}: expected a JSON object, received invalid JSON ({exc})"
            ) from exc
        if not isinstance(record, dict):
            raise UsageError(f"{where}: expected a JSON object, received {type(record).__name__}")
        frame = record.get("frame")
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise UsageError(f'{where}: expected "frame": an integer >= 0, received {frame!r}')
        yield where, record, frame


def read_shot_references(path: str | os.PathLike) -> dict[int, tuple[Reference, ...]]:
    """The references per shot of a keyframe hints file (see the module notes).

    Args:
        path: the JSON-lines file.

    Returns:
        ``{frame index: references}`` (:func:`shot_references_of`).

    Raises:
        UsageError, InputError, DecodeError: as :func:`read_keyframe_file` and
            :func:`shot_references_of`.
    """
    return shot_references_of(read_keyframe_file(path))


def shot_references_of(hints: KeyframeFile) -> dict[int, tuple[Reference, ...]]:
    """The references per shot of a keyframe hints file read already.

    Args:
        hints: the file (:func:`read_keyframe_file`).

    Returns:
        ``{frame index: references}`` (read and checked; a file named twice is read once).

    Raises:
        UsageError: a ``"reference"`` breaks the path rule (the message names the line).
        InputError: a reference is missing or gray; DecodeError: one cannot be decoded
            (the message names the line and the file).
    """
    found: dict[int, list[Reference]] = {}
    read: dict[Path, Reference] = {}
    for where, record, frame in hints.lines:
        try:
            paths = references_in(record, hints.path, "--hints")
        except InputError as exc:
            raise UsageError(f"{where}: {exc}") from None
        for item in paths:
            if item not in read:
                try:
                    (read[item],) = read_references([item])
                except (InputError, DecodeError) as exc:
                    text = str(exc).removeprefix("reference 0: ")
                    raise type(exc)(f"{where}: reference {item}: {text}") from None
            refs = found.setdefault(frame, [])
            if all(ref is not read[item] for ref in refs):
                refs.append(read[item])
    return {frame: tuple(refs) for frame, refs in found.items() if refs}


def read_keyframes(path: str | os.PathLike, size: tuple[int, int]) -> dict[int, Hints]:
    """Read and check a keyframe hints file.

    Args:
        path: the JSON-lines file.
        size: ``(H, W)`` of the input frames (points must lie inside).

    Returns:
        ``{frame index: Hints}`` (:func:`keyframes_of`).

    Raises:
        UsageError: as :func:`read_keyframe_file` and :func:`keyframes_of`.
    """
    return keyframes_of(read_keyframe_file(path), size)


def keyframes_of(hints: KeyframeFile, size: tuple[int, int]) -> dict[int, Hints]:
    """The checked keyframes of a keyframe hints file read already.

    Args:
        hints: the file (:func:`read_keyframe_file`).
        size: ``(H, W)`` of the input frames (points must lie inside).

    Returns:
        ``{frame index: Hints}``.

    Raises:
        UsageError: a line lacks a ``points`` list (a line with a ``"reference"`` may
            have no points), or has a point outside the frame or a bad colour (the
            message names the line).
    """
    points: dict[int, list] = {}
    for where, record, frame in hints.lines:
        if "points" not in record and "reference" in record:
            continue  # references only (shot_references_of)
        line_points = record.get("points")
        if not isinstance(line_points, list) or not line_points:
            raise UsageError(
                f'{where}: expected "points": a non-empty list of [x, y, colour(, radius)], '
                f"received {line_points!r:.80}"
            )
        try:
            as_hints(line_points, size, None)
        except (InputError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: {exc}") from exc
        points.setdefault(frame, []).extend(line_points)
    return {frame: as_hints(found, size, None) for frame, found in points.items()}


def record_digests(
    reference: Any, shots: dict[int, tuple[Reference, ...]]
) -> tuple[list[str] | None, dict[str, list[str]] | None]:
    """sha256 of every reference of a run, for its record (a file named twice hashed once).

    Args:
        reference: the run's references as given (a path, an array, a PIL image or a
            list of them), or None.
        shots: the references per shot (:func:`shot_references_of`).

    Returns:
        ``(digests, per_shot)``: the sha256 of each of ``reference`` (a file's bytes, an
        array's pixels) or None; ``{"frame": [sha256 of each reference file]}`` or None
        without references per shot.
    """
    files: dict[str, str] = {}

    def of_file(path: str | os.PathLike) -> str:
        key = os.path.abspath(path)
        if key not in files:
            files[key] = file_sha256(Path(path))
        return files[key]

    digests = None
    if reference is not None:
        digests = []
        for item in reference if isinstance(reference, list | tuple) else [reference]:
            if isinstance(item, str | os.PathLike):
                digests.append(of_file(item))
            else:
                pixels = np.ascontiguousarray(np.asarray(item))
                digests.append(hashlib.sha256(pixels.tobytes()).hexdigest())
    per_shot = None
    if shots:
        per_shot = {str(f): [of_file(r.source) for r in refs] for f, refs in sorted(shots.items())}
    return digests, per_shot


def scale_hints(hints: Hints, sx: float, sy: float) -> list[tuple]:
    """The hints' points in the pixels of a frame scaled by ``(sx, sy)``."""
    radius_scale = min(sx, sy)
    return [(p.x * sx, p.y * sy, p.color, p.radius * radius_scale) for p in hints.points]
