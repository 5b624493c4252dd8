"""The batch manifest: one JSON-lines :class:`Record` per input and run, and resume.

* **Manifest**: JSON lines, one :class:`Record` per input and run, appended and
  fsynced record by record, by one process only (the one that runs the batch). A line
  cut short by a kill is ignored when read. The file is locked for the length of a
  batch, so two batches never write the same manifest.
* **Resume rule**: an output is complete when the file exists and the manifest's last
  success record (``done`` or ``skipped-complete``) for that output path has
  ``output_sha256`` equal to the file's sha256 *and* ``input_sha256`` equal to the
  input's current sha256 (a replaced scan is colorized again).
* The batch procedure that writes it is :mod:`instacolor.batch.run`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from instacolor.batch.jobs import Job
from instacolor.errors import InputError, UsageError
from instacolor.weights import sha256_file

__all__ = ["STATUSES", "Manifest", "Record", "is_complete", "read_successes"]

#: Record statuses; ``done`` and ``skipped-complete`` are successes.
STATUSES = ("done", "skipped-color", "skipped-complete", "failed")
_SUCCESS = ("done", "skipped-complete")


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
        working_size: the square size the networks ran at.
        saturation: the factor on the predicted chroma (1: as predicted).
        decode: how the chroma was decoded (``regression`` or ``annealed-mean``); with
            ``temperature`` and ``mix`` the flat form of
            :class:`~instacolor.structures.Decoding` (``Decoding.from_record`` reads it).
        temperature: the annealed-mean temperature (None for regression).
        mix: the annealed mean's weight in its blend with the regression (None for
            regression).
        mean_confidence: the mean of the image's confidence map (weights with a
            trained classification head), else None.
        confidence: the confidence PNG written beside the output (``--confidence``).
        detector: detection backend that found the instances, or None.
        instances: number of instances fused (0 without a detector).
        hints: number of colour hints applied (points plus coloured instances), or None.
        hints_sha256: sha256 of the hints (:meth:`~instacolor.hints.Hints.sha256`).
        references_sha256: sha256 of the colour reference photos' pixels (``--reference``
            and the input's own; :func:`~instacolor.hints.references_sha256`), or None.
        references: each reference photo of the input, in the order used:
            ``{"path", "sha256" (of the file), "origin"}``, origin ``"option"``
            (``--reference``), ``"sidecar"`` (``NAME.reference.EXT``) or ``"hints"``
            (the ``"reference"`` field of its hints).
        bit_depth: bits per sample of the input and output (JPEG output is 8).
        timings: seconds: ``read``, ``colorize``, ``write``, ``total``.
        error: one-line reason for ``failed``, else None.
        note: remark (e.g. only the first page of a multi-page TIFF), or None.
        pages: with ``--all-pages``, ``{output path: sha256}`` of the pages after the
            first (``output`` holds page 1).
        time: UTC time the record was made, ISO 8601.

    Raises:
        InputError: ``status`` is not one of :data:`STATUSES`.
    """

    status: str
    input: str
    output: str
    input_sha256: str | None = None
    output_sha256: str | None = None
    model: str | None = None
    weights_sha256: str | None = None
    working_size: int | None = None
    saturation: float | None = None
    decode: str | None = None
    temperature: float | None = None
    mix: float | None = None
    mean_confidence: float | None = None
    confidence: str | None = None
    detector: str | None = None
    instances: int = 0
    hints: int | None = None
    hints_sha256: str | None = None
    references_sha256: str | None = None
    references: tuple[Mapping[str, str], ...] = ()
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
            raise InputError(f"status: expected one of {STATUSES}, received {self.status!r}")

    def to_json(self) -> str:
        """The record as one JSON line (no newline)."""
        values = asdict(self)
        values["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return json.dumps(values, sort_keys=False, ensure_ascii=False)


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
