"""Time hint propagation on one photo: seconds per stage, without and with point hints.

    python tools/bench.py hints "$INSTACOLOR_DATA"/eval/kodak24/kodim05.png --threads 1

The photo is made gray and resized to ``--side`` x ``--side``; ``--hints`` points (seeded
positions, one colour) are given; for ``"working"`` and ``"full"`` propagation the best
of 3 runs of each of no hints / hints is printed (shipped weights, their working size).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def time_hints(image: Path, *, side: int = 1000, count: int = 10, repeats: int = 3) -> str:
    """Seconds per stage for a ``side`` x ``side`` gray image with ``count`` hints."""
    import torch

    from instacolor import Colorizer

    gray = Image.open(image).convert("L").resize((side, side), Image.BICUBIC)
    gray = np.asarray(gray)
    rng = np.random.default_rng(0)
    hints = [(int(x), int(y), "#c03020", 1) for x, y in rng.integers(1, side - 1, (count, 2))]
    lines = [
        f"{side}x{side}, {count} hints, best of {repeats}, torch threads {torch.get_num_threads()}"
    ]
    for mode in ("working", "full"):
        colorizer = Colorizer("default", hint_propagation=mode)
        colorizer.colorize(gray)  # warm-up
        for label, h in (("no hints", None), (f"{count} hints", hints)):
            runs = [colorizer.colorize_full(gray, hints=h).timings for _ in range(repeats)]
            best = min(runs, key=lambda t: t["total"])
            cells = " ".join(f"{k} {v:.2f}" for k, v in best.items() if k != "detect")
            lines.append(f"{mode:8s} {label:9s} {cells}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py hints``."""
    parser.add_argument("image", type=Path)
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--hints", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    """Set the threads and print the timings."""
    import torch

    torch.set_num_threads(args.threads)
    print(time_hints(args.image, side=args.side, count=args.hints))
    return 0
