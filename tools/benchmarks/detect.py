"""CPU time of each detection backend on one 640x480 image; prints a Markdown table.

    .venv/bin/python tools/bench.py detect              # random weights (no download needed)
    .venv/bin/python tools/bench.py detect --official   # official weights, where cached
    .venv/bin/python tools/bench.py detect --sam vit_b vit_h

The image is a coco128 photo (``$INSTACOLOR_DATA/coco128``; a synthetic one without it), converted
to L and resized to 640x480. Per backend: construction time, one warm-up, then the median
of ``--repeats`` timed ``detect`` calls. With random weights the networks do the same work
as trained ones except the mask heads, which run on however many boxes pass the internal
0.05 score floor (reported as "raw detections"; at most 100; detectron2's random heads
are run with no floor so that its mask head, too, sees 100 boxes). The SAM rows time the
refinement alone (one image embedding at 1024 px + one prompt batch of 8 boxes).
Detectron2 rows appear when detectron2 is importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

COCO = Path(os.environ.get("INSTACOLOR_DATA", "data")) / "coco128" / "train2017"


def test_image() -> tuple[np.ndarray, str]:
    """The L plane of the first coco128 photo at 640x480 (random noise without it); its name."""
    from instacolor.io.image import read_luminance

    files = sorted(COCO.glob("*.jpg")) if COCO.is_dir() else []
    if files:
        img = Image.open(files[0]).convert("L").resize((640, 480), Image.BILINEAR)
        return read_luminance(np.asarray(img))[0], files[0].name
    rng = np.random.default_rng(0)
    gray = (rng.random((480, 640)) * 255).astype(np.uint8)
    return read_luminance(gray)[0], "synthetic noise"


def _time(build: Callable[[], object], run: Callable[[object], int], repeats: int):
    """(build s, median run s, last run's result)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = build()
    built = time.perf_counter() - t0
    run(obj)
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run(obj)
        times.append(time.perf_counter() - t0)
    return built, statistics.median(times), out


def _raw_counter(module: torch.nn.Module, count: Callable[[object], int]) -> list[int]:
    raw: list[int] = []
    module.register_forward_hook(lambda m, i, o: raw.append(count(o)))
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py detect``."""
    parser.add_argument("--official", action="store_true", help="official weights (cached)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sam", nargs="*", default=["vit_b"], help="SAM models to time")


def run(args: argparse.Namespace) -> int:
    """Time each backend that can run here; prints the table."""
    import torch

    from instacolor.detection import DetectorConfig, SamRefiner, TorchvisionMaskRCNN
    from instacolor.structures import Instances

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="torch.meshgrid")  # raised inside detectron2
    light, source = test_image()
    print(f"image: {source} as L, 640x480; torch {torch.__version__}, {args.threads} threads\n")
    print("| backend | weights | build s | detect s (median) | raw detections | kept |")
    print("|---|---|---:|---:|---:|---:|")
    config = DetectorConfig()
    # detectron2's random heads score every box below 0.05, so its mask head would not run at
    # all; with no score floor it runs on 100 boxes, as torchvision's random heads do
    busy = DetectorConfig(score_threshold=0.0)

    def row(name, weights, built, seconds, raw, kept):
        print(f"| {name} | {weights} | {built:.2f} | {seconds:.2f} | {raw} | {kept} |")

    for min_size in (800, 480):
        det_weights = "COCO_V1" if args.official else None
        holder = {}

        def build(min_size=min_size, det_weights=det_weights, holder=holder):
            det = TorchvisionMaskRCNN(config, weights=det_weights, min_size=min_size)
            holder["raw"] = _raw_counter(det.model.roi_heads, lambda o: len(o[0][0]["boxes"]))
            return det

        built, seconds, found = _time(build, lambda d: d.detect(light), args.repeats)
        name = f"torchvision Mask R-CNN R50-FPN, min_size {min_size}"
        row(name, found.backend.split(":")[1], built, seconds, holder["raw"][-1],
            len(found.instances))  # fmt: skip

    if importlib.util.find_spec("detectron2") is not None:
        from instacolor.detection.detectron2_backend import Detectron2Detector

        for semantic in (None, "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"):
            holder = {}

            def build(semantic=semantic, holder=holder):
                det = Detectron2Detector(
                    config if args.official else busy,
                    semantic_model=semantic,
                    weights="official" if args.official else None,
                )
                holder["raw"] = _raw_counter(det.model.roi_heads, lambda o: len(o[0][0]))
                return det

            built, seconds, found = _time(build, lambda d: d.detect(light), args.repeats)
            name = "detectron2 Mask R-CNN X101-FPN" + (" + Panoptic FPN R101" if semantic else "")
            row(name, found.backend.split(":", 1)[1], built, seconds, holder["raw"][-1],
                len(found.instances))  # fmt: skip
    else:
        print("| detectron2 | not installed (tools/install_detectron2.py) | | | | |")

    h, w = light.shape
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, w / 2, 8), rng.uniform(0, h / 2, 8)
    boxes = np.stack([x0, y0, x0 + rng.uniform(20, w / 2, 8), y0 + rng.uniform(20, h / 2, 8)], 1)
    boxes = Instances.from_boxes(boxes, (h, w))
    for model in args.sam:
        built, seconds, refined = _time(
            lambda m=model: SamRefiner(
                model=m, checkpoint="official" if args.official else None, progress=False
            ),
            lambda r: r.refine(light, boxes),
            args.repeats,
        )
        row(f"segment-anything {model} refining 8 boxes", "official" if args.official else
            "random", built, seconds, "-", len(refined))  # fmt: skip

    return 0
