"""``instacolor finetune``: adapt the weights to a collection's own colour photos on a CPU.

    instacolor finetune PHOTOS -o OUT.safetensors [--from WEIGHTS] [--minutes 15]
    instacolor finetune PHOTOS -o OUT.safetensors --resume     # after a stop or a kill

Writes OUT.safetensors (use it with ``--weights OUT.safetensors`` or ``Colorizer(OUT)``),
OUT.finetune.json (the report) and OUT.finetune.png (gray | before | after | original).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

__all__ = ["add_finetune_parser", "run_finetune"]


def add_finetune_parser(commands) -> argparse.ArgumentParser:
    """Add ``instacolor finetune`` to the subcommands of the ``instacolor`` parser."""
    p = commands.add_parser(
        "finetune",
        help="fine-tune the weights on a folder of a collection's colour photos (CPU)",
        description=__doc__.splitlines()[0],
    )
    arg = p.add_argument
    arg("photos", type=Path, help="folder of the collection's colour photos (recursive)")
    arg("-o", "--out", type=Path, required=True, help="new weights file (.safetensors)")
    arg("--from", dest="base", default="default", help="weights to start from (name or file)")
    arg("--minutes", type=float, default=15.0, help="time budget of the run (default 15)")
    arg(
        "--steps",
        type=int,
        default=None,
        help="stop after this many steps (within --minutes): a run that gives the same "
        "weights on a slow or busy machine",
    )
    arg(
        "--holdout",
        type=float,
        default=0.1,
        help="fraction of the photos held out for scoring (default 0.1, at least 10 photos)",
    )
    arg("--resume", action="store_true", help="continue a stopped run (OUT.safetensors.work/)")
    arg("--lr", type=float, default=3e-4, help="learning rate (default 3e-4, cosine decay)")
    arg(
        "--loss",
        choices=("huber", "l2"),
        default="huber",
        help="huber (nearly L1: saturated colours, the default) or l2 (the PSNR optimum)",
    )
    arg(
        "--guide",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give an unguided base the pretrained encoder's guidance and train it too "
        "(the default; --no-guide: the base's own decoder only)",
    )
    arg("--batch", type=int, default=16, help="crops per step (default 16)")
    arg("--seed", type=int, default=0, help="seed of the split and the crops")
    arg("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    arg("--no-progress", action="store_true", help="no progress bar")
    return p


def run_finetune(args: argparse.Namespace) -> int:
    """Run ``instacolor finetune`` with parsed ``args``; prints the report; returns 0."""
    from instacolor.train.finetune import finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    report = finetune(
        args.photos,
        args.out,
        base=args.base,
        minutes=args.minutes,
        steps=args.steps,
        holdout=args.holdout,
        resume=args.resume,
        batch_size=args.batch,
        lr=args.lr,
        loss=args.loss,
        guide=args.guide,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(report.text(), flush=True)
    return 0
