"""Per-image latency of the torch and onnxruntime backends; prints a Markdown table.

Configurations: the shipped default weights (width 16) and width-64 weights in
InstColorization's official folder format (seeded random values: the architecture
sets the cost, not the values), 0 and 8 instances, working size 256, on a 640x480
image (the synthetic scene and boxes of ``common.py``). Both backends use the same
number of CPU threads. Per configuration: 1 warm-up, then ``--repeats`` timed
``Colorizer.colorize`` calls; the table gives the median of the whole call and of its
network stage (the part the backend changes). Not a test.

    .venv/bin/python tools/bench.py onnx --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .common import other_cores, random_boxes, stamp, synthetic_gray

if TYPE_CHECKING:
    from instacolor import Colorizer

H, W = 480, 640


def official_folder(width: int, root: Path) -> Path:
    """Seeded random networks of ``width`` saved as the reference's three ``.pth`` files."""
    import torch

    from instacolor.models.network import InstColorNet

    folder = root / f"official-random-w{width}"
    if not folder.is_dir():
        torch.manual_seed(0)
        net = InstColorNet(width).eval()
        folder.mkdir(parents=True)
        for file, part in (
            ("latest_net_GComp.pth", net.full),
            ("latest_net_G.pth", net.instance),
            ("latest_net_GF.pth", net.fusion),
        ):
            torch.save(part.state_dict(), folder / file)
    return folder


def measure(colorizer: Colorizer, n: int, repeats: int) -> tuple[float, float, float]:
    """Median seconds of the whole call and of the network stage; cores used by others."""
    image = synthetic_gray(H, W)
    boxes = random_boxes(n, H, W) if n else None
    colorizer.colorize(image, instances=boxes)  # warm-up
    since = stamp()
    total, network = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        result = colorizer.colorize_full(image, instances=boxes)
        total.append(time.perf_counter() - t)
        network.append(result.timings["network"])
    return statistics.median(total), statistics.median(network), other_cores(since)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py onnx``."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--working-size", type=int, default=256)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ic-bench")


def run(args: argparse.Namespace) -> int:
    """Time both backends on both weights, 0 and 8 instances; prints the table."""
    import torch

    from instacolor import Colorizer

    torch.set_num_threads(args.threads)
    os.environ.setdefault("INSTACOLOR_CACHE", str(args.cache / "cache"))
    weights = {"default (w16)": "default", "official w64": official_folder(64, args.cache)}
    print(
        f"threads {args.threads}, working size {args.working_size}, {W}x{H} image, "
        f"median of {args.repeats}; torch {torch.__version__}"
    )
    print("\n| weights | instances | backend | total ms | network ms | other cores busy |")
    print("|---|---|---|---|---|---|")
    for label, source in weights.items():
        for backend in ("torch", "onnxruntime"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                colorizer = Colorizer(source, working_size=args.working_size, backend=backend)
                load = time.perf_counter() - t
            print(f"<!-- {label} {backend}: loaded (and exported) in {load:.1f} s -->")
            for n in (0, 8):
                total, network, others = measure(colorizer, n, args.repeats)
                print(
                    f"| {label} | {n} | {backend} | {total * 1e3:.0f} | {network * 1e3:.0f} "
                    f"| {others:.2f} |",
                    flush=True,
                )
            del colorizer
    return 0
