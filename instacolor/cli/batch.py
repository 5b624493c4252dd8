"""Batch bookkeeping of ``instacolor colorize``: discovery, output mapping, manifest, resume.

* **Discovery**: a folder is walked recursively (symlinked folders are not followed,
  hidden files and folders are skipped) for files with an image suffix
  (:data:`IMAGE_SUFFIXES`, any case; formats instacolor cannot read are listed too, so
  that they are reported rather than silently ignored). Files named on the command
  line, matched by a glob or listed in ``--list`` are always attempted. Anything under
  the output folder is never an input.
* **Output mapping**: a file found in a folder keeps its path relative to that folder;
  a loose file keeps its name. The suffix changes only with ``--format``.
* **Manifest**: JSON lines, one :class:`Record` per input and run, appended and
  fsynced record by record. A line cut short by a kill is ignored when read.
* **Resume rule**: an output is complete when the file exists and the manifest's last
  success record (``done`` or ``skipped-complete``) for that output path has
  ``output_sha256`` equal to the file's sha256 *and* ``input_sha256`` equal to the
  input's current sha256 (a replaced scan is colorized again).
* **Stale temporary files**: a kill during a write can leave the hidden temporary
  file of :func:`~instacolor.io.archival_write.write_colorized`
  (``.<output name>.<8 hex>.tmp``) beside an output. Each run removes those that
  belong to one of its own outputs, while it holds the manifest's lock (so no other
  instacolor batch is writing to the same folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from instacolor.errors import InstacolorError
from instacolor.weights import sha256_file

__all__ = [
    "IMAGE_SUFFIXES",
    "STATUSES",
    "Job",
    "Manifest",
    "Record",
    "UsageError",
    "clean_stale_temps",
    "discover",
    "is_complete",
    "read_successes",
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
#: Record statuses; ``done`` and ``skipped-complete`` are successes.
STATUSES = ("done", "skipped-color", "skipped-complete", "failed")
_SUCCESS = ("done", "skipped-complete")
_FORMAT_SUFFIX = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
_SAME_FORMAT = {"png": {".png"}, "tiff": {".tif", ".tiff"}, "jpeg": {".jpg", ".jpeg", ".jpe"}}
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")
_GLOB_CHARS = frozenset("*?[")


class UsageError(InstacolorError, ValueError):
    """A command-line mistake (bad input path, output folder, option): exit status 2."""


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


@dataclass(frozen=True)
class Record:
    """One manifest line: what happened to one input in one run.

    Attributes:
        status: one of :data:`STATUSES`.
        input: input path.
        output: output path (written only when ``status`` is ``done``).
        input_sha256: sha256 of the input file, when it could be read.
        output_sha256: sha256 of the output file (``done`` and ``skipped-complete``).
        model: weights name.
        weights_sha256: sha256 of the weights file (of the parameters for untrained
            weights, which have no file).
        detector: detection backend that found the instances, or None.
        instances: number of instances fused (0 without a detector).
        bit_depth: bits per sample of the input and output (JPEG output is 8).
        timings: seconds: ``read``, ``colorize``, ``write``, ``total``.
        error: one-line reason for ``failed``, else None.
        note: remark (e.g. only the first page of a multi-page TIFF), or None.
        pages: with ``--all-pages``, ``{output path: sha256}`` of the pages after the
            first (``output`` holds page 1).
        time: UTC time the record was made, ISO 8601.
    """

    status: str
    input: str
    output: str
    input_sha256: str | None = None
    output_sha256: str | None = None
    model: str | None = None
    weights_sha256: str | None = None
    detector: str | None = None
    instances: int = 0
    bit_depth: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None
    pages: Mapping[str, str] = field(default_factory=dict)
    time: str = field(
        default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, received {self.status!r}")

    def to_json(self) -> str:
        """The record as one JSON line (no newline)."""
        values = asdict(self)
        values["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return json.dumps(values, sort_keys=False, ensure_ascii=False)


def _walk(folder: Path, outdir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(here / d, outdir))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield here / name


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _output_name(relative: Path, fmt: str | None) -> Path:
    if fmt is None or relative.suffix.lower() in _SAME_FORMAT[fmt]:
        return relative
    return relative.with_suffix(_FORMAT_SUFFIX[fmt])


def _expand(arg: str, outdir: Path) -> Iterator[tuple[Path, Path]]:
    """``(source, relative output)`` pairs of one command-line input."""
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
            yield file, file.relative_to(path)
    elif os.path.lexists(path):  # a file, or a broken link the worker will report
        yield path, Path(path.name)
    else:
        raise UsageError(f"{arg}: no such file or folder (check the path or quote the glob)")


def _read_list(list_file: str) -> list[str]:
    try:
        text = Path(list_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--list {list_file}: cannot read the list ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def discover(
    inputs: Iterable[str], list_file: str | None, outdir: Path, fmt: str | None
) -> tuple[list[Job], list[tuple[Job, str]]]:
    """The jobs of a batch, and the ones refused up front with the reason.

    Args:
        inputs: files, folders and glob patterns from the command line.
        list_file: a text file with one input file per line, or None.
        outdir: the absolute output folder.
        fmt: ``"png"``, ``"tiff"``, ``"jpeg"`` or None (same as the input).

    Returns:
        ``(jobs, refused)``: refused jobs map onto an output already taken by an
        earlier input of the same batch.

    Raises:
        UsageError: a named input does not exist, a glob matches nothing, no inputs at
            all, or an output would be written over one of the inputs.
    """
    pairs: list[tuple[Path, Path]] = []
    for arg in inputs:
        pairs += _expand(arg, outdir)
    if list_file is not None:
        for line in _read_list(list_file):
            path = Path(line).absolute()
            pairs.append((path, Path(path.name)))
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
        names.setdefault(job.output.parent, set()).add(job.output.name)
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


def read_successes(manifest: Path) -> dict[str, dict]:
    """The last success record of each output path in a manifest (empty if none)."""
    found: dict[str, dict] = {}
    with contextlib.suppress(FileNotFoundError), manifest.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if isinstance(record, dict) and record.get("status") in _SUCCESS:
                found[str(record.get("output"))] = record
    return found


def is_complete(job: Job, successes: Mapping[str, dict]) -> tuple[str, str] | None:
    """``(input_sha256, output_sha256)`` when ``job``'s output is complete, else None.

    Complete: the output exists, and the last success record of its path has the sha256
    of this output and of the current input (and of every later page it lists).
    """
    record = successes.get(str(job.output))
    if record is None or not job.output.is_file():
        return None
    try:
        output_sha = sha256_file(job.output)
        input_sha = sha256_file(job.source)
    except OSError:
        return None
    if record.get("output_sha256") != output_sha or record.get("input_sha256") != input_sha:
        return None
    for page, digest in (record.get("pages") or {}).items():  # --all-pages outputs
        try:
            if sha256_file(page) != digest:
                return None
        except OSError:
            return None
    return input_sha, output_sha


class Manifest:
    """The append-only JSON-lines manifest, locked for the length of a batch.

    Raises:
        UsageError: the file cannot be opened for appending, or another instacolor
            batch holds its lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fh: TextIO = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"manifest {path}: cannot open it for appending ({exc})") from exc
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._fh.close()
            raise UsageError(
                f"manifest {path}: another instacolor batch is writing to it; wait for it to "
                "finish or choose another output folder"
            ) from exc
        self._fh.seek(0, os.SEEK_END)
        if self._fh.tell() > 0:  # end a line cut short by a kill before appending
            self._fh.seek(self._fh.tell() - 1)
            last = self._fh.read(1)
            if last != "\n":
                self._fh.write("\n")

    def append(self, record: Record) -> None:
        """Write one record, flush and fsync."""
        self._fh.write(record.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Release the lock and close the file."""
        self._fh.close()
