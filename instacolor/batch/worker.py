"""Colorize one :class:`~instacolor.batch.jobs.Job`: read the scan, colorize L, write the output.

A :class:`Worker` loads the networks once (one per process with ``--workers N``) and
turns each job into a :class:`~instacolor.batch.manifest.Record`; a bad input gives a
``failed`` record with a one-line reason, never an exception. The parallel runner
hands jobs to ``N`` spawned processes and gets the records back in the parent, which
alone writes the manifest. Ctrl-C or SIGTERM stops the pool: each worker process
unwinds the image it holds (its temporary file is removed) and exits, and the records
that came back before are passed on (see :mod:`instacolor.batch.signals`).
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instacolor.batch.jobs import Job
from instacolor.batch.manifest import Record
from instacolor.batch.references import InputReferences
from instacolor.colorizer import Colorizer
from instacolor.errors import DetectorUnavailableWarning, InstacolorError
from instacolor.hints import hints_object_for, read_hints_lines, references_sha256
from instacolor.io.archival import (
    DEFAULT_MAX_PIXELS,
    Provenance,
    read_scan,
    read_scan_pages,
    settings_text,
    write_colorized,
)
from instacolor.io.names import fit_name
from instacolor.runtime.allocator import keep_freed_memory
from instacolor.structures import Decoding
from instacolor.weights import sha256_file, weights_digest

__all__ = [
    "Settings",
    "Worker",
    "confidence_path",
    "load_worker",
    "weights_digest",
    "write_confidence",
]

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_FORMAT_NAMES = {"png": "PNG", "tiff": "TIFF", "jpeg": "JPEG"}


@dataclass(frozen=True)
class Settings:
    """What every worker needs to build its :class:`Colorizer` and treat a job.

    Attributes:
        weights: weights name or path.
        device: torch device.
        working_size: the networks' square working size, or None for the weights' own.
        detector: detection backend name, or None.
        max_pixels: largest ``width * height`` decoded, or None for no limit.
        force: recolor inputs that are already in colour.
        overwrite: replace an existing output file.
        format: ``"png"``, ``"tiff"``, ``"jpeg"`` or None (from the output suffix).
        threads: torch CPU threads of each worker, or None for torch's default (a batch
            run by :func:`~instacolor.batch.run.colorize_batch`: CPU cores / workers).
        all_pages: colorize every page of multi-page TIFFs (see :func:`page_path`).
        backend: ``"torch"`` or ``"onnxruntime"`` (see :class:`~instacolor.colorizer.Colorizer`).
        saturation: factor on the predicted chroma (see :class:`~instacolor.colorizer.Colorizer`).
        decode: a :class:`~instacolor.structures.Decoding`, its spec
            (``"annealed-mean:0.38:0.75"``; parts left out: the weights') or None (the
            weights' default).
        confidence: also write the confidence map as ``NAME.confidence.png`` (8-bit gray,
            255 = 1) beside each output (weights with a trained classification head).
        hints_file: a JSON-lines hints file (:func:`~instacolor.hints.read_hints_lines`);
            an input without a line there uses its ``NAME.hints.json`` sidecar if any.
        references: colour reference photos (paths) every input takes colours from
            (:mod:`instacolor.hints.reference`); empty: none. An input also takes its
            own (:mod:`instacolor.hints.sidecars`: ``NAME.reference.jpg`` sidecars and the
            ``"reference"`` field of its hints).
        hint_lines: the table of ``hints_file``, read once by the batch
            (:func:`~instacolor.batch.run.colorize_batch`), so that every worker sees the
            same lines and a pipe (``--hints <(...)``) is read only once; None: each worker
            reads ``hints_file`` itself.

    Example:
        >>> Settings(weights="instacolor-untrained-w16", working_size=64).device
        'cpu'
    """

    weights: str = "default"
    device: str = "cpu"
    working_size: int | None = None
    detector: str | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    force: bool = False
    overwrite: bool = False
    format: str | None = None
    threads: int | None = None
    all_pages: bool = False
    backend: str = "torch"
    saturation: float = 1.0
    decode: Decoding | str | None = None
    confidence: bool = False
    hints_file: str | None = None
    references: tuple[str, ...] = ()
    hint_lines: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)


def confidence_path(output: Path) -> Path:
    """Where the confidence map of ``output`` goes: ``NAME.confidence.png`` beside it.

    For an output name near the file-system limit, NAME is shortened
    (:func:`~instacolor.io.names.fit_name`).
    """
    return output.with_name(fit_name(output.stem, ".confidence.png"))


def write_confidence(path: Path, confidence: np.ndarray) -> Path:
    """Write ``(H, W)`` confidence in [0, 1] as an 8-bit gray PNG, atomically."""
    from PIL import Image

    tmp = path.with_name(fit_name(path.name, ".partial", prefix="."))
    try:
        level = np.round(np.clip(confidence, 0.0, 1.0) * 255).astype(np.uint8)
        Image.fromarray(level, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def page_path(output: Path, page: int) -> Path:
    """Where page ``page`` (0-based, > 0) of a multi-page input goes: ``NAME.pageK.EXT``.

    For an output name near the file-system limit, NAME is shortened
    (:func:`~instacolor.io.names.fit_name`).
    """
    return output.with_name(fit_name(output.stem, f".page{page + 1}{output.suffix}"))


def describe_error(exc: BaseException, source: object = None) -> str:
    """One line saying what went wrong, for stderr and the manifest (without the path)."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        text = f"disk full or file size limit reached while writing ({exc}); nothing was left"
    elif isinstance(exc, MemoryError):
        text = "out of memory: the image is too large for this machine (try --max-pixels)"
    elif isinstance(exc, InstacolorError | OSError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (please report this)"
    if source is not None:
        text = text.replace(f"{source}: ", "", 1)
    return " ".join(text.split())


#: The record fields that say how the colours were made (the outputs' provenance).
_SETTINGS_KEYS = (
    "working_size", "saturation", "decode", "temperature", "mix", "hints_sha256",
    "references_sha256",
)  # fmt: skip


class Worker:
    """Loads the networks once and colorizes jobs.

    Args:
        settings: the batch settings.
        colorizer: an already built colorizer to use instead of building one.
    """

    def __init__(self, settings: Settings, colorizer: Colorizer | None = None) -> None:
        self.settings = settings
        if colorizer is None:
            colorizer = Colorizer(
                settings.weights,
                device=settings.device,
                working_size=settings.working_size,
                detector=settings.detector,
                fallback_to_full_image=True,
                backend=settings.backend,
                saturation=settings.saturation,
                decode=settings.decode,
            )
        self.colorizer = colorizer
        self.hint_lines = settings.hint_lines
        if self.hint_lines is None and settings.hints_file:
            self.hint_lines = read_hints_lines(settings.hints_file)
        self.hint_lines_path = settings.hints_file
        self.references = InputReferences(settings.references)
        self.model = colorizer.loaded.name
        self.weights_sha256 = weights_digest(colorizer.loaded)

    @property
    def facts(self) -> dict[str, str | int | float]:
        """What every record of this worker says about the networks it runs."""
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "working_size": self.colorizer.working_size,
            "saturation": self.colorizer.saturation,
            **self.colorizer.decoding.record(),
        }

    def process(self, job: Job) -> Record:
        """Colorize one job; every failure becomes a ``failed`` record."""
        t0 = time.perf_counter()
        base = {"input": str(job.source), "output": str(job.output), **self.facts}
        scan = None
        try:
            if os.path.lexists(job.output) and not self.settings.overwrite:
                raise FileExistsError(
                    f"the output {job.output} already exists; pass --resume to skip complete "
                    "outputs or --overwrite to replace it"
                )
            scan = read_scan(job.source, max_pixels=self.settings.max_pixels)
            base.update(input_sha256=scan.sha256, bit_depth=scan.bit_depth)
            t_read = time.perf_counter()
            if scan.is_color and not self.settings.force:
                return Record(
                    status="skipped-color",
                    note=f"already in colour (tone deviation {scan.tone_deviation:.1f}); "
                    "--force recolors it",
                    timings={"read": t_read - t0, "total": t_read - t0},
                    **base,
                )
            # its hints line or NAME.hints.json, parsed once for its points and references
            own = hints_object_for(job.source, self.hint_lines, self.hint_lines_path)
            hints = None if own is None else own.hints
            references, entries = self.references.of(job.source, own)
            if references:
                base.update(
                    references_sha256=references_sha256(references), references=tuple(entries)
                )
            if hints is not None:
                base.update(hints=len(hints), hints_sha256=hints.sha256())
            result = self._colorize(scan, hints, references)
            t_color = time.perf_counter()
            record = Provenance(
                model=self.model,
                weights_sha256=self.weights_sha256,
                input_sha256=scan.sha256,
                settings=settings_text(**{k: base.get(k) for k in _SETTINGS_KEYS}),
            )
            job.output.parent.mkdir(parents=True, exist_ok=True)
            fmt = _FORMAT_NAMES.get(self.settings.format or "")
            written = self._write(job.output, result, scan, record, fmt)
            output_sha = sha256_file(written)
            confidence = None
            if self.settings.confidence and result.confidence is not None:
                confidence = write_confidence(confidence_path(job.output), result.confidence)
            pages = {}
            if self.settings.all_pages and scan.page_count > 1:
                pages = self._later_pages(job, scan, record, fmt, references)
            t_write = time.perf_counter()
        except Exception as exc:  # one bad input never stops the batch: it is recorded
            return Record(
                status="failed",
                error=describe_error(exc, job.source),
                timings={"total": time.perf_counter() - t0},
                **base,
            )
        note = None
        if scan.page_count > 1 and not pages:
            note = f"multi-page TIFF: only page 1 of {scan.page_count} was colorized"
        return Record(
            status="done",
            output_sha256=output_sha,
            detector=result.detector,
            instances=0 if result.instances is None else len(result.instances),
            bit_depth=8 if written.suffix.lower() in (".jpg", ".jpeg", ".jpe") else scan.bit_depth,
            note=note,
            pages=pages,
            mean_confidence=None
            if result.confidence is None
            else round(float(result.confidence.mean()), 4),
            confidence=None if confidence is None else str(confidence),
            timings={
                "read": t_read - t0,
                "colorize": t_color - t_read,
                "write": t_write - t_color,
                "total": t_write - t0,
            },
            **{k: v for k, v in base.items() if k != "bit_depth"},
        )

    def _colorize(self, scan, hints=None, references=None):
        """The colorized page at the scan's bit depth (``hints`` in its pixels)."""
        dtype = np.uint16 if scan.bit_depth == 16 else np.uint8
        return self.colorizer.colorize_light(
            scan.light, out_dtype=dtype, hints=hints, reference=references
        )

    def _write(self, path: Path, result, scan, provenance: Provenance, fmt: str | None) -> Path:
        """Write one colorized page atomically, with the scan's metadata and provenance."""
        return write_colorized(
            path,
            result.image,
            provenance=provenance,
            source=scan,
            format=fmt,
            overwrite=self.settings.overwrite,
        )

    def _later_pages(
        self, job: Job, first, provenance: Provenance, fmt: str | None, references=None
    ):
        """Colorize and write pages 2.. of ``job``; ``{path: sha256}`` of what was written."""
        written = {}
        pages = read_scan_pages(job.source, max_pixels=self.settings.max_pixels)
        try:
            next(pages)  # page 1 is done
            for k, scan in enumerate(pages, start=1):
                page = self._colorize(scan, None, references)
                path = self._write(page_path(job.output, k), page, scan, provenance, fmt)
                written[str(path)] = sha256_file(path)
        finally:
            pages.close()
        if len(written) != first.page_count - 1:
            raise InstacolorError(
                f"expected {first.page_count} pages, read {len(written) + 1}: the file changed"
            )
        return written


def claim_process(settings: Settings) -> None:
    """Tune this process for batch work: ``settings.threads`` torch threads and, on the
    CPU, malloc kept from returning freed blocks
    (:func:`~instacolor.runtime.allocator.keep_freed_memory`).

    Called by the processes a batch owns: worker processes, Ray actors and the
    ``instacolor`` command. A batch run in the caller's process (``colorize_files`` with one
    worker) sets the thread count only while it runs and leaves malloc as it found it.
    """
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.device == "cpu":
        keep_freed_memory()


def load_worker(settings: Settings) -> Worker:
    """A :class:`Worker` for ``settings``; its warnings once.

    The warnings of loading are issued again for the whole batch; a detector that cannot
    be built (the batch goes on WITHOUT instances) is said LOUDLY, with the reason, as a
    :class:`~instacolor.detection.base.DetectorUnavailableWarning`.

    Raises:
        WeightsError, InputError, MissingDependencyError: the networks cannot be loaded.
    """
    worker = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            worker = Worker(settings)
    finally:
        for item in caught:
            message = item.message
            if issubclass(item.category, DetectorUnavailableWarning) and worker is not None:
                message = DetectorUnavailableWarning(
                    f"DETECTOR {settings.detector!r} UNAVAILABLE - every image is colorized "
                    "WITHOUT instances (full-image network only). Reason: "
                    f"{worker.colorizer.detector_error}"
                )
            warnings.warn_explicit(message, item.category, item.filename, item.lineno)
    return worker
