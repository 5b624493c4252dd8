"""``instacolor review``: its arguments and what it does (``cli/main.py`` only dispatches).

Forms:

* ``instacolor review OUTDIR``: serve the batch in OUTDIR for review;
* ``instacolor review INPUTS... -o OUTDIR``: colorize first (``--resume``: what is
  complete is kept), then serve;
* ``instacolor review OUTDIR --export accepted.txt``: write the accepted outputs, one
  a line, and exit.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser

__all__ = ["add_review_parser", "run_review"]


def add_review_parser(commands) -> argparse.ArgumentParser:
    """Add the ``review`` subcommand to ``commands`` (an argparse subparsers object)."""
    review = commands.add_parser(
        "review",
        help="check, correct and accept a batch's colorizations in a local web page",
        description="Serve a local web page to review the batch in OUTDIR: grid, views, "
        "colour hints with preview, apply at full resolution, accept/reject/needs-work "
        "(OUTDIR/review.jsonl). With -o, colorize INPUTS into OUTDIR first.",
    )
    review.add_argument(
        "paths", nargs="+", metavar="OUTDIR|INPUT", help="output folder, or inputs with -o"
    )
    review.add_argument("-o", "--output", metavar="OUTDIR", help="colorize the inputs here first")
    review.add_argument("--manifest", metavar="FILE", help="default OUTDIR/manifest.jsonl")
    review.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other address is "
        "reachable from the network, and then every request needs the printed token)",
    )
    review.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name peers use to reach this server (repeatable; loopback names and "
        "the bound address are always allowed)",
    )
    review.add_argument(
        "--input-root",
        action="append",
        default=None,
        metavar="DIR",
        help="folder the inputs may lie in (repeatable; default: the deepest folder "
        "holding every input of the manifest)",
    )
    review.add_argument(
        "--max-pixels", type=int, help="largest input decoded (default 200 megapixels)"
    )
    review.add_argument(
        "--queue",
        type=int,
        default=4,
        help="re-colorizations admitted at once, running or waiting (default 4; 503 beyond)",
    )
    review.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
    review.add_argument("--no-browser", action="store_true", help="do not open a browser")
    review.add_argument("--reviewer", help="name recorded with decisions (default: the OS user)")
    review.add_argument("--export", metavar="FILE", help="write the accepted outputs and exit")
    review.add_argument("--weights", help="weights (default: the manifest's)")
    review.add_argument("--working-size", type=int, help="default: the manifest's")
    review.add_argument("--detector", help="detection backend for instances (default none)")
    review.add_argument("--device", default="cpu", help="torch device (default cpu)")
    review.add_argument(
        "--display-size", type=int, default=768, help="longest side shown and previewed"
    )
    return review


def _say(message: str) -> None:
    print(f"instacolor: {message}", file=sys.stderr)


def run_review(args: argparse.Namespace) -> int:
    """Run ``instacolor review`` (errors are raised as ``InstacolorError``)."""
    from instacolor.errors import UsageError

    outdir = args.output
    if outdir is None:
        if len(args.paths) != 1:
            raise UsageError(
                f"expected one OUTDIR, or inputs with -o OUTDIR; received {len(args.paths)} paths"
            )
        outdir = args.paths[0]
    elif not args.export:
        from instacolor.batch.run import colorize_batch
        from instacolor.batch.worker import Settings

        counts = colorize_batch(
            args.paths,
            outdir,
            Settings(weights=args.weights or "default", working_size=args.working_size),
            resume=True,
            manifest=args.manifest,
        )
        _say(", ".join(f"{counts[s]} {s}" for s in sorted(counts)))
    if args.export:
        from instacolor.review.state import Batch, ReviewLog, export_accepted

        batch = Batch(outdir, args.manifest)
        paths = export_accepted(batch, ReviewLog(batch.outdir / "review.jsonl"), args.export)
        _say(f"{len(paths)} accepted output(s) written to {args.export}")
        return 0
    from instacolor.review.server import ReviewServer, build_state

    state = build_state(
        outdir,
        manifest=args.manifest,
        reviewer=args.reviewer,
        weights=args.weights,
        working_size=args.working_size,
        detector=None if (args.detector or "none").lower() == "none" else args.detector,
        device=args.device,
        display_size=args.display_size,
        input_roots=args.input_root,
        max_pixels=args.max_pixels,
        queue=args.queue,
    )
    server = ReviewServer(state, host=args.host, port=args.port, allowed_hosts=args.allowed_host)
    _say(f"reviewing {len(state.batch.items)} image(s) at {server.url} (Ctrl-C to stop)")
    if not args.no_browser and not server.public:
        webbrowser.open(server.url)
    server.run()
    return 0
