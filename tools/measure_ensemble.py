"""Two weights' colours averaged, against each alone, on validation photos.

    python tools/measure_ensemble.py --a default --b V6B.safetensors --data TRAIN --every 115
    python tools/measure_ensemble.py --b V6B.safetensors --coco COCO128 --holdout-every 4
    python tools/measure_ensemble.py --a default --b V6B.safetensors --data FOLDER

Each photo's gray version (its full resolution) is colorized by both weights (full-image
network, each weights' default decoding, no detector); the output's ab is
``(1 - w) ab_a + w ab_b`` on the shared L, and PSNR and colourfulness are scored at 256x256
as ``instacolor tune`` scores them (``--coco``: the scenes ``--holdout-every`` does NOT
hold out, i.e. ``tune``'s validation scenes). Beside them, three confidence maps scored by
``pooled_calibration`` against the blend's per-pixel ab error, all at 256x256 (outputs and
originals squashed, the head's map bilinearly resized): the head of ``b``
(``ColorizeResult.confidence``), the agreement ``-|ab_a - ab_b|``, and their product
``conf_b * exp(-|ab_a - ab_b| / 20)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from instacolor import Colorizer
from instacolor.color import lab_to_rgb, rgb_to_lab
from instacolor.evaluation.coco import coco_training
from instacolor.evaluation.folder import pooled_calibration
from instacolor.evaluation.scoring import ab_planes, gray_plane, image_files, read_rgb, small
from instacolor.metrics import colorfulness, psnr

MIXES = (0.0, 0.25, 0.5, 0.6, 0.75, 1.0)


def _blend(image_a: np.ndarray, ab_a: np.ndarray, ab_b: np.ndarray, w: float) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``image_a``'s L with ``(1 - w) ab_a + w ab_b`` (each ``(2, H, W)``)."""
    light = rgb_to_lab(torch.from_numpy(image_a.astype(np.float32) / 255).permute(2, 0, 1))[:1]
    ab = torch.from_numpy((1 - w) * ab_a + w * ab_b)
    rgb = lab_to_rgb(torch.cat([light, ab])).clamp(0, 1).permute(1, 2, 0).numpy()
    return (rgb * 255 + 0.5).astype(np.uint8)


def main() -> None:
    """Parse the options, score every mix, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="default", help="weights a (w = 0)")
    parser.add_argument("--b", required=True, help="weights b (w = 1); its head gives confidence")
    parser.add_argument("--data", type=Path, help="a folder of colour photos")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--coco", type=Path, help="a COCO folder: its non-held-out scenes")
    parser.add_argument("--holdout-every", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if (args.data is None) == (args.coco is None):
        parser.error("give exactly one of --data and --coco")
    torch.set_num_threads(args.threads)
    files = (
        coco_training(args.coco, args.holdout_every)
        if args.coco
        else image_files(args.data, every=args.every)
    )
    net_a, net_b = Colorizer(weights=args.a), Colorizer(weights=args.b)
    scores: dict[float, list] = {w: [] for w in MIXES}
    errors: dict[float, list] = {w: [] for w in MIXES}
    maps: dict[str, list] = {"head of b": [], "agreement": [], "head x agreement": []}
    originals, start = [], time.time()
    for path in files:
        truth = read_rgb(path)
        gray = gray_plane(truth)
        res_a, res_b = net_a.colorize_full(gray), net_b.colorize_full(gray)
        ab_a, ab_b = ab_planes(res_a.image), ab_planes(res_b.image)
        ab_small = ab_planes(small(truth))
        originals.append(colorfulness(small(truth)))
        for w in MIXES:
            pred = _blend(res_a.image, ab_a, ab_b, w)
            scores[w].append((psnr(small(pred), small(truth)), colorfulness(small(pred))))
            errors[w].append(np.sqrt(((ab_planes(small(pred)) - ab_small) ** 2).sum(0)))
        apart = np.sqrt(
            ((ab_planes(small(res_a.image)) - ab_planes(small(res_b.image))) ** 2).sum(0)
        )
        head = res_b.confidence if res_b.confidence is not None else np.ones(gray.shape, np.float32)
        head = np.asarray(
            torch.nn.functional.interpolate(
                torch.from_numpy(np.ascontiguousarray(head, np.float32))[None, None],
                size=apart.shape, mode="bilinear", align_corners=False,
            )[0, 0]
        )  # fmt: skip
        maps["head of b"].append(head)
        maps["agreement"].append(-apart)
        maps["head x agreement"].append(head * np.exp(-apart / 20))
    print(
        f"{len(files)} photos, {time.time() - start:.0f} s; originals' colourfulness "
        f"{np.mean(originals):.2f}\n"
    )
    print("| w (share of b) | psnr | colourfulness | of originals' | " + " | ".join(maps) + " |")
    print("|---" * (4 + len(maps)) + "|")
    for w in MIXES:
        s = np.array(scores[w])
        rhos = [
            pooled_calibration(m, [-e for e in errors[w]], len(files)).spearman
            for m in maps.values()
        ]
        print(
            f"| {w:g} | {s[:, 0].mean():.3f} | {s[:, 1].mean():.2f} | "
            f"{s[:, 1].mean() / np.mean(originals):.2f} | "
            + " | ".join(f"{r:+.3f}" for r in rhos)
            + " |"
        )


if __name__ == "__main__":
    main()
