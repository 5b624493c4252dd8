"""Score weights on a folder of colour images, always beside the gray baseline (ab = 0).

    python tools/evaluate.py --weights default --data "$INSTACOLOR_DATA/eval/kodak24"
    python tools/evaluate.py --weights default --coco "$INSTACOLOR_DATA/coco128" --holdout-every 4

Each image is converted to gray, colorized through the public API and compared with
the original, at 256x256 (image squashed, as the network sees it) and at full
resolution. With ``--coco`` the ground-truth instances of each image are used and
three modes are compared: full-image only, instance fusion, and fusion + semantic map
(painted from the instance masks), at full resolution and at 256x256 (the full-resolution
result and the original both resized to 256x256); the boundary colour-bleeding error
(mean ab error within 3 px of instance boundaries, full resolution) is reported too.
LPIPS (v0.1, AlexNet; :mod:`instacolor.perceptual`) is reported when its weights are present
(``--lpips-alexnet`` names an AlexNet state-dict file instead of torchvision's cached one);
otherwise a line says which files are missing. Prints Markdown tables; ``--grid`` writes a
figure of samples (gray | model | original).

``--hints 0,1,2,5,10,20,50`` adds the oracle-hint curve (Zhang et al. 2017's protocol):
on each image resized to 256x256, K points drawn uniformly with a fixed seed (numpy
``default_rng([seed, image index])``; the first K of one draw of the largest K, so the
curves are nested) at least one pixel from the border, each carrying the mean ab of
the ground truth's 3x3 patch around it (radius 1). PSNR per K beside the gray baseline,
for propagation alone, the hint channels alone and both (``--hint-modes``). With
``--coco`` the held-out images also get one colour per instance (the mean ab of the
ground truth under its mask), compared with instance fusion without hints.

``--decode regression|annealed-mean --temperature T`` chooses the decoding (issue 18),
``--mix M`` blends the annealed mean with the regression (``M * annealed + (1 - M) *
regression``, 1 the annealed mean alone);
colourfulness is printed beside PSNR in every table, and a confidence calibration
(Spearman correlation between per-pixel ``ColorizeResult.confidence`` and per-pixel ab
error at 256x256, error by confidence decile) follows the folder tables, or one line
saying that the weights have no confidence map.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from evaluate_hints import (  # the 256x256 scoring helpers are shared with tune_inference
    HINT_MODES,
    _ab,
    _gray,
    _small,
    calibration,
    evaluate_hints,
    evaluate_instance_colors,
)
from PIL import Image

from instacolor import Colorizer, SemanticMap
from instacolor.api import MAX_SATURATION
from instacolor.errors import InputError, WeightsError
from instacolor.io.coco import instances_from_coco
from instacolor.metrics import (
    boundary_bleeding,
    colorfulness,
    delta_e2000,
    gray_baseline,
    psnr,
    ssim,
)
from instacolor.models.placement import box_placements
from instacolor.perceptual import Lpips, lpips_unavailable
from instacolor.train.data import list_images

METRICS = ("psnr", "ssim", "delta_e2000", "colorfulness")


def _score(pred: np.ndarray, truth: np.ndarray, lpips: Lpips | None) -> dict[str, float]:
    scores = {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "delta_e2000": delta_e2000(pred, truth),
        "colorfulness": colorfulness(pred),
    }
    if lpips is not None:
        scores["lpips"] = lpips(pred, truth)
    return scores


def _truth_score(truth: np.ndarray, lpips: Lpips | None) -> dict[str, float]:
    """``_score(truth, truth, lpips)`` without computing it: the metrics' identities."""
    scores = {
        "psnr": math.inf,
        "ssim": 1.0,
        "delta_e2000": 0.0,
        "colorfulness": colorfulness(truth),
    }
    if lpips is not None:
        scores["lpips"] = 0.0
    return scores


def _table(title: str, rows: dict[str, list[dict[str, float]]]) -> str:
    keys = list(next(iter(rows.values()))[0].keys())
    lines = [f"### {title}", "", "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, scores in rows.items():
        means = [np.nanmean([s[k] for s in scores]) for k in keys]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


def write_grid(colorizer: Colorizer, files: list[Path], target: Path, height: int = 192) -> None:
    """One row per image: gray input | model | original, each ``height`` pixels high."""
    rows = []
    for path in files:
        truth = Image.open(path).convert("RGB")
        truth = truth.resize((round(truth.width * height / truth.height), height), Image.LANCZOS)
        truth = np.asarray(truth)
        gray = _gray(truth)
        rows.append(
            np.concatenate([np.repeat(gray[..., None], 3, 2), colorizer.colorize(gray), truth], 1)
        )
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows)).save(target)
    print(f"wrote {target}")


def evaluate_folder(colorizer: Colorizer, files: list[Path], lpips: Lpips | None) -> str:
    out = []
    for label, resize in (("256x256", True), ("full resolution", False)):
        rows: dict[str, list] = {"gray baseline (ab=0)": [], "model": [], "ground truth": []}
        for path in files:
            truth = np.asarray(Image.open(path).convert("RGB"))
            if resize:
                truth = _small(truth)
            pred = colorizer.colorize(_gray(truth))
            rows["gray baseline (ab=0)"].append(_score(gray_baseline(truth), truth, lpips))
            rows["model"].append(_score(pred, truth, lpips))
            rows["ground truth"].append(_truth_score(truth, lpips))
        out.append(_table(f"{label}, {len(files)} images", rows))
    return "\n\n".join(out)


def coco_heldout(coco: Path, every: int) -> tuple[list[tuple[Path, dict]], dict[int, list]]:
    """The held-out ``(path, image record)`` pairs and the annotations by image id."""
    data = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    anns: dict[int, list] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    by_name = {i["file_name"]: i for i in data["images"] if i["id"] in anns}
    held_out = list_images(coco)[::every]  # the same split as tools/train.py --holdout-every
    return [(p, by_name[p.name]) for p in held_out if p.name in by_name], anns


def evaluate_coco(colorizer: Colorizer, coco: Path, every: int, lpips: Lpips | None) -> str:
    images, anns = coco_heldout(coco, every)
    modes = (
        "gray baseline (ab=0)",
        "full image only",
        "semantic, no instances",
        "instance fusion",
        "fusion + semantic",
    )
    rows: dict[str, list] = {m: [] for m in modes}
    small: dict[str, list] = {m: [] for m in modes}
    own: list[tuple[float, float]] = []
    for path, info in images:
        truth = np.asarray(Image.open(path).convert("RGB"))
        gray = _gray(truth)
        inst = instances_from_coco(anns[info["id"]], truth.shape[:2])
        sem = SemanticMap.from_instances(inst)
        masks = inst.masks if inst.masks is not None else None
        ab_truth = _ab(truth)
        fused = colorizer.colorize(gray, instances=inst, semantic=sem, full_result=True)
        own.extend(own_box_weights(fused))
        outputs = {
            "gray baseline (ab=0)": gray_baseline(truth),
            "full image only": colorizer.colorize(gray),
            "semantic, no instances": colorizer.colorize(gray, semantic=sem),
            "instance fusion": colorizer.colorize(gray, instances=inst),
            "fusion + semantic": fused.image,
        }
        for name, pred in outputs.items():
            score = _score(pred, truth, lpips)
            score["bleeding"] = (
                boundary_bleeding(_ab(pred), ab_truth, masks) if masks is not None else np.nan
            )
            score["mask_psnr"] = masked_psnr(pred, truth, masks)
            rows[name].append(score)
            small[name].append(_score(_small(pred), _small(truth), lpips))
    title = f"coco128, {len(images)} images (every {every}th)"
    weight = (
        f"Mean fusion weight an instance receives inside its own box (fusion + semantic, "
        f"{len(own)} instances): conv10_2 {np.mean([o[0] for o in own]):.3f}, mean of the 13 "
        f"points {np.mean([o[1] for o in own]):.3f} (equal logits would give 1 / (N + 1): "
        "every instance takes softmax weight everywhere, as in the reference)"
        if own
        else "No instance was fused."
    )
    return "\n\n".join(
        (
            _table(f"{title}, full resolution", rows),
            _table(f"{title}, resized to 256x256", small),
            weight,
        )
    )


def masked_psnr(pred: np.ndarray, truth: np.ndarray, masks: np.ndarray | None) -> float:
    """PSNR of the pixels inside the union of the instance masks ``(N, H, W)`` (NaN: none)."""
    if masks is None or not masks.any():
        return float("nan")
    inside = masks.any(0)
    err = (pred.astype(np.float64) - truth.astype(np.float64))[inside] ** 2
    return float(20 * np.log10(255.0 / np.sqrt(max(err.mean(), 1e-12))))


def own_box_weights(result) -> list[tuple[float, float]]:
    """Per instance: its mean fusion weight inside its own box (conv10_2, all 13 points)."""
    if result.instances is None or not result.weight_maps:
        return []
    boxes, size = result.instances.integer_boxes(), result.instances.image_size
    per_point = {}
    for name, maps in result.weight_maps.items():  # (N + 1, S_i, S_i)
        cells = box_placements(boxes, size, maps.shape[-1])
        per_point[name] = [
            float(maps[i, top : top + h, left : left + w].mean())
            for i, (left, _, top, _, w, h) in enumerate(cells)
        ]
    every = np.mean(list(per_point.values()), axis=0)
    return list(zip(per_point["conv10_2"], every.tolist()))


def _hint_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",")})
    except ValueError:
        ks = [-1]
    if not ks or ks[0] < 0:
        raise argparse.ArgumentTypeError(f"expected K[,K...] integers >= 0, received {text!r}")
    return ks


def _hint_modes(text: str) -> list[str]:
    modes = [m for m in text.split(",") if m]
    if not modes or set(modes) - set(HINT_MODES):
        raise argparse.ArgumentTypeError(
            f"expected modes from {sorted(HINT_MODES)}, received {text!r}"
        )
    return modes


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
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="with --data: score every Nth image (sorted by path; 115 on a folder without "
        "a COCO skip list = tools/train.py's held-out validation images)",
    )
    parser.add_argument("--limit", type=int, default=0, help="at most this many images")
    parser.add_argument(
        "--working-size",
        type=int,
        default=None,
        help="square size the networks run at (default: the weights' training size)",
    )
    parser.add_argument(
        "--saturation", type=float, default=1.0, help="factor on the predicted chroma"
    )
    parser.add_argument(
        "--lpips-alexnet",
        type=Path,
        help="AlexNet state-dict file for LPIPS (default: torchvision's cached official one)",
    )
    parser.add_argument("--no-lpips", action="store_true", help="do not compute LPIPS")
    parser.add_argument(
        "--hints",
        type=_hint_ks,
        help="oracle-hint curve for these K (e.g. 0,1,2,5,10,20,50; see the module docstring)",
    )
    parser.add_argument(
        "--hint-modes",
        type=_hint_modes,
        default=list(HINT_MODES),
        help="with --hints: propagation, channels and/or both (comma-separated)",
    )
    parser.add_argument("--decode", help="regression or annealed-mean (default: the weights')")
    parser.add_argument("--temperature", type=float, help="annealed-mean temperature")
    parser.add_argument("--mix", type=float, help="annealed-mean weight blended with regression")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", type=Path, help="write a sample figure of --data here")
    parser.add_argument("--grid-images", type=int, default=6, help="images in the --grid figure")
    args = parser.parse_args()
    if args.every < 1:
        parser.error(f"--every: expected at least 1, received {args.every}")
    if not 0 <= args.saturation <= MAX_SATURATION:
        parser.error(f"--saturation: expected 0 to {MAX_SATURATION:g}, received {args.saturation}")
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = {
            "working_size": args.working_size,
            "saturation": args.saturation,
            "decode": args.decode,
            "temperature": args.temperature,
            "mix": args.mix,
        }
        try:
            colorizer = Colorizer(args.weights, **options)
            hinted = {
                m: Colorizer(args.weights, **options, **HINT_MODES[m]) for m in args.hint_modes
            }
        except InputError as err:
            parser.error(str(err))
    print(f"weights: {colorizer.loaded.name} (sha256 {colorizer.loaded.sha256})")
    print(f"working size: {colorizer.working_size}, saturation: {colorizer.saturation}")
    decoding, line = colorizer.decoding, f"decode: {colorizer.decoding.mode}"
    if decoding.mode != "regression":
        line += f", temperature {decoding.temperature}"
        line += f", mix {decoding.mix}" if decoding.mix < 1 else ""
    print(line)
    lpips = None
    if not args.no_lpips:
        missing = None if args.lpips_alexnet else lpips_unavailable()
        if missing:
            print(missing)
        else:
            try:
                lpips = Lpips(alexnet=args.lpips_alexnet, download=False)
            except WeightsError as err:
                parser.error(str(err))
    print()
    if args.data:
        files = list_images(args.data)[:: args.every]
        files = files[: args.limit or None]
        print(evaluate_folder(colorizer, files, lpips) + "\n")
        print(calibration(colorizer, files) + "\n")
        if args.hints:
            items = [(i, np.asarray(Image.open(p).convert("RGB"))) for i, p in enumerate(files)]
            print(
                evaluate_hints(hinted, items, args.hints, f"oracle hints, {args.data.name}") + "\n"
            )
        if args.grid:
            write_grid(colorizer, files[: args.grid_images], args.grid)
    if args.coco:
        print(evaluate_coco(colorizer, args.coco, args.holdout_every, lpips) + "\n")
        if args.hints:
            images, anns = coco_heldout(args.coco, args.holdout_every)
            images = images[: args.limit or None]
            items = [
                (i, np.asarray(Image.open(p).convert("RGB"))) for i, (p, _) in enumerate(images)
            ]
            print(
                evaluate_hints(hinted, items, args.hints, "oracle hints, coco128 held-out") + "\n"
            )
            print(evaluate_instance_colors(colorizer, images, anns))


if __name__ == "__main__":
    main()
