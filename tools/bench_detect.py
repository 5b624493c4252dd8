"""CPU time of each detection backend on one 640x480 image; prints a Markdown table.

    .venv/bin/python tools/bench_detect.py            # random weights (no download needed)
    .venv/bin/python tools/bench_detect.py --official # torchvision's COCO weights, if cached

The image is a coco128 photo (or a synthetic one when the shared data is absent),
converted to L and resized to 640x480. Per backend: construction time, 1 warm-up, then
the median of ``--repeats`` timed ``detect`` calls. With random weights the network does
the same work as with trained ones except for the mask head, which runs on however many
boxes pass torchvision's internal 0.05 score floor (reported as "raw detections").
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor.detection import DetectorConfig, TorchvisionMaskRCNN
from instacolor.io.image import read_luminance

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128" / "train2017"


def test_image() -> tuple[np.ndarray, str]:
    files = sorted(COCO.glob("*.jpg")) if COCO.is_dir() else []
    if files:
        img = Image.open(files[0]).convert("L").resize((640, 480), Image.BILINEAR)
        return read_luminance(np.asarray(img))[0], files[0].name
    rng = np.random.default_rng(0)
    gray = (rng.random((480, 640)) * 255).astype(np.uint8)
    return read_luminance(gray)[0], "synthetic noise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", action="store_true", help="official torchvision weights")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    light, source = test_image()
    print(f"image: {source} as L, 640x480; torch {torch.__version__}, {args.threads} threads\n")
    print("| backend | weights | build s | detect s (median) | raw detections | kept |")
    print("|---|---|---:|---:|---:|---:|")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = TorchvisionMaskRCNN(DetectorConfig(), weights="COCO_V1" if args.official else None)
    build = time.perf_counter() - t0
    raw = []
    det.model.roi_heads.register_forward_hook(lambda m, i, o: raw.append(len(o[0][0]["boxes"])))
    det.detect(light)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        found = det.detect(light)
        times.append(time.perf_counter() - t0)
    print(
        f"| torchvision Mask R-CNN R50-FPN | {det.weights_name} | {build:.2f} | "
        f"{statistics.median(times):.2f} | {raw[-1]} | {len(found.instances)} |"
    )


if __name__ == "__main__":
    main()
