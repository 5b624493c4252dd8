"""The one batch procedure, behind ``instacolor colorize`` and :func:`colorize_files`.

:func:`colorize_batch` runs a batch the same way whoever asks: it checks the runner
(:class:`Runner`: this process, a process pool or Ray actors) and the output folder,
discovers the jobs (:func:`~instacolor.batch.jobs.discover`), completes the
:class:`~instacolor.batch.worker.Settings` (``resume`` implies ``overwrite``; threads
default to CPU cores / workers), loads the networks once here (bad weights fail before
anything is written), creates the output folder, locks the manifest, removes the
temporary files an interrupted run left beside this batch's outputs, records refused
and complete jobs (:func:`run_batch`) and hands the rest to the runner. Every record
goes to the manifest first, then to ``on_record``.

Ctrl-C, and SIGTERM while the batch runs (:mod:`instacolor.batch.signals`), stop it
cleanly: the image in progress is finished or its temporary file removed, the records
of finished images are in the manifest, and the interrupt is raised again
(:class:`~instacolor.batch.signals.Terminated` for SIGTERM).

Example:
    >>> from instacolor.batch.run import Runner, colorize_batch
    >>> from instacolor.batch.worker import Settings
    >>> counts = colorize_batch(["scans/"], "colorized/", Settings(),
    ...                         runner=Runner(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from instacolor.batch.jobs import Job, classify_inputs, clean_stale_temps, discover
from instacolor.batch.manifest import Manifest, Record, is_complete, read_successes
from instacolor.batch.pool import run_parallel
from instacolor.batch.signals import sigterm_interrupts
from instacolor.batch.worker import Settings, Worker, load_worker
from instacolor.errors import InputError, UsageError
from instacolor.hints.files import read_hints_lines
from instacolor.hints.sidecars import named_references

__all__ = ["Plan", "Runner", "colorize_batch", "colorize_files", "run_batch"]


@dataclass(frozen=True)
class Runner:
    """Where the images of a batch are colorized.

    Attributes:
        workers: worker processes, or Ray actors with ``ray``; each loads the networks
            once. 1 without Ray: in this process.
        chunk: images handed to a worker process or actor at a time (None: 1 for a
            process pool, :data:`~instacolor.batch.ray.RAY_CHUNK` for Ray).
        ray: run on Ray Data actors (:func:`~instacolor.batch.ray.run_ray`).
        address: the Ray cluster to join, or None (the current session or a local one).
        num_gpus: GPU fraction each Ray actor reserves, in ``[0, 1]`` (0: CPU only).

    Raises:
        InputError: a count or fraction out of range.
    """

    workers: int = 1
    chunk: int | None = None
    ray: bool = False
    address: str | None = None
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1 or (self.chunk is not None and self.chunk < 1):
            raise InputError(
                "workers and chunk: expected integers >= 1, received "
                f"{self.workers} and {self.chunk}"
            )
        if not 0.0 <= self.num_gpus <= 1.0:
            raise InputError(f"num_gpus: expected a fraction in [0, 1], received {self.num_gpus}")

    def run(
        self,
        settings: Settings,
        worker: Worker,
        todo: list[Job],
        on_record: Callable[[Record], None],
    ) -> None:
        """Colorize ``todo``, passing every record to ``on_record`` in this process.

        Args:
            settings: the batch settings (worker processes and actors build from them).
            worker: the networks loaded in this process (used without pool or Ray).
            todo: the jobs left to colorize.
            on_record: receives each record as it arrives.
        """
        if self.ray:
            from instacolor.batch.ray import RAY_CHUNK, run_ray

            run_ray(
                settings,
                todo,
                workers=self.workers,
                chunk=self.chunk or RAY_CHUNK,
                on_record=on_record,
                address=self.address,
                num_gpus=self.num_gpus,
            )
        elif self.workers > 1 and len(todo) > 1:
            run_parallel(
                settings, todo, workers=self.workers, chunk=self.chunk or 1, on_record=on_record
            )
        else:  # in this process: its thread count for the batch, then as it was
            previous = torch.get_num_threads()
            if settings.threads is not None:
                torch.set_num_threads(settings.threads)
            try:
                for job in todo:
                    on_record(worker.process(job))
            finally:
                torch.set_num_threads(previous)


@dataclass(frozen=True)
class Plan:
    """What a batch is about to do, once its manifest is locked (for progress reports).

    Attributes:
        total: records the batch will write (its jobs and the jobs refused up front).
        manifest: the manifest's path.
        removed: temporary files an interrupted run had left, now removed.
    """

    total: int
    manifest: Path
    removed: tuple[Path, ...]


def run_batch(
    jobs: Sequence[Job],
    refused: Iterable[tuple[Job, str]],
    *,
    facts: Mapping[str, str | int | float],
    successes: Mapping[str, dict] | None,
    on_record: Callable[[Record], None],
    run: Callable[[list[Job]], None],
) -> None:
    """Record the jobs that need no colorizing and hand the rest to ``run``.

    The step of :func:`colorize_batch` that needs no networks: a refused job gets a
    ``failed`` record, a complete output (with resume) a ``skipped-complete`` record,
    and ``run`` colorizes what is left.

    Args:
        jobs: the batch's jobs, from :func:`~instacolor.batch.jobs.discover`.
        refused: jobs refused up front, with the reason, from the same.
        facts: what the records made here say about the networks (``model``,
            ``weights_sha256``, ``working_size``, ``saturation``: ``Worker.facts``); a
            ``skipped-complete`` record repeats those of the record that made the output.
        successes: with resume, the manifest's
            :func:`~instacolor.batch.manifest.read_successes`; None without.
        on_record: receives every record made here, in order.
        run: colorizes the remaining jobs and passes their records to ``on_record``
            itself (in this process, a process pool or Ray actors).
    """
    for job, reason in refused:
        on_record(
            Record(
                status="failed",
                input=str(job.source),
                output=str(job.output),
                error=reason,
                **facts,
            )
        )
    todo: list[Job] = []
    for job in jobs:
        complete = None if successes is None else is_complete(job, successes)
        if complete is None:
            todo.append(job)
        else:
            on_record(
                Record(
                    status="skipped-complete",
                    input=str(job.source),
                    output=str(job.output),
                    input_sha256=complete[0],
                    output_sha256=complete[1],
                    pages=successes[str(job.output)].get("pages") or {},
                    **{k: successes[str(job.output)].get(k, v) for k, v in facts.items()},
                )
            )
    run(todo)


def _output_folder(output: str | os.PathLike) -> Path:
    outdir = Path(output).absolute()
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(
            f"output folder {outdir}: expected a folder, received an existing file; choose "
            "another output folder"
        )
    return outdir


def colorize_batch(
    inputs: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    settings: Settings,
    *,
    runner: Runner = Runner(),
    list_file: str | os.PathLike | None = None,
    listed: Iterable[str] = (),
    resume: bool = False,
    manifest: str | os.PathLike | None = None,
    on_start: Callable[[Plan], None] | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> Counter[str]:
    """Colorize a batch of files into ``output`` (see the module notes for the steps).

    Args:
        inputs: files, folders (walked recursively, their tree mirrored in ``output``)
            and glob patterns.
        output: the output folder (created when missing).
        settings: what every worker needs (weights, device, detector, limits...).
        runner: this process (default), a process pool or Ray actors.
        list_file: a text file with one input path per line (see
            :func:`~instacolor.batch.jobs.read_list`), or None.
        listed: more input files (their outputs keep only their name).
        resume: skip inputs whose output is complete (``skipped-complete`` records) and
            replace the rest.
        manifest: JSON-lines manifest path (default ``output/manifest.jsonl``).
        on_start: receives the :class:`Plan` before the first record.
        on_record: receives every record after it is in the manifest (progress).

    Returns:
        Number of records per status (``done``, ``skipped-color``, ``skipped-complete``,
        ``failed``).

    Raises:
        UsageError: a missing input, no images, an output onto an input, an output
            folder that is a file or cannot be created, a manifest another batch holds.
        InputError: a bad runner option (a GPU fraction without a CUDA device).
        MissingDependencyError: Ray is asked for and not installed.
        WeightsError: the weights cannot be loaded.
        OSError: the manifest cannot be written any more (the batch stops).
        KeyboardInterrupt: Ctrl-C, or :class:`~instacolor.batch.signals.Terminated` on
            SIGTERM, after the clean-up described in the module notes.
    """
    with sigterm_interrupts():
        if runner.ray:
            from instacolor.batch.ray import import_ray

            import_ray()
            if runner.num_gpus > 0 and not settings.device.startswith("cuda"):
                raise InputError(
                    f"a GPU fraction of {runner.num_gpus} for each Ray actor needs a CUDA "
                    f"device, received device {settings.device!r}: add --device cuda "
                    "(device='cuda'); Ray gives each actor its GPU as cuda"
                )
        outdir = _output_folder(output)
        lines = read_hints_lines(settings.hints_file) if settings.hints_file else None
        settings = replace(settings, hint_lines=lines)  # read once: a pipe works too
        jobs, refused = discover(
            [os.fspath(p) for p in inputs],
            None if list_file is None else os.fspath(list_file),
            outdir,
            settings.format,
            listed=listed,
            references=partial(named_references, lines=lines, lines_path=settings.hints_file),
        )
        threads = settings.threads or max(1, (os.cpu_count() or 1) // runner.workers)
        settings = replace(settings, overwrite=settings.overwrite or resume, threads=threads)
        # Ray actors load their own networks: this one only checks them (on the CPU)
        worker = load_worker(replace(settings, device="cpu") if runner.ray else settings)
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"output folder {outdir}: cannot create the output folder ({exc}); choose "
                "a writable place"
            ) from exc
        book = Manifest(Path(manifest).absolute() if manifest else outdir / "manifest.jsonl")
        counts: Counter[str] = Counter()

        def record(item: Record) -> None:
            book.append(item)
            counts[item.status] += 1
            if on_record is not None:
                on_record(item)

        def run(todo: list[Job]) -> None:
            try:
                runner.run(settings, worker, todo, record)
            except KeyboardInterrupt:  # every worker has stopped: what it left can go
                clean_stale_temps(todo)
                raise

        try:
            removed = clean_stale_temps(jobs)
            successes = read_successes(book.path) if resume else None
            if on_start is not None:
                on_start(Plan(len(jobs) + len(refused), book.path, tuple(removed)))
            run_batch(
                jobs, refused, facts=worker.facts, successes=successes, on_record=record, run=run
            )
        finally:
            book.close()
    return counts


def colorize_files(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    workers: int = 2,
    address: str | None = None,
    resume: bool = False,
    manifest: str | os.PathLike | None = None,
    num_gpus: float = 0.0,
    device: str | None = None,
    threads: int = 1,
    chunk: int = 8,
    on_record: Callable[[Record], None] | None = None,
    **options: Any,
) -> Counter[str]:
    """Colorize files into ``output`` on Ray actors, as ``instacolor colorize --ray`` does.

    A keyword front to :func:`colorize_batch` with ``Runner(ray=True, ...)``: that
    function takes a :class:`~instacolor.batch.worker.Settings` and any runner.

    Args:
        inputs: a folder (walked recursively, its tree mirrored in ``output``), an image
            file, a glob, a sequence of those, a ``.jsonl`` manifest (its ``input``
            paths) or a text file with one input path per line (listed files keep only
            their name in ``output``; see :func:`~instacolor.batch.jobs.read_list`).
        output: the output folder (created when missing).
        workers: number of Ray actors; each loads the networks once.
        address: Ray cluster address (see :func:`~instacolor.batch.ray.run_ray`), or None.
        resume: skip inputs whose output is complete (``skipped-complete`` records).
        manifest: JSON-lines manifest path (default ``output/manifest.jsonl``).
        num_gpus: GPU fraction reserved per actor (0: CPU only).
        device: torch device of the actors (default ``"cuda"`` with GPUs, else ``"cpu"``).
        threads: torch CPU threads (and reserved CPUs) of each actor.
        chunk: jobs handed to an actor at a time (a Ray task costs ~70 ms, so 8 by
            default; an actor that dies loses the chunk it held).
        on_record: also receives every record after it is in the manifest (progress).
        **options: any other field of :class:`~instacolor.batch.worker.Settings`, as the
            CLI options of the same names: ``weights``, ``detector``, ``working_size``,
            ``format``, ``force``, ``overwrite`` (implied by ``resume``), ``max_pixels``,
            ``all_pages``, ``backend``, ``saturation``, ``decode`` (a
            :class:`~instacolor.structures.Decoding` or its spec), ``confidence``,
            ``hints_file``.

    Returns:
        Number of records per status (``done``, ``skipped-color``, ``skipped-complete``,
        ``failed``).

    Raises:
        MissingDependencyError: Ray Data is not installed.
        ValueError: :class:`~instacolor.errors.InputError` for a bad or unknown option or
            manifest input; :class:`~instacolor.errors.UsageError` for bad inputs
            (missing file, no images, an output onto an input), an unusable output
            folder or a manifest locked by another batch.
        WeightsError: the weights cannot be loaded.
        KeyboardInterrupt: Ctrl-C, or SIGTERM (as
            :class:`~instacolor.batch.signals.Terminated`), after a clean stop.

    Example:
        >>> from instacolor.batch.run import colorize_files
        >>> counts = colorize_files("scans/", "colorized/", workers=2)  # doctest: +SKIP
        >>> counts["done"]  # doctest: +SKIP
        120
    """
    known = {f.name for f in fields(Settings)} - {"device", "threads", "hint_lines"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"colorize_files: expected options among {sorted(known)}, received "
            f"{unknown}; see instacolor.batch.worker.Settings"
        )
    device = device or ("cuda" if num_gpus > 0 else "cpu")
    settings = Settings(device=device, threads=threads, **options)
    runner = Runner(workers=workers, chunk=chunk, ray=True, address=address, num_gpus=num_gpus)
    names, list_file, listed = classify_inputs(inputs)
    return colorize_batch(
        names,
        output,
        settings,
        runner=runner,
        list_file=list_file,
        listed=listed,
        resume=resume,
        manifest=manifest,
        on_record=on_record,
    )
