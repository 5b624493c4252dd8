"""The ``instacolor`` command: argument parsing and the ``colorize`` and ``models`` commands.

Exit status: 0 when every input was colorized or skipped (already in colour, already
complete), 1 when at least one input failed, 2 on a usage error (bad option, missing
input, unusable output folder, unknown weights), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from instacolor import __version__
from instacolor.api import MAX_SATURATION
from instacolor.batch.jobs import Job, UsageError, clean_stale_temps, discover
from instacolor.batch.manifest import Manifest, Record, read_successes, run_batch
from instacolor.errors import InstacolorError, MissingDependencyError
from instacolor.io.archival import DEFAULT_MAX_PIXELS

__all__ = ["build_parser", "main"]

#: Images per Ray actor task unless --batch says otherwise.
RAY_CHUNK = 8

_PROG = "instacolor"
_DESCRIPTION = "Colorize grayscale photographs (JPEG, PNG, TIFF; 8 or 16 bit), in batches."
_EPILOG = (
    "exit status: 0 all inputs done or skipped, 1 some inputs failed (see the manifest), "
    "2 usage error"
)


def _say(message: str) -> None:
    tqdm.write(f"{_PROG}: {message}", file=sys.stderr)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, received {text}")
    return value


def _saturation(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_SATURATION:
        raise argparse.ArgumentTypeError(
            f"expected a number from 0 to {MAX_SATURATION:g}, received {text}; 1 keeps the "
            "colours as predicted"
        )
    return value


def _pixels(text: str) -> int | None:
    if text.lower() in ("0", "none"):
        return None
    return _positive(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``instacolor``."""
    parser = argparse.ArgumentParser(prog=_PROG, description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "colorize",
        help="colorize files, folders (recursively), globs or a list of files",
        description="Colorize images into OUTDIR, mirroring the input tree. Inputs are "
        "never modified; each output is written atomically, keeps the input's bit depth, "
        "ICC-tagged sRGB, EXIF/XMP/IPTC and gets provenance metadata.",
        epilog=_EPILOG,
    )
    run.add_argument("inputs", nargs="*", metavar="INPUT", help="file, folder or glob")
    run.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    run.add_argument("--list", metavar="FILE", help="text file with one input file per line")
    run.add_argument(
        "--format",
        choices=("png", "tiff", "jpeg"),
        help="output format (default: the input's; JPEG is 8-bit only)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose output exists and matches its success record in the "
        "manifest (sha256 of input and output); redo the rest, replacing partial outputs",
    )
    run.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run.add_argument("--force", action="store_true", help="also recolor inputs already in colour")
    run.add_argument(
        "--all-pages",
        action="store_true",
        help="colorize every page of multi-page TIFFs: page K > 1 goes beside page 1 as "
        "NAME.pageK.EXT (default: page 1 only, noted in the manifest)",
    )
    run.add_argument("--weights", default="default", help="weights name or path (see `models`)")
    run.add_argument(
        "--detector",
        default="none",
        help="detection backend for instances: none (default: full-image network only), "
        "torchvision, detectron2, optionally +sam. Without its weights the batch goes on "
        "WITHOUT instances after a loud warning",
    )
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes (Ray actors with --ray); each loads the networks once (default 1: "
        "in this process)",
    )
    run.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help='colorize on Ray Data actors (pip install "instacolor[ray]"): a local Ray '
        "instance, or the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), whose "
        "nodes all see the input and output paths",
    )
    run.add_argument(
        "--ray-gpus",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="GPU fraction each Ray actor reserves, with --ray and --device cuda (default 0)",
    )
    run.add_argument(
        "--threads",
        type=_positive,
        help="torch CPU threads of each worker (default: CPU cores / workers)",
    )
    run.add_argument(
        "--batch",
        type=_positive,
        default=None,
        help="images handed to a worker process (default 1) or Ray actor (default 8: a Ray "
        "task costs ~70 ms) at a time, with --workers > 1 or --ray; an actor that dies loses "
        "its batch. The networks still run one image at a time: no batched inference",
    )
    run.add_argument(
        "--working-size",
        type=_positive,
        default=None,
        help="square size the networks run at (default: the weights' training size, "
        "128 for instacolor's own, 256 for InstColorization's)",
    )
    run.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help='what runs the networks: torch, or onnxruntime (pip install "instacolor[onnx]"; '
        "the networks are exported to ONNX once and cached)",
    )
    run.add_argument(
        "--saturation",
        type=_saturation,
        default=1.0,
        help="factor on the predicted chroma, 0-4 (1: as predicted, the most accurate; "
        "1.5: more vivid, less often right)",
    )
    run.add_argument(
        "--max-pixels",
        type=_pixels,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images over this many pixels (default {DEFAULT_MAX_PIXELS}; 0: no limit)",
    )
    run.add_argument(
        "--manifest", metavar="FILE", help="JSON-lines manifest (default OUTDIR/manifest.jsonl)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    commands.add_parser("models", help="list the registered weights and whether they are here")
    return parser


def _one_line_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        _say(f"warning: {' '.join(str(message).split())}")

    warnings.showwarning = show


def _load_worker(args: argparse.Namespace, settings):
    """The in-process worker; a detector that cannot load is reported LOUDLY."""
    from instacolor.batch.worker import Worker

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = Worker(settings)
    for warning in caught:
        if settings.detector is not None and "WITHOUT instances" in str(warning.message):
            reason = worker.colorizer.detector_error
            _say(
                f"WARNING: DETECTOR {settings.detector!r} UNAVAILABLE - every image is colorized "
                f"WITHOUT instances (full-image network only). Reason: {reason}"
            )
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, 0)
    return worker


def _check_ray(args: argparse.Namespace) -> None:
    """Refuse ``--ray`` without Ray installed, and GPU fractions without a GPU device."""
    from instacolor.distributed import import_ray

    if args.ray != "local" and os.path.lexists(args.ray):
        raise UsageError(
            f"--ray took the input {args.ray!r} as its cluster ADDRESS: put --ray after the "
            "inputs, or write --ray=ADDRESS"
        )
    try:
        import_ray()
    except MissingDependencyError as exc:
        raise UsageError(str(exc)) from exc
    if args.ray_gpus > 0 and not args.device.startswith("cuda"):
        raise UsageError(
            f"--ray-gpus {args.ray_gpus} reserves a GPU for each actor, but --device is "
            f"{args.device!r}: add --device cuda (Ray gives each actor its GPU as cuda)"
        )


def _colorize(args: argparse.Namespace) -> int:
    from instacolor.batch.worker import Settings, run_parallel

    outdir = Path(args.output).absolute()
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"OUTDIR {outdir}: exists and is not a folder")
    if args.ray is not None:
        _check_ray(args)
    jobs, refused = discover(args.inputs, args.list, outdir, args.format)
    settings = Settings(
        weights=args.weights,
        device=args.device,
        working_size=args.working_size,
        detector=None if args.detector.lower() == "none" else args.detector,
        max_pixels=args.max_pixels,
        force=args.force,
        overwrite=args.overwrite or args.resume,
        format=args.format,
        threads=args.threads or max(1, (os.cpu_count() or 1) // args.workers),
        all_pages=args.all_pages,
        backend=args.backend,
        saturation=args.saturation,
    )
    try:  # Ray actors load their own networks: this one only checks them (on the CPU)
        worker = _load_worker(args, replace(settings, device="cpu") if args.ray else settings)
    except InstacolorError as exc:
        raise UsageError(str(exc)) from exc
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"OUTDIR {outdir}: cannot create the output folder ({exc})") from exc
    manifest = Manifest(
        Path(args.manifest).absolute() if args.manifest else outdir / "manifest.jsonl"
    )
    try:
        removed = clean_stale_temps(jobs)
        if removed:
            _say(f"removed {len(removed)} temporary file(s) left by an interrupted run")
        return _run_batch(args, settings, worker, jobs, refused, manifest, run_parallel)
    finally:
        manifest.close()


def _run_batch(args, settings, worker, jobs, refused, manifest, run_parallel) -> int:
    counts: Counter[str] = Counter()
    bar = tqdm(
        total=len(jobs) + len(refused),
        unit="img",
        file=sys.stderr,
        disable=args.no_progress,
        dynamic_ncols=True,
    )

    def on_record(record: Record) -> None:
        manifest.append(record)
        counts[record.status] += 1
        if record.status == "failed":
            _say(f"FAILED {record.input}: {record.error}")
        bar.update(1)

    def run(todo: list[Job]) -> None:
        if args.ray is not None:
            from instacolor.distributed import run_ray

            address = None if args.ray == "local" else args.ray
            run_ray(
                settings,
                todo,
                workers=args.workers,
                chunk=args.batch or RAY_CHUNK,
                on_record=on_record,
                address=address,
                num_gpus=args.ray_gpus,
            )
        elif args.workers > 1 and len(todo) > 1:
            run_parallel(
                settings, todo, workers=args.workers, chunk=args.batch or 1, on_record=on_record
            )
        else:
            for job in todo:
                on_record(worker.process(job))

    successes = read_successes(manifest.path) if args.resume else None
    try:
        run_batch(
            jobs, refused, facts=worker.facts, successes=successes, on_record=on_record, run=run
        )
    finally:
        bar.close()
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
    _say(f"{summary or 'nothing to do'}; manifest: {manifest.path}")
    return 1 if counts["failed"] else 0


def _models() -> int:
    from instacolor.weights import DEFAULT_WEIGHTS, REGISTRY, cache_dir

    print(f"weights cache: {cache_dir()} (set INSTACOLOR_CACHE to move it)")
    for name, entry in sorted(REGISTRY.items()):
        if entry.source == "random":
            where, state = "built in (random initialisation, no file)", "available"
        elif entry.source == "package":
            path = Path(str(resources.files("instacolor") / "data" / entry.files[0].name))
            where, state = str(path), "present" if path.is_file() else "MISSING"
        else:
            folder = cache_dir() / name
            present = all((folder / f.name).is_file() for f in entry.files)
            how = "downloaded on first use" if entry.source == "download" else "fetch by hand"
            where, state = str(folder), "cached" if present else f"not cached ({how})"
        default = " [default]" if name == DEFAULT_WEIGHTS else ""
        print(f"{name}{default}: {state}")
        print(f"    architecture {entry.architecture}, width {entry.width}; at {where}")
        for file in entry.files:
            print(f"    file {file.name} sha256 {file.sha256 or 'unknown'}")
        print(f"    licence: {entry.license}")
        print(f"    {entry.description}")
        if entry.homepage:
            print(f"    see {entry.homepage}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``instacolor`` command; returns the exit status.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Example:
        ``instacolor colorize scans/ -o colorized/ --resume``
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _one_line_warnings()
    try:
        if args.command == "models":
            return _models()
        return _colorize(args)
    except UsageError as exc:
        _say(f"error: {' '.join(str(exc).split())}")
        return 2
    except OSError as exc:  # the manifest or the output folder became unwritable
        _say(f"error: the batch stopped: {exc}; run again with --resume once it is fixed")
        return 1
    except KeyboardInterrupt:
        _say("interrupted; finished outputs are complete: run again with --resume to go on")
        return 130
