"""Colorize batches on Ray Data actors, on one machine or a cluster (extra ``ray``).

:func:`colorize_files` is the library entry point and ``instacolor colorize --ray
[ADDRESS]`` the command-line one; both hand the images still to do to :func:`run_ray`.
A batch here is the CLI's batch (:mod:`instacolor.batch.jobs`): the same discovery and
output mapping, the same manifest records, written only by the driver (this process)
record by record as the results stream back, the same atomic writes (each actor runs
the CLI's :class:`~instacolor.batch.worker.Worker`) and the same resume rule.

* **Actors**: ``workers`` Ray Data actors, each loading the networks once. An actor
  reserves ``settings.threads`` CPUs (torch threads, 1 when unset) and, with
  ``num_gpus`` > 0, that fraction of a GPU: ``num_gpus=0.25`` puts four actors on one
  GPU; Ray shows each actor its GPU as ``cuda``, so use ``device="cuda"``. The cluster
  needs ``workers * threads`` free CPUs (and ``workers * num_gpus`` GPUs), or some
  actors wait for resources.
* **Connecting**: with ``address`` (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``)
  this process joins that cluster; without one it starts a local Ray instance with
  ``workers * threads`` CPUs. A Ray session this process already had is used as it is.
  Only what :func:`run_ray` started is shut down.
* **Shared file system**: jobs travel as path names, and actors read inputs and write
  outputs themselves. On a multi-node cluster every input and output path must be the
  same and visible on every node (NFS, a mounted bucket), and instacolor with the
  chosen weights must be installed on every node. The manifest is written by the driver.
* **Resume**: ``resume=True`` (``--resume``) skips an input whose output exists and
  matches its last success record (sha256 of input and output) with a
  ``skipped-complete`` record; the rest are colorized again.
* **Failures**: a bad input gives a ``failed`` record, as in the CLI. An actor that dies
  (killed for memory, crashed) loses the images it held: they get ``failed`` records
  when the batch ends, Ray starts a new actor and the batch goes on (the lost images
  are not retried: a crashing image would crash every retry). When the Ray run itself
  stops (actors cannot start, the cluster is gone) every image not recorded yet gets a
  ``failed`` record naming the reason. ``--resume`` retries them all.

Example:
    >>> from instacolor.distributed import colorize_files
    >>> counts = colorize_files("scans/", "colorized/", workers=2)  # doctest: +SKIP
    >>> counts["done"]  # doctest: +SKIP
    120
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from instacolor.batch.jobs import IMAGE_SUFFIXES, Job, clean_stale_temps, discover
from instacolor.batch.manifest import Manifest, Record, read_successes, run_batch
from instacolor.batch.worker import Settings, Worker
from instacolor.detection.base import DetectorUnavailableWarning
from instacolor.errors import InputError, MissingDependencyError
from instacolor.io.archival import DEFAULT_MAX_PIXELS
from instacolor.weights import UntrainedWeightsWarning

__all__ = ["colorize_files", "import_ray", "run_ray"]

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
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False)
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

    The same contract as :func:`~instacolor.batch.worker.run_parallel`: ``on_record``
    runs in this process for every job's record as it arrives (in no fixed order), and
    every job gets exactly one record, also when its actor died (see the module notes).

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


def _sources(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
) -> tuple[list[str], str | None, list[str]]:
    """``(inputs, list_file, listed)`` for :func:`discover` from what the caller gave."""
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


def colorize_files(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    weights: str = "default",
    workers: int = 2,
    address: str | None = None,
    resume: bool = False,
    manifest: str | os.PathLike | None = None,
    detector: str | None = None,
    working_size: int | None = None,
    threads: int = 1,
    num_gpus: float = 0.0,
    device: str | None = None,
    format: str | None = None,
    force: bool = False,
    overwrite: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    all_pages: bool = False,
    backend: str = "torch",
    saturation: float = 1.0,
    chunk: int = 8,
    on_record: Callable[[Record], None] | None = None,
) -> Counter[str]:
    """Colorize files into ``output`` on Ray actors, as ``instacolor colorize --ray`` does.

    Args:
        inputs: a folder (walked recursively, its tree mirrored in ``output``), an image
            file, a glob, a sequence of those, a ``.jsonl`` manifest (its ``input``
            paths) or a text file with one input path per line (listed files keep only
            their name in ``output``).
        output: the output folder (created when missing).
        weights: weights name or path.
        workers: number of Ray actors; each loads the networks once.
        address: Ray cluster address (see :func:`run_ray`), or None.
        resume: skip inputs whose output is complete (``skipped-complete`` records).
        manifest: JSON-lines manifest path (default ``output/manifest.jsonl``).
        detector: detection backend name, or None.
        working_size: square size the networks run at (None: the weights' own).
        threads: torch CPU threads (and reserved CPUs) of each actor.
        num_gpus: GPU fraction reserved per actor (0: CPU only).
        device: torch device of the actors (default ``"cuda"`` with GPUs, else ``"cpu"``).
        format: ``"png"``, ``"tiff"``, ``"jpeg"`` or None (the input's).
        force: also recolor inputs already in colour.
        overwrite: replace existing outputs (implied by ``resume``).
        max_pixels: largest ``width * height`` decoded, or None for no limit.
        all_pages: colorize every page of multi-page TIFFs.
        backend: ``"torch"`` or ``"onnxruntime"`` (see :class:`~instacolor.api.Colorizer`).
        saturation: factor on the predicted chroma (see :class:`~instacolor.api.Colorizer`).
        chunk: jobs handed to an actor at a time (a Ray task costs ~70 ms, so 8 by
            default; an actor that dies loses the chunk it held).
        on_record: also receives every record after it is in the manifest (progress).

    Returns:
        Number of records per status (``done``, ``skipped-color``, ``skipped-complete``,
        ``failed``).

    Raises:
        MissingDependencyError: Ray Data is not installed.
        ValueError: :class:`~instacolor.errors.InputError` for a bad option or
            manifest input; :class:`~instacolor.batch.jobs.UsageError` for bad inputs
            (missing file, no images, an output onto an input) or a manifest locked by
            another batch.
        WeightsError: the weights cannot be loaded.
    """
    import_ray()
    _check_counts(workers, chunk, num_gpus)
    device = device or ("cuda" if num_gpus > 0 else "cpu")
    if num_gpus > 0 and not device.startswith("cuda"):
        raise InputError(
            f"num_gpus={num_gpus} reserves a GPU for each actor, but device is {device!r}: "
            "pass device='cuda' (Ray gives each actor its GPU as cuda)"
        )
    outdir = Path(output).absolute()
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"output {outdir}: expected a folder, received an existing file")
    names, list_file, listed = _sources(inputs)
    jobs, refused = discover(names, list_file, outdir, format, listed=listed)
    settings = Settings(
        weights=weights,
        device=device,
        working_size=working_size,
        detector=detector,
        max_pixels=max_pixels,
        force=force,
        overwrite=overwrite or resume,
        format=format,
        threads=threads,
        all_pages=all_pages,
        backend=backend,
        saturation=saturation,
    )
    # loads the weights once here: fail early
    facts = Worker(replace(settings, device="cpu")).facts
    outdir.mkdir(parents=True, exist_ok=True)
    book = Manifest(Path(manifest).absolute() if manifest else outdir / "manifest.jsonl")
    counts: Counter[str] = Counter()

    def record(item: Record) -> None:
        book.append(item)
        counts[item.status] += 1
        if on_record is not None:
            on_record(item)

    def run(todo: list[Job]) -> None:
        run_ray(
            settings,
            todo,
            workers=workers,
            chunk=chunk,
            on_record=record,
            address=address,
            num_gpus=num_gpus,
        )

    try:
        clean_stale_temps(jobs)
        successes = read_successes(book.path) if resume else None
        run_batch(jobs, refused, facts=facts, successes=successes, on_record=record, run=run)
    finally:
        book.close()
    return counts
