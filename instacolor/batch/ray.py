"""The Ray runner of a batch: Ray Data actors, on one machine or a cluster (extra ``ray``).

:func:`~instacolor.batch.run.colorize_batch` (the one batch procedure, behind
``instacolor colorize --ray [ADDRESS]`` and :func:`~instacolor.batch.run.colorize_files`)
hands the images still to do to :func:`run_ray`. A batch here is the same batch as in
this process or a process pool: the same discovery and output mapping, the same manifest
records, written only by the driver (this process) record by record as the results
stream back, the same atomic writes (each actor runs a
:class:`~instacolor.batch.worker.Worker`) and the same resume rule.

* **Actors**: ``workers`` Ray Data actors, each loading the networks once. An actor
  reserves ``settings.threads`` CPUs (torch threads, 1 when unset) and, with
  ``num_gpus`` > 0, that fraction of a GPU: ``num_gpus=0.25`` puts four actors on one
  GPU; Ray shows each actor its GPU as ``cuda``, so use ``device="cuda"``. The cluster
  needs ``workers * threads`` free CPUs (and ``workers * num_gpus`` GPUs), or some
  actors wait for resources.
* **Connecting**: with ``address`` (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``)
  this process joins that cluster; without one it starts a local Ray instance with
  ``workers * threads`` CPUs. A Ray session this process already had is used as it is.
  Only what :func:`run_ray` started is shut down. ``ray.init`` replaces the driver's
  SIGTERM handler with its own; a handler this process had (the batch's, see
  :mod:`instacolor.batch.signals`) is put back.
* **Shared file system**: jobs travel as path names, and actors read inputs and write
  outputs themselves. On a multi-node cluster every input and output path must be the
  same and visible on every node (NFS, a mounted bucket), and instacolor with the
  chosen weights must be installed on every node. The manifest is written by the driver.
* **Failures**: a bad input gives a ``failed`` record, as in the CLI. An actor that dies
  (killed for memory, crashed) loses the images it held: they get ``failed`` records
  when the batch ends, Ray starts a new actor and the batch goes on (the lost images
  are not retried: a crashing image would crash every retry). When the Ray run itself
  stops (actors cannot start, the cluster is gone) every image not recorded yet gets a
  ``failed`` record naming the reason. ``--resume`` retries them all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

from instacolor.batch.jobs import Job
from instacolor.batch.manifest import Record
from instacolor.batch.worker import Settings, Worker, claim_process
from instacolor.errors import (
    DetectorUnavailableWarning,
    InputError,
    MissingDependencyError,
    UntrainedWeightsWarning,
)

__all__ = ["RAY_CHUNK", "import_ray", "run_ray"]

#: Images per actor task unless told otherwise: a Ray task costs ~70 ms.
RAY_CHUNK = 8

_INSTALL = 'pip install "instacolor[ray]"'
#: Ray Data settings of a run: no progress bars (``on_record`` reports progress), and a
#: block lost with a dead actor is dropped rather than ending the run.
_DATA_CONTEXT = {
    "enable_progress_bars": False,
    "print_on_execution_start": False,
    "max_errored_blocks": -1,
}
_MAX_BLOCKS = 4096
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(?P<name>\w+(?:Error|Exception)): (?P<text>.+)$")
_LOST = (
    "the Ray actor died while colorizing this image (out of memory or a crash); retry it "
    "with --resume or a lower --max-pixels"
)


def import_ray() -> ModuleType:
    """The ``ray`` module, with Ray Data imported.

    Raises:
        MissingDependencyError: Ray Data is not installed or does not import.
    """
    try:
        import ray
        import ray.data  # the submodule run_ray uses
    except ImportError as exc:
        raise MissingDependencyError(
            f"distributed batches need Ray Data (ray[data] >= 2.10), which does not import "
            f"here ({exc}); install it with: {_INSTALL}"
        ) from exc
    return ray


class _ColorizeActor:
    """A Ray Data actor: one :class:`Worker` (networks loaded once), records as JSON.

    Args:
        settings: the batch settings.
    """

    def __init__(self, settings: Settings) -> None:
        # The driver already reported these once for the whole batch.
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        warnings.simplefilter("ignore", DetectorUnavailableWarning)
        claim_process(settings)
        self.worker = Worker(settings)

    def __call__(self, batch: dict) -> dict[str, list]:
        """Colorize a batch of jobs.

        Args:
            batch: columns ``index`` (int), ``source`` and ``output`` (str), one row a job.

        Returns:
            Columns ``index`` and ``record``: each record as its JSON line, which survives
            Ray's Arrow blocks unchanged (``None`` and empty mappings included).
        """
        records = [
            self.worker.process(Job(Path(str(source)), Path(str(output)))).to_json()
            for source, output in zip(batch["source"], batch["output"])
        ]
        return {"index": [int(i) for i in batch["index"]], "record": records}


def _check_counts(workers: int, chunk: int, num_gpus: float) -> None:
    if workers < 1 or chunk < 1:
        raise InputError(
            f"workers and chunk: expected integers >= 1, received {workers} and {chunk}"
        )
    if not 0.0 <= num_gpus <= 1.0:
        raise InputError(f"num_gpus: expected a fraction in [0, 1], received {num_gpus}")


def _cause(exc: BaseException) -> str:
    """The innermost ``SomeError: message`` line of a Ray error's traceback, or its start."""
    found = None
    for line in str(exc).splitlines():
        match = _ERROR_LINE.match(line.strip())
        if match:
            found = f"{match['name']}: {match['text']}"
    return found or f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _lost(job: Job, reason: str) -> Record:
    return Record(status="failed", input=str(job.source), output=str(job.output), error=reason)


@contextlib.contextmanager
def _session(ray: ModuleType, address: str | None, num_cpus: int) -> Iterator[None]:
    """A Ray session: the one already open, the cluster at ``address``, or a local one."""
    if ray.is_initialized():
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False)
    if callable(handler):  # ray.init put its own (sys.exit) in place of ours
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _quiet_data_context(ray: ModuleType) -> Iterator[None]:
    """:data:`_DATA_CONTEXT` and a quieter Ray Data log while a run lasts, then restored."""
    context = ray.data.DataContext.get_current()
    names = [name for name in _DATA_CONTEXT if hasattr(context, name)]
    saved = {name: getattr(context, name) for name in names}
    log = logging.getLogger("ray.data")
    level = log.level
    try:
        for name in names:
            setattr(context, name, _DATA_CONTEXT[name])
        log.setLevel(logging.ERROR)
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        log.setLevel(level)


def run_ray(
    settings: Settings,
    jobs: Sequence[Job],
    *,
    workers: int,
    chunk: int,
    on_record: Callable[[Record], None],
    address: str | None = None,
    num_gpus: float = 0.0,
) -> None:
    """Process ``jobs`` on ``workers`` Ray Data actors, ``chunk`` jobs a batch.

    The same contract as :func:`~instacolor.batch.pool.run_parallel`: ``on_record``
    runs in this process for every job's record as it arrives (in no fixed order), and
    every job gets exactly one record, also when its actor died (see the module notes).
    A :class:`KeyboardInterrupt` (Ctrl-C, SIGTERM) ends the Ray session this call
    started (its actors with it) and is raised again; the images not recorded by then
    get no record.

    Args:
        settings: the batch settings; ``settings.threads`` CPUs are reserved per actor.
        jobs: the jobs to colorize.
        workers: number of actors (>= 1).
        chunk: jobs handed to an actor at a time (>= 1).
        on_record: receives each record.
        address: Ray cluster address, or None for the current session or a local one.
        num_gpus: GPU fraction reserved per actor, in ``[0, 1]`` (0: CPU only).

    Raises:
        InputError: ``workers``, ``chunk`` or ``num_gpus`` out of range.
        MissingDependencyError: Ray Data is not installed.
    """
    _check_counts(workers, chunk, num_gpus)
    ray = import_ray()
    if not jobs:
        return
    cpus = settings.threads or 1
    pending = dict(enumerate(jobs))
    items = [
        {"index": i, "source": str(j.source), "output": str(j.output)} for i, j in pending.items()
    ]
    reason = _LOST
    with _session(ray, address, workers * cpus), _quiet_data_context(ray):
        blocks = min(-(-len(items) // chunk), _MAX_BLOCKS)  # one chunk a block, for balance
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        with warnings.catch_warnings():  # max_*: remote args Ray Data deprecates (2.60)
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                _ColorizeActor,
                fn_constructor_kwargs={"settings": settings},
                batch_size=chunk,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(
                    size=min(workers, blocks), max_tasks_in_flight_per_actor=1
                ),  # one task an actor: a dead actor loses only the chunk it was on
                num_cpus=cpus,
                num_gpus=num_gpus or None,
                max_restarts=-1,  # a dead actor is replaced...
                max_task_retries=0,  # ...and its images are not retried
            )
        rows = iter(dataset.iter_rows())
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except Exception as exc:  # the run stopped: the images left are recorded below
                reason = (
                    f"the Ray run stopped before this image was done ({_cause(exc)}); fix "
                    "that and run again with --resume"
                )
                break
            pending.pop(int(row["index"]), None)
            on_record(Record(**json.loads(row["record"])))
    for job in pending.values():
        on_record(_lost(job, reason))
