"""The ``instacolor`` command: argument parsing and the ``colorize`` and ``models`` commands.

The batch itself is :func:`instacolor.batch.run.colorize_batch`; this module turns the
arguments into its settings and runner and reports: one stderr line per failure, a
progress bar, a summary.

Exit status: 0 when every input was colorized or skipped (already in colour, already
complete), 1 when at least one input failed, 2 on a usage error (bad option, missing
input, unusable output folder, unknown weights), 130 when interrupted (Ctrl-C), 143
when terminated (SIGTERM, as batch schedulers and ``timeout`` send).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from instacolor import __version__
from instacolor.batch.manifest import Record
from instacolor.batch.signals import Terminated
from instacolor.cli import arguments
from instacolor.cli.evaluate import add_evaluate_parser, add_tune_parser, run_evaluate, run_tune
from instacolor.cli.export import add_export_parser, run_export
from instacolor.cli.finetune import add_finetune_parser, run_finetune
from instacolor.cli.models import models_report
from instacolor.cli.train import add_train_parser, run_train
from instacolor.cli.video import add_video_parser, run_video
from instacolor.errors import DetectorUnavailableWarning, InstacolorError, UsageError
from instacolor.io.archival import DEFAULT_MAX_PIXELS
from instacolor.review.cli import add_review_parser, run_review

if TYPE_CHECKING:
    from instacolor.batch.run import Plan, Runner

__all__ = ["build_parser", "main"]

_PROG = "instacolor"
_DESCRIPTION = "Colorize grayscale photographs (JPEG, PNG, TIFF; 8 or 16 bit), in batches."
_EPILOG = (
    "exit status: 0 all inputs done or skipped, 1 some inputs failed (see the manifest), "
    "2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); after 130 or 143 "
    "the finished outputs are complete: run again with --resume"
)


def _say(message: str) -> None:
    tqdm.write(f"{_PROG}: {message}", file=sys.stderr)


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
    run.add_argument(
        "--list",
        metavar="FILE",
        help="UTF-8 text file with one input file per line (LF or CRLF); blank lines and "
        "lines starting with # are skipped; relative paths are relative to FILE's folder",
    )
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
        type=arguments.positive,
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
        type=arguments.fraction,
        default=0.0,
        metavar="FRACTION",
        help="GPU fraction each Ray actor reserves, with --ray and --device cuda (default 0)",
    )
    run.add_argument(
        "--threads",
        type=arguments.positive,
        help="torch CPU threads of each worker (default: CPU cores / workers)",
    )
    run.add_argument(
        "--batch",
        type=arguments.positive,
        default=None,
        help="images handed to a worker process (default 1) or Ray actor (default 8: a Ray "
        "task costs ~70 ms) at a time, with --workers > 1 or --ray; an actor that dies loses "
        "its batch. The networks still run one image at a time: no batched inference",
    )
    run.add_argument(
        "--working-size",
        type=arguments.positive,
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
        type=arguments.saturation,
        default=1.0,
        help="factor on the predicted chroma, 0-4 (1: as predicted, the most accurate; "
        "1.5: more vivid, less often right)",
    )
    run.add_argument(
        "--decode", type=arguments.decoding, metavar="SPEC", help=arguments.DECODE_HELP
    )
    run.add_argument(
        "--confidence",
        action="store_true",
        help="also write NAME.confidence.png (8-bit, 255 = sure) beside each output",
    )
    run.add_argument(
        "--hints",
        metavar="FILE",
        help='colour hints: JSON lines {"input": PATH, "points": [[x, y, "#rrggbb"], ...], '
        '"instance_colors": {"0": COLOUR}}; without a line, NAME.hints.json beside an input',
    )
    run.add_argument(
        "--reference",
        metavar="PATH",
        action="append",
        default=[],
        help="a colour photo to take colours from (the same place, object or uniform); "
        "repeatable; a gray or unreadable one stops the batch before the first image. Each "
        "input also takes its own: NAME.reference.jpg/.png/.tif beside it and the "
        '"reference" path(s) of its hints (relative to the hints file, inside its folder)',
    )
    run.add_argument(
        "--max-pixels",
        type=arguments.pixels,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images over this many pixels (default {DEFAULT_MAX_PIXELS}; 0: no limit)",
    )
    run.add_argument(
        "--manifest", metavar="FILE", help="JSON-lines manifest (default OUTDIR/manifest.jsonl)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    models = commands.add_parser(
        "models", help="list the registered weights and whether they are here"
    )
    models.add_argument(
        "files", nargs="*", help="also describe these weights files (e.g. fine-tuned ones)"
    )
    add_review_parser(commands)
    add_video_parser(commands)
    add_train_parser(commands)
    add_export_parser(commands)
    add_finetune_parser(commands)
    add_evaluate_parser(commands)
    add_tune_parser(commands)
    return parser


def _one_line_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if issubclass(category, DetectorUnavailableWarning):
            _say(f"WARNING: {text}")  # the whole batch runs without instances: loudly
        else:
            _say(f"warning: {text}")

    warnings.showwarning = show


def _runner(args: argparse.Namespace) -> Runner:
    """The runner of ``--workers``, ``--batch`` and ``--ray``; refuses a misplaced ``--ray``."""
    from instacolor.batch.run import Runner

    if args.ray is not None and args.ray != "local" and os.path.lexists(args.ray):
        raise UsageError(
            f"--ray took the input {args.ray!r} as its cluster ADDRESS: put --ray after the "
            "inputs, or write --ray=ADDRESS"
        )
    return Runner(
        workers=args.workers,
        chunk=args.batch,
        ray=args.ray is not None,
        address=None if args.ray in (None, "local") else args.ray,
        num_gpus=args.ray_gpus,
    )


class _Report:
    """Progress bar and one stderr line per failure, as the records arrive."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.bar: tqdm | None = None
        self.manifest: Path | None = None

    def start(self, plan: Plan) -> None:
        self.manifest = plan.manifest
        if plan.removed:
            _say(f"removed {len(plan.removed)} temporary file(s) left by an interrupted run")
        self.bar = tqdm(
            total=plan.total,
            unit="img",
            file=sys.stderr,
            disable=not self.progress,
            dynamic_ncols=True,
        )

    def record(self, record: Record) -> None:
        if record.status == "failed":
            _say(f"FAILED {record.input}: {record.error}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _colorize(args: argparse.Namespace) -> int:
    from instacolor.batch.run import colorize_batch
    from instacolor.batch.worker import Settings, claim_process
    from instacolor.hints import read_references

    read_references(args.reference or None)  # a bad reference: refused before any work
    runner = _runner(args)
    settings = Settings(
        weights=args.weights,
        device=args.device,
        working_size=args.working_size,
        detector=None if args.detector.lower() == "none" else args.detector,
        max_pixels=args.max_pixels,
        force=args.force,
        overwrite=args.overwrite,
        format=args.format,
        threads=args.threads,
        all_pages=args.all_pages,
        backend=args.backend,
        saturation=args.saturation,
        decode=args.decode,
        confidence=args.confidence,
        hints_file=args.hints,
        references=tuple(args.reference),
    )
    claim_process(settings)  # this process is the batch's: its threads, malloc kept
    report = _Report(progress=not args.no_progress)
    try:
        counts = colorize_batch(
            args.inputs,
            args.output,
            settings,
            runner=runner,
            list_file=args.list,
            resume=args.resume,
            manifest=args.manifest,
            on_start=report.start,
            on_record=report.record,
        )
    finally:
        report.close()
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
    _say(f"{summary or 'nothing to do'}; manifest: {report.manifest}")
    return 1 if counts["failed"] else 0


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
            return models_report(args.files)
        if args.command == "review":
            return run_review(args)
        if args.command == "video":
            return run_video(args)
        if args.command == "train":
            return run_train(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "finetune":
            return run_finetune(args)
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "tune":
            return run_tune(args)
        return _colorize(args)
    except InstacolorError as exc:  # before the first image: inputs, output, weights
        _say(f"error: {' '.join(str(exc).split())}")
        return 2
    except BrokenPipeError:  # the reader of our output went away (``| head``): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush into the closed pipe
        return 141  # as a shell reports a command ended by SIGPIPE
    except OSError as exc:  # the manifest or the output folder became unwritable
        _say(f"error: the batch stopped: {exc}; run again with --resume once it is fixed")
        return 1
    except Terminated as exc:
        _say("terminated (SIGTERM); finished outputs are complete: run again with --resume")
        return exc.exit_status
    except KeyboardInterrupt:
        _say("interrupted; finished outputs are complete: run again with --resume to go on")
        return 130
