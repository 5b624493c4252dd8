"""The process pool: jobs handed to ``N`` spawned worker processes, records back in the parent.

Each process builds its own :class:`~instacolor.batch.worker.Worker` once. Ctrl-C or
SIGTERM stops the pool: each worker process unwinds the image it holds (its temporary
file is removed) and exits, and the records that came back before are passed on (see
:mod:`instacolor.batch.signals`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from instacolor.batch.jobs import Job, clean_stale_temps
from instacolor.batch.manifest import Record
from instacolor.batch.signals import stop_worker_on_signals, worker_busy
from instacolor.batch.worker import Settings, Worker, claim_process
from instacolor.errors import DetectorUnavailableWarning, UntrainedWeightsWarning

__all__ = ["run_parallel"]

_WORKER: Worker | None = None


def _init_process(settings: Settings) -> Worker:
    """Load this worker process's networks (the pool's initializer)."""
    global _WORKER
    stop_worker_on_signals()
    # The parent already reported these once for the whole batch.
    warnings.simplefilter("ignore", UntrainedWeightsWarning)
    warnings.simplefilter("ignore", DetectorUnavailableWarning)
    claim_process(settings)
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
