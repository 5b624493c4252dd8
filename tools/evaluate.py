"""Score weights on a folder of colour images, always beside the gray baseline (ab = 0).

    python tools/evaluate.py --weights default --data ../shared/data/eval/kodak24
    python tools/evaluate.py --weights default --coco ../shared/data/coco128 --holdout-every 4

Each image is converted to gray, colorized through the public API and compared with
the original, at 256x256 (image squashed, as the network sees it) and at full
resolution. With ``--coco`` the ground-truth instances of each image are used and
three modes are compared: full-image only, instance fusion, and fusion + semantic map
(painted from the instance masks); the boundary colour-bleeding error (mean ab error
within 3 px of instance boundaries) is reported too. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor import Colorizer, SemanticMap
from instacolor.color import rgb_to_lab
from instacolor.io.coco import instances_from_coco
from instacolor.metrics import (
    boundary_bleeding,
    colorfulness,
    delta_e2000,
    gray_baseline,
    psnr,
    ssim,
)
from instacolor.train.data import list_images

METRICS = ("psnr", "ssim", "delta_e2000", "colorfulness")


def _ab(rgb: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
    return rgb_to_lab(t)[1:].numpy()


def _gray(rgb: np.ndarray) -> np.ndarray:
    return gray_baseline(rgb)[:, :, 0]


def _score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "delta_e2000": delta_e2000(pred, truth),
        "colorfulness": colorfulness(pred),
    }


def _table(title: str, rows: dict[str, list[dict[str, float]]]) -> str:
    keys = list(next(iter(rows.values()))[0].keys())
    lines = [f"### {title}", "", "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, scores in rows.items():
        means = [np.nanmean([s[k] for s in scores]) for k in keys]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


def evaluate_folder(colorizer: Colorizer, files: list[Path]) -> str:
    out = []
    for label, resize in (("256x256", True), ("full resolution", False)):
        rows: dict[str, list] = {"gray baseline (ab=0)": [], "model": [], "ground truth": []}
        for path in files:
            truth = np.asarray(Image.open(path).convert("RGB"))
            if resize:
                truth = np.asarray(Image.fromarray(truth).resize((256, 256), Image.BILINEAR))
            pred = colorizer.colorize(_gray(truth))
            rows["gray baseline (ab=0)"].append(_score(gray_baseline(truth), truth))
            rows["model"].append(_score(pred, truth))
            rows["ground truth"].append(_score(truth, truth))
        out.append(_table(f"{label}, {len(files)} images", rows))
    return "\n\n".join(out)


def evaluate_coco(colorizer: Colorizer, coco: Path, every: int) -> str:
    data = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    anns: dict[int, list] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    by_name = {i["file_name"]: i for i in data["images"] if i["id"] in anns}
    held_out = list_images(coco)[::every]  # the same split as tools/train.py --holdout-every
    images = [(p, by_name[p.name]) for p in held_out if p.name in by_name]
    rows: dict[str, list] = {
        "gray baseline (ab=0)": [],
        "full image only": [],
        "instance fusion": [],
        "fusion + semantic": [],
    }
    for path, info in images:
        truth = np.asarray(Image.open(path).convert("RGB"))
        gray = _gray(truth)
        inst = instances_from_coco(anns[info["id"]], truth.shape[:2])
        sem = SemanticMap.from_instances(inst)
        masks = inst.masks if inst.masks is not None else None
        ab_truth = _ab(truth)
        outputs = {
            "gray baseline (ab=0)": gray_baseline(truth),
            "full image only": colorizer.colorize(gray),
            "instance fusion": colorizer.colorize(gray, instances=inst),
            "fusion + semantic": colorizer.colorize(gray, instances=inst, semantic=sem),
        }
        for name, pred in outputs.items():
            score = _score(pred, truth)
            score["bleeding"] = (
                boundary_bleeding(_ab(pred), ab_truth, masks) if masks is not None else np.nan
            )
            rows[name].append(score)
    return _table(f"coco128, {len(images)} images (every {every}th), full resolution", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--data", type=Path, help="folder of colour images")
    parser.add_argument("--coco", type=Path, help="COCO folder (annotations + images)")
    parser.add_argument(
        "--holdout-every",
        type=int,
        default=4,
        help="with --coco: score every Nth image (the held-out split)",
    )
    parser.add_argument("--limit", type=int, default=0, help="at most this many images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colorizer = Colorizer(args.weights)
    print(f"weights: {colorizer.loaded.name} (sha256 {colorizer.loaded.sha256})\n")
    if args.data:
        files = list_images(args.data)
        print(evaluate_folder(colorizer, files[: args.limit or None]) + "\n")
    if args.coco:
        print(evaluate_coco(colorizer, args.coco, args.holdout_every))


if __name__ == "__main__":
    main()
