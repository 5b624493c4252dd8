"""``instacolor video IN -o OUT``: colorize a film, stabilised along time.

Exit status: 0 done, 2 usage error (bad option, unreadable input, unsupported codec,
existing output), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); after 130 or 143
run the same command with ``--resume`` to go on from the finished chunks.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

__all__ = ["add_video_parser", "run_video"]

_EPILOG = (
    "exit status: 0 done, 2 usage error or unreadable input, 130 interrupted (Ctrl-C), 143 "
    "terminated (SIGTERM); after 130 or 143 run again with --resume: finished chunks are kept"
)


def _number(low: float, high: float, integer: bool = False):
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(
                f"expected {kind} from {low:g} to {high:g}, got {text}"
            )
        return value

    return parse


def _shown(path) -> str:
    """A path for one line of the terminal: control characters (newlines, escapes) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def add_video_parser(commands) -> None:
    """Register the ``video`` subcommand on the ``instacolor`` subparsers."""
    from instacolor.cli.arguments import DECODE_HELP, decoding, positive, saturation

    video = commands.add_parser(
        "video",
        help="colorize a video file or a folder of frames, without flicker",
        description="Colorize a video (mp4, mov, mkv, avi) or a folder of PNG/TIFF frames into "
        "a video (container and codec from OUT's extension) or a folder of PNG frames (OUT "
        "without extension). Frame count, frame rate and timestamps are kept, audio and "
        "subtitle streams are copied untouched, the luminance of every frame is kept. Colour "
        "is carried along the motion within each shot (--no-stabilize: per frame).",
        epilog=_EPILOG,
    )
    video.add_argument("input", metavar="IN", help="video file or folder of frames")
    video.add_argument("-o", "--output", required=True, metavar="OUT", help="video or folder")
    video.add_argument(
        "--no-stabilize", action="store_true", help="colour every frame on its own (flickers)"
    )
    video.add_argument(
        "--memory",
        type=_number(0.0, 0.999),
        default=0.99,
        help="weight of the colour carried from the previous frame where the motion is "
        "reliable, 0-0.999 (default 0.99; higher: steadier, slower to follow changes)",
    )
    video.add_argument(
        "--follow",
        type=_number(0.0, 1000.0),
        default=4.0,
        help="Lab units of persistent change in the network's colour at which that memory is "
        "halved, so a genuine colour change is followed within a few frames (default 4; 0: "
        "the memory alone)",
    )
    video.add_argument(
        "--cut-threshold",
        type=_number(1e-6, 1.0),
        default=0.35,
        help="histogram distance (0-1) between frames that starts a new shot (default 0.35)",
    )
    video.add_argument(
        "--flow-size",
        type=_number(64, 2048, integer=True),
        default=512,
        help="longer side of the grid flow and chroma are computed on (default 512)",
    )
    video.add_argument(
        "--hints",
        metavar="FILE",
        help='keyframe colour hints: JSON lines {"frame": N, "points": [[x, y, "#rrggbb"], '
        '...]}, carried through the rest of the shot; a line\'s "reference": PATH (or a '
        "list, relative to FILE's folder and inside it) replaces --reference from frame N on",
    )
    video.add_argument(
        "--reference",
        metavar="IMG",
        action="append",
        default=[],
        help="a colour photo to take colours from (the same place, object or uniform), "
        "applied to the first frame of every shot and carried through it; repeatable",
    )
    video.add_argument(
        "--chunk",
        type=positive,
        default=120,
        help="frames per chunk: the unit --resume keeps (default 120)",
    )
    video.add_argument(
        "--crf",
        type=_number(0, 51, integer=True),
        default=16,
        help="H.264 quality, 0-51, lower is better and bigger (default 16)",
    )
    video.add_argument(
        "--resume", action="store_true", help="go on from the finished chunks of a killed run"
    )
    video.add_argument(
        "--overwrite", action="store_true", help="replace OUT, or start an interrupted run over"
    )
    video.add_argument(
        "--manifest", metavar="FILE", help="JSON-lines manifest (default OUT.manifest.jsonl)"
    )
    video.add_argument("--weights", default="default", help="weights name or path")
    video.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda")
    video.add_argument("--working-size", type=positive, help="square size the networks run at")
    video.add_argument(
        "--detector", default="none", help="instance detector backend (default none)"
    )
    video.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    video.add_argument("--saturation", type=saturation, default=1.0, help="chroma factor, 0-4")
    video.add_argument("--decode", type=decoding, metavar="SPEC", help=DECODE_HELP)
    video.add_argument("--threads", type=positive, help="torch CPU threads")
    video.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_video(args: argparse.Namespace) -> int:
    """Run ``instacolor video``; errors propagate to ``instacolor.cli.main``."""
    import torch

    from instacolor.batch.signals import sigterm_interrupts
    from instacolor.video import Stabilization, colorize_video

    if args.threads:
        torch.set_num_threads(args.threads)
    stabilization = Stabilization(
        enabled=not args.no_stabilize,
        memory=args.memory,
        follow=args.follow,
        cut_threshold=args.cut_threshold,
        flow_size=args.flow_size,
    )
    bar = tqdm(
        total=None,
        unit="frame",
        file=sys.stderr,
        disable=args.no_progress,
        dynamic_ncols=True,
    )

    def progress(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        with sigterm_interrupts():
            report = colorize_video(
                args.input,
                args.output,
                stabilize=stabilization,
                hints=args.hints,
                reference=args.reference or None,
                chunk=args.chunk,
                crf=args.crf,
                resume=args.resume,
                overwrite=args.overwrite,
                manifest=args.manifest,
                progress=progress,
                weights=args.weights,
                device=args.device,
                working_size=args.working_size,
                detector=None if args.detector.lower() == "none" else args.detector,
                backend=args.backend,
                saturation=args.saturation,
                decode=args.decode,
            )
    finally:
        bar.close()
    done = report.frames - report.resumed_from
    tqdm.write(
        f"instacolor: {report.frames} frames, {report.shots} shot(s) -> {_shown(report.output)} "
        f"({done} colorized in {report.seconds:.1f} s, {done / max(report.seconds, 1e-9):.2f} "
        f"frames/s); manifest: {_shown(report.manifest)}",
        file=sys.stderr,
    )
    return 0
