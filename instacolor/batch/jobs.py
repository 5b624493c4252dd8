"""The jobs of a batch: discovery, output mapping, stale temporary files.

* **Discovery**: a folder is walked recursively (symlinked folders are not followed,
  hidden files and folders are skipped) for files with an image suffix
  (:data:`IMAGE_SUFFIXES`, any case; formats instacolor cannot read are listed too, so
  that they are reported rather than silently ignored). A walk skips colour
  references: reference sidecars (``NAME.reference.jpg``, any name
  :func:`~instacolor.hints.sidecars.is_reference_sidecar` accepts) and the files a
  hints file names as a reference (``discover``'s ``references``). Files named on the
  command line, matched by a glob or listed in ``--list`` are always attempted.
  Anything under the output folder is never an input.
* **List files** (``--list``): UTF-8 text (a byte-order mark is skipped), one path a
  line, LF or CRLF line ends; blank lines and lines starting with ``#`` are skipped;
  a relative path is relative to the folder of the list file, not to the working
  directory.
* **Output mapping**: a file found in a folder keeps its path relative to that folder;
  a loose file keeps its name. The suffix changes only with ``--format``.
* **Manifest and resume**: see :mod:`instacolor.batch.manifest`.
* **Stale temporary files**: a kill during a write can leave the hidden temporary
  file of :func:`~instacolor.io.archival.write_colorized`
  (``.<output name>.<8 hex>.tmp``, the name shortened by
  :func:`~instacolor.io.names.temp_name` when it would be too long) beside an output.
  Each run removes those that
  belong to one of its own outputs, while it holds the manifest's lock (so no other
  instacolor batch is writing to the same folder).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from instacolor.errors import InputError, UsageError
from instacolor.hints.sidecars import is_reference_sidecar
from instacolor.io.names import temp_owner

__all__ = [
    "IMAGE_SUFFIXES",
    "Job",
    "UsageError",
    "classify_inputs",
    "clean_stale_temps",
    "discover",
    "read_list",
]

#: Suffixes a folder walk picks up (readable: PNG, TIFF, JPEG; the rest are reported).
IMAGE_SUFFIXES = frozenset(
    [
        ".png",
        ".tif",
        ".tiff",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".bmp",
        ".gif",
        ".webp",
        ".jp2",
        ".j2k",
        ".heic",
        ".dng",
        ".pnm",
        ".pgm",
    ]
)
_FORMAT_SUFFIX = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
_SAME_FORMAT = {"png": {".png"}, "tiff": {".tif", ".tiff"}, "jpeg": {".jpg", ".jpeg", ".jpe"}}
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One input file and where its colorized version goes.

    Attributes:
        source: absolute path of the input (may not exist or be unreadable: the worker
            reports that).
        output: absolute path of the output file.
    """

    source: Path
    output: Path


def _walk(folder: Path, outdir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(here / d, outdir))
        for name in sorted(files):
            if (
                not name.startswith(".")
                and Path(name).suffix.lower() in IMAGE_SUFFIXES
                and not is_reference_sidecar(name)
            ):
                yield here / name


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _output_name(relative: Path, fmt: str | None) -> Path:
    if fmt is None or relative.suffix.lower() in _SAME_FORMAT[fmt]:
        return relative
    return relative.with_suffix(_FORMAT_SUFFIX[fmt])


def _expand(arg: str, outdir: Path) -> Iterator[tuple[Path, Path, bool]]:
    """``(source, relative output, found by a walk)`` of one command-line input."""
    if any(c in arg for c in _GLOB_CHARS) and not os.path.lexists(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            raise UsageError(f"{arg}: the pattern matches no file or folder")
        for match in matches:
            yield from _expand(match, outdir)
        return
    path = Path(arg).absolute()
    if path.is_dir():
        if _inside(path, outdir):
            raise UsageError(
                f"{arg}: this input folder is the output folder or inside it; choose an output "
                "folder outside the inputs"
            )
        for file in _walk(path, outdir):
            yield file, file.relative_to(path), True
    elif os.path.lexists(path):  # a file, or a broken link the worker will report
        yield path, Path(path.name), False
    else:
        raise UsageError(f"{arg}: no such file or folder (check the path or quote the glob)")


def read_list(list_file: str | os.PathLike) -> list[Path]:
    """The absolute input paths of a list file (see the module notes for its format).

    Args:
        list_file: a UTF-8 text file with one input path per line.

    Returns:
        The listed paths in order, relative ones joined to the list file's folder.

    Raises:
        UsageError: the file cannot be read or is not UTF-8 text.
    """
    path = Path(list_file).absolute()
    try:
        text = path.read_text(encoding="utf-8-sig")  # universal newlines: CRLF is LF
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--list {list_file}: cannot read the list ({exc}); expected a UTF-8 text file "
            "with one input path per line"
        ) from exc
    lines = (line.strip() for line in text.splitlines())
    return [path.parent / line for line in lines if line and not line.startswith("#")]


def discover(
    inputs: Iterable[str],
    list_file: str | None,
    outdir: Path,
    fmt: str | None,
    *,
    listed: Iterable[str] = (),
    references: Callable[[list[Path]], set[Path]] | None = None,
) -> tuple[list[Job], list[tuple[Job, str]]]:
    """The jobs of a batch, and the ones refused up front with the reason.

    Args:
        inputs: files, folders and glob patterns from the command line.
        list_file: a text file with one input file per line (see :func:`read_list`),
            or None.
        outdir: the absolute output folder.
        fmt: ``"png"``, ``"tiff"``, ``"jpeg"`` or None (same as the input).
        listed: more input files, treated like the lines of ``list_file`` (relative
            ones are relative to the working directory).
        references: given all the inputs, the resolved files their hints name as
            colour references (e.g. :func:`~instacolor.hints.sidecars.named_references`):
            those a folder walk found are not inputs.

    Returns:
        ``(jobs, refused)``: refused jobs map onto an output already taken by an
        earlier input of the same batch.

    Raises:
        UsageError: a named input does not exist, a glob matches nothing, no inputs at
            all, or an output would be written over one of the inputs.
    """
    found: list[tuple[Path, Path, bool]] = []
    for arg in inputs:
        found += _expand(arg, outdir)
    lines = [] if list_file is None else read_list(list_file)
    for line in [*lines, *listed]:
        path = Path(line).absolute()
        found.append((path, Path(path.name), False))
    named = set() if references is None else references([f[0] for f in found])
    pairs = [(s, r) for s, r, walked in found if not (walked and _resolved(s) in named)]
    if not pairs:
        raise UsageError("no input images found (give files, folders, globs or --list FILE)")
    jobs: list[Job] = []
    refused: list[tuple[Job, str]] = []
    taken: dict[Path, Path] = {}
    for source, relative in pairs:
        job = Job(source=source, output=outdir / _output_name(relative, fmt))
        if taken.get(job.output) == source:
            continue  # the same file named twice
        if job.output in taken:
            refused.append(
                (
                    job,
                    f"its output {job.output} is already the output of "
                    f"{taken[job.output]} in this batch; rename one of them",
                )
            )
            continue
        taken[job.output] = source
        jobs.append(job)
    _refuse_overwriting_inputs(jobs)
    return jobs, refused


def _refuse_overwriting_inputs(jobs: list[Job]) -> None:
    sources = set()
    for job in jobs:
        with contextlib.suppress(OSError):
            sources.add(job.source.resolve())
    for job in jobs:
        target = job.output.resolve() if os.path.lexists(job.output) else job.output
        if target in sources or job.output in sources:
            raise UsageError(
                f"the output folder would map {job.output} onto an input file; instacolor "
                "never writes over its inputs: choose an output folder outside the inputs"
            )


def clean_stale_temps(jobs: Iterable[Job]) -> list[Path]:
    """Remove temporary files a killed run left beside this batch's outputs.

    Only hidden files named like :func:`write_colorized`'s temporary files for one of
    the outputs in ``jobs`` are removed. Call it while holding the manifest lock.

    Returns:
        The removed files.
    """
    names: dict[Path, set[str]] = {}
    for job in jobs:
        names.setdefault(job.output.parent, set()).add(temp_owner(job.output.name))
    removed = []
    for folder, wanted in names.items():
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                match = _TEMP.match(entry.name)
                if match and match["name"] in wanted and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    return removed


def classify_inputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
) -> tuple[list[str], str | None, list[str]]:
    """``(inputs, list_file, listed)`` for :func:`discover` from what a library caller gave.

    Args:
        inputs: a folder, an image file or a glob, a sequence of those, a ``.jsonl``
            manifest (its records' ``input`` paths become ``listed``) or a text file
            with one input path per line (``list_file``).

    Raises:
        InputError: a ``.jsonl`` file that cannot be read or names no input.
    """
    if not isinstance(inputs, str | os.PathLike):
        return [os.fspath(p) for p in inputs], None, []
    path = Path(inputs)
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return [], None, _manifest_inputs(path)
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
        return [], str(path), []
    return [str(path)], None, []


def _manifest_inputs(path: Path) -> list[str]:
    """The ``input`` of every record of a manifest, once each, in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest {path}: cannot read it ({exc})") from exc
    found: dict[str, None] = {}
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("input"), str):
                found[record["input"]] = None
    if not found:
        raise InputError(
            f"manifest {path}: expected JSON lines with an 'input' field, found none; give "
            "a folder, a list of files, or a text file with one path per line instead"
        )
    return list(found)
