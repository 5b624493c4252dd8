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

import contextlib
import errno
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from instacolor.api import Colorizer
from instacolor.batch.jobs import Job, clean_stale_temps
from instacolor.batch.manifest import Record
from instacolor.batch.signals import stop_worker_on_signals, worker_busy
from instacolor.detection.base import DetectorUnavailableWarning
from instacolor.errors import InstacolorError
from instacolor.io.archival import DEFAULT_MAX_PIXELS, read_scan, read_scan_pages
from instacolor.io.archival_write import write_colorized
from instacolor.io.provenance import Provenance
from instacolor.weights import UntrainedWeightsWarning, sha256_file, weights_digest

__all__ = ["Settings", "Worker", "load_worker", "run_parallel", "weights_digest"]

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
        backend: ``"torch"`` or ``"onnxruntime"`` (see :class:`~instacolor.api.Colorizer`).
        saturation: factor on the predicted chroma (see :class:`~instacolor.api.Colorizer`).

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


def page_path(output: Path, page: int) -> Path:
    """Where page ``page`` (0-based, > 0) of a multi-page input goes: ``NAME.pageK.EXT``."""
    return output.with_name(f"{output.stem}.page{page + 1}{output.suffix}")


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


class Worker:
    """Loads the networks once and colorizes jobs.

    Args:
        settings: the batch settings.
        colorizer: an already built colorizer to use instead of building one.
    """

    def __init__(self, settings: Settings, colorizer: Colorizer | None = None) -> None:
        self.settings = settings
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        if colorizer is None:
            colorizer = Colorizer(
                settings.weights,
                device=settings.device,
                working_size=settings.working_size,
                detector=settings.detector,
                fallback_to_full_image=True,
                backend=settings.backend,
                saturation=settings.saturation,
            )
        self.colorizer = colorizer
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
            result = self._colorize(scan)
            t_color = time.perf_counter()
            record = Provenance(
                model=self.model, weights_sha256=self.weights_sha256, input_sha256=scan.sha256
            )
            job.output.parent.mkdir(parents=True, exist_ok=True)
            fmt = _FORMAT_NAMES.get(self.settings.format or "")
            written = self._write(job.output, result, scan, record, fmt)
            output_sha = sha256_file(written)
            pages = {}
            if self.settings.all_pages and scan.page_count > 1:
                pages = self._later_pages(job, scan, record, fmt)
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
            timings={
                "read": t_read - t0,
                "colorize": t_color - t_read,
                "write": t_write - t_color,
                "total": t_write - t0,
            },
            **{k: v for k, v in base.items() if k != "bit_depth"},
        )

    def _colorize(self, scan):
        """The colorized page at the scan's bit depth."""
        dtype = np.uint16 if scan.bit_depth == 16 else np.uint8
        return self.colorizer.colorize_light(scan.light, out_dtype=dtype)

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

    def _later_pages(self, job: Job, first, provenance: Provenance, fmt: str | None):
        """Colorize and write pages 2.. of ``job``; ``{path: sha256}`` of what was written."""
        written = {}
        pages = read_scan_pages(job.source, max_pixels=self.settings.max_pixels)
        try:
            next(pages)  # page 1 is done
            for k, scan in enumerate(pages, start=1):
                path = self._write(
                    page_path(job.output, k), self._colorize(scan), scan, provenance, fmt
                )
                written[str(path)] = sha256_file(path)
        finally:
            pages.close()
        if len(written) != first.page_count - 1:
            raise InstacolorError(
                f"expected {first.page_count} pages, read {len(written) + 1}: the file changed"
            )
        return written


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


_WORKER: Worker | None = None


def _init_process(settings: Settings) -> Worker:
    """Load this worker process's networks (the pool's initializer)."""
    global _WORKER
    stop_worker_on_signals()
    # The parent already reported these once for the whole batch.
    warnings.simplefilter("ignore", UntrainedWeightsWarning)
    warnings.simplefilter("ignore", DetectorUnavailableWarning)
    _WORKER = Worker(settings)
    return _WORKER


def _process_chunk(settings: Settings, jobs: Sequence[Job]) -> list[Record]:
    worker = _WORKER if _WORKER is not None else _init_process(settings)
    with worker_busy():
        return [worker.process(job) for job in jobs]


def _chunks(jobs: Sequence[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(jobs), size):
        yield list(jobs[start : start + size])


def run_parallel(
    settings: Settings,
    jobs: Sequence[Job],
    *,
    workers: int,
    chunk: int,
    on_record: Callable[[Record], None],
) -> None:
    """Process ``jobs`` in ``workers`` spawned processes, ``chunk`` jobs a task.

    Each process builds its own :class:`Worker` once. ``on_record`` runs in this
    process for every record as it arrives. When a worker process dies (killed for
    memory, crashed), the jobs the broken pool held are recorded as failed (after the
    temporary files of their killed writes are removed) and a new pool goes on with the
    rest. On :class:`KeyboardInterrupt` (Ctrl-C, or SIGTERM as
    :class:`~instacolor.batch.signals.Terminated`) every worker process is told to stop
    (SIGTERM: it unwinds its image, removing its temporary file, and exits), the records
    of chunks that finished meanwhile are passed on, and the interrupt is raised again.
    """
    pending = list(_chunks(jobs, chunk))
    pending.reverse()
    while pending:
        context = get_context("spawn")
        lost: list[Job] = []
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_process, initargs=(settings,)
        ) as pool:
            running: dict[Future, list[Job]] = {}
            try:
                while (pending or running) and not lost:
                    while pending and len(running) < 2 * workers:
                        part = pending.pop()
                        running[pool.submit(_process_chunk, settings, part)] = part
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        part = running.pop(future)
                        try:
                            records = future.result()
                        except BrokenProcessPool:
                            lost += part
                            continue
                        for record in records:
                            on_record(record)
            except KeyboardInterrupt:
                _stop_pool(pool, running, on_record)
                raise
            for future, part in running.items():  # lost with the broken pool
                future.cancel()
                lost += part
        # every process of the pool has ended: what a killed write left can go
        clean_stale_temps(lost)
        for job in lost:
            on_record(_died(job))


def _stop_pool(
    pool: ProcessPoolExecutor,
    running: dict[Future, list[Job]],
    on_record: Callable[[Record], None],
) -> None:
    """Stop every worker process (interrupted), then pass on the records that came back."""
    # The executor keeps no public list of its processes; SIGTERM reaches those that
    # did not get the signal themselves (`kill PID` of this process only).
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    for future in running:
        if future.done() and not future.cancelled() and future.exception() is None:
            for record in future.result():
                on_record(record)
    clean_stale_temps(job for part in running.values() for job in part)


def _died(job: Job) -> Record:
    return Record(
        status="failed",
        input=str(job.source),
        output=str(job.output),
        error="the worker process died while colorizing this image (out of memory or a "
        "crash); retry it with --resume, --workers 1 or a lower --max-pixels",
    )
