"""Hint files: a JSON object per image, a JSON-lines file for a batch, sidecars.

* :func:`hints_from_json` - :class:`~instacolor.hints.Hints` from
  ``{"points": [...], "instance_colors": {...}}``;
* :func:`read_hints_object` - one such object in a file (``NAME.hints.json`` beside an
  input: :func:`sidecar_path`), parsed once into a :class:`HintsObject` (its points and
  its ``"reference"`` paths); :func:`read_hints_file` - its points alone;
* :func:`read_hints_lines` - a JSON-lines file, one ``{"input": PATH, "points": ...,
  "instance_colors": ...}`` per line, for a batch (``instacolor colorize --hints FILE``);
* :func:`hints_object_for` / :func:`hints_for` - the hints object / the hints of one
  input: its line in that file, else its sidecar, else None.

Example:
    >>> hints_from_json({"points": [[10, 20, "#c03020"]]}).points[0].x
    10.0
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instacolor.errors import InputError, UsageError
from instacolor.hints.values import Hints, Lab
from instacolor.io.regular import read_small

__all__ = [
    "MAX_HINTS_BYTES",
    "HintsObject",
    "hints_for",
    "hints_from_json",
    "hints_object_for",
    "read_hints_file",
    "read_hints_lines",
    "read_hints_object",
    "references_in",
    "sidecar_path",
]

#: Largest hints file read (bytes): a JSON sidecar or a JSON-lines file of a batch.
MAX_HINTS_BYTES = 64 << 20


def hints_from_json(data: Any, where: str = "hints") -> Hints:
    """Hints from a JSON object ``{"points": [...], "instance_colors": {...}}``.

    Points are ``[x, y, color]``, ``[x, y, color, radius]`` or ``{"x", "y", "color",
    "radius"}``; a colour is ``[r, g, b]`` (0-255), ``"#rrggbb"`` or ``{"lab": [a, b]}``;
    ``instance_colors`` keys are instance indices as strings. Other keys (such as
    ``"input"`` in a JSON-lines file) are ignored.

    Raises:
        InputError: naming ``where``, when the object is not of that form.
    """

    def color(c: Any) -> Any:
        if isinstance(c, dict):
            if set(c) != {"lab"} or not isinstance(c["lab"], list) or len(c["lab"]) != 2:
                raise InputError(f'{where}: expected a colour {{"lab": [a, b]}}, received {c!r}')
            return Lab(*c["lab"])
        return c

    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object with points, received {data!r:.80}")
    points = data.get("points", [])
    colors = data.get("instance_colors", {})
    if not isinstance(points, list) or not isinstance(colors, dict):
        raise InputError(
            f"{where}: expected 'points' a list and 'instance_colors' an object, received "
            f"{type(points).__name__} and {type(colors).__name__}"
        )
    try:
        parsed = []
        for p in points:
            if isinstance(p, dict):
                parsed.append({**p, "color": color(p.get("color"))})
            elif isinstance(p, list) and len(p) >= 3:
                parsed.append([p[0], p[1], color(p[2]), *p[3:]])
            else:
                parsed.append(p)
        indices = {}
        for key, c in colors.items():
            if not (isinstance(key, str) and key.isdigit()):
                raise InputError(f"instance_colors: expected index keys '0', '1'..., got {key!r}")
            indices[int(key)] = color(c)
        return Hints(points=parsed, instance_colors=indices)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def references_in(data: Any, hints_path: str | Path, where: str) -> list[Path]:
    """The reference paths of one hints object (its ``"reference"`` field).

    Args:
        data: the hints object (a dict; anything else names no reference).
        hints_path: the file it was read from: relative paths are resolved against
            its folder.
        where: what to call the object in a message (e.g. ``"hints"``).

    Returns:
        Resolved paths, in the order given (empty without the field).

    Raises:
        InputError: the field is not a path or a non-empty list of paths, or a path
            breaks the path rule (relative to the hints file's folder
            and inside it; see :mod:`instacolor.hints.sidecars`).
    """
    if not isinstance(data, Mapping) or "reference" not in data:
        return []
    value = data["reference"]
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(p, str) for p in items):
        raise InputError(
            f'{where} {hints_path}: expected "reference" a path or a non-empty list of '
            f"paths, received {value!r:.80}"
        )
    folder = Path(os.path.abspath(hints_path)).parent
    try:
        root = folder.resolve()
    except (OSError, RuntimeError) as exc:
        raise InputError(f"{where} {hints_path}: cannot resolve its folder ({exc})") from None
    out = []
    for item in items:
        bad = None
        if not item or "\0" in item:
            bad = "an empty path or one with a NUL character"
        elif os.path.isabs(item):
            bad = "an absolute path"
        else:
            try:
                path = (folder / item).resolve()
            except (OSError, RuntimeError) as exc:
                path, bad = None, f"a path that cannot be resolved ({exc})"
            if path is not None and path != root and root not in path.parents:
                bad = "a path that leads out of the hints file's folder"
        if bad:
            raise InputError(
                f"{where} {hints_path}: reference {item!r:.200} is {bad}; a hints file names "
                "references relative to its own folder and inside it (use --reference for "
                "a photo elsewhere)"
            )
        out.append(path)
    return out


@dataclass(frozen=True)
class HintsObject:
    """One hints object (a ``NAME.hints.json`` file, or a line of a ``--hints`` file),
    parsed once: its points and its ``"reference"`` paths.

    Both fields are checked when the object is made; a field that is not valid keeps
    its error and raises it when it is asked for, so a bad ``"reference"`` fails the
    input's references and bad points its hints, each with its own message.

    Attributes:
        path: the file it was read from (its folder resolves relative references).
    """

    path: Path
    _hints: Hints | InputError = field(repr=False)
    _references: tuple[Path, ...] | InputError = field(repr=False)

    @classmethod
    def check(cls, data: Any, path: str | Path, where: str) -> HintsObject:
        """Check a parsed JSON object (see :func:`hints_from_json`; ``where`` names it
        in a points error, ``path`` in a reference error)."""
        try:
            hints: Hints | InputError = hints_from_json(data, where)
        except InputError as exc:
            hints = exc
        try:
            references: tuple[Path, ...] | InputError = tuple(references_in(data, path, "hints"))
        except InputError as exc:
            references = exc
        return cls(Path(path), hints, references)

    @property
    def hints(self) -> Hints:
        """Its points and instance colours.

        Raises:
            InputError: they are not of :func:`hints_from_json`'s form (the message
                names the file).
        """
        if isinstance(self._hints, InputError):
            raise InputError(str(self._hints))
        return self._hints

    @property
    def references(self) -> tuple[Path, ...]:
        """The paths of its ``"reference"`` field, resolved (empty without the field).

        Raises:
            InputError: the field is not valid
                (:func:`references_in`).
        """
        if isinstance(self._references, InputError):
            raise InputError(str(self._references))
        return self._references


def read_hints_object(path: str | Path, *, pipes: bool = False) -> HintsObject:
    """Read and parse a JSON hints file (e.g. a ``NAME.hints.json`` sidecar) once.

    Args:
        path: the file: a regular file of at most :data:`MAX_HINTS_BYTES`.
        pipes: also read a FIFO or character device (a file the user named,
            :func:`~instacolor.io.regular.read_small`).

    Raises:
        InputError: the file cannot be read, is not a regular file (a FIFO, a folder),
            or is not JSON; the message names the file.
    """
    try:
        data = json.loads(read_small(path, MAX_HINTS_BYTES, pipes=pipes).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"{path}: expected a readable JSON hints file ({type(exc).__name__}: {exc})"
        ) from None
    return HintsObject.check(data, path, str(path))


def read_hints_file(path: str | Path) -> Hints:
    """Hints from a JSON file the caller names (a FIFO or pipe is read too).

    Raises:
        InputError: the file cannot be read, is not JSON, or not of
            :func:`hints_from_json`'s form; the message names the file.
    """
    return read_hints_object(path, pipes=True).hints


def sidecar_path(source: str | Path) -> Path:
    """``NAME.hints.json`` beside ``source`` (``photo.tif`` -> ``photo.hints.json``)."""
    source = Path(source)
    return source.with_name(f"{source.stem}.hints.json")


def read_hints_lines(path: str | Path) -> dict[str, Any]:
    """The lines of a JSON-lines hints file, by resolved input path.

    Each line is a JSON object with ``"input"`` (a path, relative to the current folder
    or absolute) and the keys of :func:`hints_from_json`; blank lines are skipped. The
    objects are checked only when their input is colorized (:func:`hints_for`), so a bad
    hint fails that input alone.

    Raises:
        UsageError: the file cannot be read, a line is not a JSON object with an
            ``"input"`` string, or two lines name the same input.
    """
    try:
        lines = read_small(path, MAX_HINTS_BYTES, pipes=True).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--hints {path}: expected a readable JSON-lines file ({exc})") from None
    table: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            data = exc
        if not isinstance(data, dict) or not isinstance(data.get("input"), str):
            raise UsageError(
                f'--hints {path}, line {number}: expected a JSON object with an "input" path, '
                f"received {line.strip()[:80]!r}"
            )
        key = str(Path(data["input"]).expanduser().resolve())
        if key in table:
            raise UsageError(f"--hints {path}, line {number}: a second line for {data['input']}")
        table[key] = data
    return table


def hints_object_for(
    source: str | Path,
    lines: dict[str, Any] | None = None,
    lines_path: str | Path | None = None,
) -> HintsObject | None:
    """The hints object of one input: its line of ``lines``, else its sidecar, else None.

    Args:
        source: the input.
        lines: the ``--hints`` table (:func:`read_hints_lines`), or None.
        lines_path: the file of ``lines`` (its folder resolves relative references).

    Raises:
        InputError: the sidecar cannot be read as JSON, or is not a regular file (a
            FIFO, a folder, a dangling link); the message names the file.
    """
    source = Path(source)
    data = None if lines is None else lines.get(str(source.resolve()))
    if data is not None:
        return HintsObject.check(data, lines_path or ".", f"hints for {source.name}")
    sidecar = sidecar_path(source)
    return read_hints_object(sidecar) if os.path.lexists(sidecar) else None


def hints_for(source: str | Path, lines: dict[str, Any] | None = None) -> Hints | None:
    """The hints of one input: its line of ``lines``, else its sidecar, else None.

    Raises:
        InputError: the line or the sidecar is not a valid hints object (the message
            names the file).
    """
    found = hints_object_for(source, lines)
    return None if found is None else found.hints
