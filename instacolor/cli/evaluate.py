"""``instacolor evaluate`` and ``instacolor tune``: score weights on test sets, pick settings.

    instacolor evaluate --weights default --data "$INSTACOLOR_DATA/eval/kodak24"
    instacolor evaluate --weights default --coco "$INSTACOLOR_DATA/coco128" --holdout-every 4 \
        --hints 0,1,2,5,10,20,50 --json scores.json
    instacolor tune --weights runs/v5.safetensors --data "$INSTACOLOR_DATA/train" --every 115 \
        --decodings regression annealed-mean:0.38 annealed-mean:0.38:0.75

``evaluate`` scores the TEST sets: each photo of ``--data`` (every ``--every``-th) at
256x256 and at full resolution beside the gray baseline, then the confidence
calibration; with ``--coco`` the held-out scenes (every ``--holdout-every``-th, the
scenes training never sees) in five modes with their ground-truth instances; with
``--hints`` the oracle-hint curve (and, with ``--coco``, one true colour per instance).
``tune`` sweeps working size x saturation x decoding on VALIDATION photos (``--data``
every ``--every``-th, the ``--coco`` training scenes: never the held-out ones) and
prints the best setting and the decoding rule's choice. Two commands, so that settings
are never picked on the sets they are then scored on.

Both print Markdown to stdout and, with ``--json FILE``, write the results (NaN as null,
infinities as the strings "inf"/"-inf"); ``--markdown FILE`` writes the printed report.
Files are written at the end, each atomically; a usage error (exit 2) writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import warnings
from pathlib import Path

from instacolor.cli import arguments

__all__ = ["add_evaluate_parser", "add_tune_parser", "run_evaluate", "run_tune"]


def _ks(text: str) -> list[int]:
    """``K[,K...]`` integers >= 0, sorted and unique."""
    try:
        ks = sorted({int(k) for k in text.split(",")})
    except ValueError:
        ks = [-1]
    if not ks or ks[0] < 0:
        raise argparse.ArgumentTypeError(f"expected K[,K...] integers >= 0, received {text!r}")
    return ks


def _modes(text: str) -> list[str]:
    from instacolor.evaluation.hints import HINT_MODES

    modes = [m for m in text.split(",") if m]
    if not modes or set(modes) - set(HINT_MODES):
        raise argparse.ArgumentTypeError(
            f"expected modes from {sorted(HINT_MODES)}, received {text!r}"
        )
    return modes


def _at_least(minimum: int):
    """The argparse type of an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {text!r}")
        return value

    return parse


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report here")
    p.add_argument(
        "--threads", type=arguments.positive, default=2, help="torch CPU threads (default 2)"
    )


def add_evaluate_parser(commands) -> argparse.ArgumentParser:
    """Add ``instacolor evaluate`` to the subcommands of the ``instacolor`` parser."""
    p = commands.add_parser(
        "evaluate",
        help="score weights on colour photos and held-out COCO scenes (PSNR, SSIM, LPIPS...)",
        description="Score weights on test sets: colour photos made gray, colorized and "
        "compared with the originals, beside the gray baseline (ab = 0).",
    )
    arg = p.add_argument
    arg("--weights", default="default", help="name, .safetensors or folder")
    arg("--data", type=Path, metavar="FOLDER", help="folder of colour photos (recursive)")
    arg("--every", type=arguments.positive, default=1, help="with --data: every Nth photo")
    arg("--coco", type=Path, metavar="FOLDER", help="COCO folder (annotations + images)")
    arg(
        "--holdout-every",
        type=arguments.positive,
        default=4,
        help="with --coco: score every Nth scene, the held-out split (default 4)",
    )
    arg("--limit", type=_at_least(0), default=0, help="at most this many photos or scenes (0: all)")
    arg("--working-size", type=arguments.positive, help="the networks' square size")
    arg("--saturation", type=arguments.saturation, default=1.0, help="factor on the chroma")
    arg("--decode", type=arguments.decoding, metavar="SPEC", help=arguments.DECODE_HELP)
    arg("--no-lpips", action="store_true", help="do not compute LPIPS")
    arg("--lpips-alexnet", type=Path, metavar="FILE", help="AlexNet state dict for LPIPS")
    arg("--hints", type=_ks, metavar="K,K", help="oracle-hint curve at these K (e.g. 0,10)")
    arg(
        "--hint-modes",
        type=_modes,
        help="with --hints: propagation, channels and/or both, comma-separated (default: all)",
    )
    arg("--grid", type=Path, metavar="FILE", help="figure of --data: gray | model | original")
    arg("--grid-images", type=arguments.positive, default=6, help="photos in the --grid figure")
    _outputs(p)
    return p


def add_tune_parser(commands) -> argparse.ArgumentParser:
    """Add ``instacolor tune`` to the subcommands of the ``instacolor`` parser."""
    p = commands.add_parser(
        "tune",
        help="pick working size, saturation and decoding on validation photos",
        description="Sweep working size x saturation x decoding on validation photos "
        "(never the sets 'instacolor evaluate' scores) and print the best.",
    )
    arg = p.add_argument
    arg("--weights", default="default", help="name, .safetensors or folder")
    arg("--data", type=Path, metavar="FOLDER", help="folder of colour validation photos")
    arg("--every", type=arguments.positive, default=1, help="with --data: every Nth photo")
    arg("--coco", type=Path, metavar="FOLDER", help="COCO folder: its training scenes")
    arg("--holdout-every", type=_at_least(2), default=4, help="with --coco: the held-out split")
    arg("--sizes", type=arguments.positive, nargs="+", default=[128], help="working sizes")
    arg("--saturations", type=arguments.saturation, nargs="+", default=[1.0])
    arg(
        "--decodings",
        type=arguments.decoding,
        nargs="+",
        default=["regression"],
        metavar="SPEC",
        help="regression, annealed-mean[:T[:MIX]] (weights with a trained class head)",
    )
    arg("--min-colorfulness", type=float, default=0.6, help="the decoding rule's threshold")
    _outputs(p)
    return p


def _plain(value):
    """``value`` with dataclasses as dicts, tuples as lists and non-finite floats JSON-safe."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    return value


def _check_targets(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse output files that are folders or would replace an input, before any work."""
    from instacolor.errors import UsageError

    sources = {p.resolve() for p in inputs}
    for option in ("json", "markdown", "grid"):
        target = getattr(args, option, None)
        if target is None:
            continue
        if target.is_dir():
            raise UsageError(f"--{option}: expected a file to write, received the folder "
                             f"{str(target)!r}")  # fmt: skip
        if target.resolve() in sources:
            raise UsageError(
                f"--{option}: expected a new file, received {str(target)!r}, one of the "
                "photos being scored; name another file"
            )


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _Report:
    """Markdown sections printed as they come, kept for ``--markdown``; results for JSON."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.results: dict = {}

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def finish(self, args: argparse.Namespace) -> None:
        if args.json is not None:
            _write(args.json, json.dumps(_plain(self.results), indent=2) + "\n")
        if args.markdown is not None:
            _write(args.markdown, "\n".join(self.lines) + "\n")


def _colorizers(args: argparse.Namespace):
    """The Colorizer and, with ``--hints``, one per hint mode (weights loaded once each)."""
    from instacolor import Colorizer
    from instacolor.evaluation.hints import HINT_MODES

    options = {
        "working_size": args.working_size,
        "saturation": args.saturation,
        "decode": args.decode,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colorizer = Colorizer(args.weights, **options)
        hinted = {}
        if args.hints:
            modes = args.hint_modes or list(HINT_MODES)
            hinted = {m: Colorizer(args.weights, **options, **HINT_MODES[m]) for m in modes}
    return colorizer, hinted


def _lpips(args: argparse.Namespace):
    """``(the LPIPS metric or None, the line saying which weights are missing or None)``."""
    from instacolor.perceptual import Lpips, lpips_unavailable

    if args.no_lpips:
        return None, None
    missing = None if args.lpips_alexnet else lpips_unavailable()
    if missing:
        return None, missing
    return Lpips(alexnet=args.lpips_alexnet, download=False), None


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``instacolor evaluate`` with parsed ``args``; prints the report; returns 0.

    Errors (no set given, a missing or empty folder, unusable weights or LPIPS weights,
    an output that would replace a photo) raise :class:`~instacolor.errors.InstacolorError`
    before any photo is scored, so that the command exits 2 having written nothing.
    """
    import torch

    from instacolor.errors import UsageError
    from instacolor.evaluation import coco as coco_protocol
    from instacolor.evaluation.folder import calibration, evaluate_folder, write_grid
    from instacolor.evaluation.hints import hint_curve
    from instacolor.evaluation.scoring import image_files, label, read_rgb

    if not (args.data or args.coco):
        raise UsageError("expected --data FOLDER and/or --coco FOLDER, received neither")
    if args.grid and not args.data:
        raise UsageError("--grid: expected --data FOLDER to draw the figure from")
    files = image_files(args.data, every=args.every, limit=args.limit) if args.data else []
    scenes = []
    if args.coco:
        image_files(args.coco, option="--coco")
        scenes = coco_protocol.coco_heldout(args.coco, args.holdout_every)[: args.limit or None]
        if not scenes:
            raise UsageError(
                f"--coco: expected annotated scenes among every {args.holdout_every}th image of "
                f"{str(args.coco)!r}, found none"
            )
    _check_targets(args, files + [s.path for s in scenes])
    torch.set_num_threads(args.threads)
    colorizer, hinted = _colorizers(args)
    lpips, missing = _lpips(args)  # a wrong LPIPS file: refused before anything is printed
    report = _Report()
    report.say(f"weights: {label(colorizer.loaded.name)} (sha256 {colorizer.loaded.sha256})")
    report.say(f"working size: {colorizer.working_size}, saturation: {colorizer.saturation}")
    decoding, line = colorizer.decoding, f"decode: {colorizer.decoding.mode}"
    if decoding.mode != "regression":
        line += f", temperature {decoding.temperature}"
        line += f", mix {decoding.mix}" if decoding.mix < 1 else ""
    report.say(line)
    if missing:
        report.say(missing)
    report.say()
    results = report.results
    results["weights"] = {"name": colorizer.loaded.name, "sha256": colorizer.loaded.sha256}
    results["settings"] = {
        "working_size": colorizer.working_size,
        "saturation": colorizer.saturation,
        "decoding": dataclasses.asdict(decoding),
        "lpips": lpips is not None,
    }
    if files:
        name = label(args.data.name)
        small, full = evaluate_folder(colorizer, files, lpips)
        report.say(small.markdown() + "\n\n" + full.markdown() + "\n")
        calib = calibration(colorizer, files)
        report.say(calib.markdown() + "\n")
        folder = {"images": len(files), "256x256": small, "full": full, "calibration": calib}
        if args.hints:
            items = [(i, read_rgb(p)) for i, p in enumerate(files)]
            curve = hint_curve(hinted, items, args.hints, f"oracle hints, {name}")
            report.say(curve.markdown() + "\n")
            folder["hints"] = curve
        results["data"] = folder
    if args.coco:
        name = label(args.coco.name)
        coco = coco_protocol.evaluate_coco(
            colorizer, args.coco, scenes, lpips, every=args.holdout_every
        )
        report.say(coco.markdown() + "\n")
        results["coco"] = {"scenes": len(scenes), "held_out": coco}
        if args.hints:
            items = [(i, read_rgb(s.path)) for i, s in enumerate(scenes)]
            curve = hint_curve(hinted, items, args.hints, f"oracle hints, {name} held-out")
            report.say(curve.markdown() + "\n")
            colours = coco_protocol.instance_colors(colorizer, args.coco, scenes)
            report.say(colours.markdown())
            results["coco"].update(hints=curve, instance_colors=colours)
    if args.grid:
        image = write_grid(colorizer, files[: args.grid_images], args.grid)
        report.say(f"wrote {image}")
    report.finish(args)
    return 0


def run_tune(args: argparse.Namespace) -> int:
    """Run ``instacolor tune`` with parsed ``args``; prints every setting; returns 0.

    Every setting (weights at each size and saturation, each decoding spec) and set is
    checked before the first photo is scored; a bad one raises
    :class:`~instacolor.errors.InstacolorError` (exit 2, nothing written).
    """
    import torch

    from instacolor import Colorizer
    from instacolor.errors import UsageError
    from instacolor.evaluation.coco import coco_training
    from instacolor.evaluation.decodings import load_set, sweep
    from instacolor.evaluation.scoring import image_files, label

    if not (args.data or args.coco):
        raise UsageError("expected --data FOLDER and/or --coco FOLDER, received neither")
    specs = list(args.decodings)
    sets: dict[str, list[Path]] = {}
    if args.data:
        files = image_files(args.data, every=args.every)
        sets[f"{label(args.data.name)} every {args.every}"] = files
    if args.coco:
        image_files(args.coco, option="--coco")
        training = coco_training(args.coco, args.holdout_every)
        if not training:
            raise UsageError(f"--coco: expected training scenes in {str(args.coco)!r}, found none")
        sets[f"{label(args.coco.name)} training scenes"] = training
    _check_targets(args, [p for files in sets.values() for p in files])
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colorizers = {
            (z, v): Colorizer(args.weights, working_size=z, saturation=v)
            for z, v in itertools.product(args.sizes, args.saturations)
        }
    loaded = next(iter(colorizers.values())).loaded
    report = _Report()
    report.say(f"weights: {label(loaded.name)} (sha256 {loaded.sha256})\n")
    report.results["weights"] = {"name": loaded.name, "sha256": loaded.sha256}
    sweeps = []
    for name, files in sets.items():
        images = load_set(files)
        done = sweep(
            name,
            images,
            colorizers,
            specs,
            min_colorfulness=args.min_colorfulness,
            on_start=lambda s: report.say(s.markdown()),  # the title and head, before any row
            on_setting=lambda s: report.say(s.markdown()),
        )
        report.say()
        sweeps.append(done)
    for done in sweeps:
        best = done.best()
        report.say(
            f"best on {done.name}: working size {best.working_size}, saturation "
            f"{best.saturation:g}, {best.decoding} ({best.psnr:.3f} dB)"
        )
    if len(specs) > 1:
        for done in sweeps:
            chosen = done.chosen()
            dec = chosen.decoding if chosen else "regression"
            why = f"{chosen.psnr:.3f} dB" if chosen else "none reaches the colourfulness"
            report.say(f"default decoding by the rule on {done.name}: {dec} ({why})")
    report.results["sets"] = [{"sweep": s, "best": s.best(), "chosen": s.chosen()} for s in sweeps]
    report.finish(args)
    return 0
