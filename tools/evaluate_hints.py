"""The oracle-hint curve and the confidence calibration of tools/evaluate.py.

Protocols (``docs/hints.md``): :func:`oracle_hints` draws K points uniformly with a
fixed seed, each with the mean ab of the ground truth's 3x3 patch; :func:`calibration`
correlates ``ColorizeResult.confidence`` with the per-pixel ab error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor import Colorizer, Hints, Instances, Lab
from instacolor.color import rgb_to_lab
from instacolor.io.coco import instances_from_coco
from instacolor.metrics import colorfulness, gray_baseline, psnr

HINT_MODES = {  # Colorizer options of each way hints reach the colours
    "propagation": {"hint_channels": False, "hint_propagation": "working"},
    "channels": {"hint_channels": True, "hint_propagation": "none"},
    "both": {"hint_channels": True, "hint_propagation": "working"},
}


def _ab(rgb: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
    return rgb_to_lab(t)[1:].numpy()


def _small(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((256, 256), Image.BILINEAR))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return gray_baseline(rgb)[:, :, 0]


def _score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(pred, truth), "colorfulness": colorfulness(pred)}


def oracle_hints(truth: np.ndarray, k: int, seed: tuple[int, ...], draw: int = 50) -> Hints:
    """``k`` ground-truth points: 3x3 mean ab around uniformly drawn pixels (nested in k)."""
    h, w = truth.shape[:2]
    rng = np.random.default_rng(list(seed))
    ys, xs = rng.integers(1, h - 1, max(draw, k)), rng.integers(1, w - 1, max(draw, k))
    ab = _ab(truth)
    points = []
    for y, x in zip(ys[:k].tolist(), xs[:k].tolist()):
        a, b = ab[:, y - 1 : y + 2, x - 1 : x + 2].reshape(2, -1).mean(1).tolist()
        points.append((x, y, Lab(a, b), 1))
    return Hints(points=points)


def _curve_table(title: str, ks: list[int], scores: dict[str, dict[int, list]], gray) -> str:
    modes = list(scores)
    head = ["K", "gray baseline"] + [f"{m} psnr" for m in modes] + [f"{m} gain" for m in modes]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for k in ks:
        psnrs = [np.mean([s["psnr"] for s in scores[m][k]]) for m in modes]
        gains = [p - np.mean([s["psnr"] for s in scores[m][0]]) if 0 in ks else np.nan
                 for m, p in zip(modes, psnrs)]  # fmt: skip
        cells = [str(k), f"{np.mean(gray):.3f}", *(f"{p:.3f}" for p in psnrs)]
        lines.append("| " + " | ".join(cells + [f"{g:+.3f}" for g in gains]) + " |")
    cf = {m: np.mean([s["colorfulness"] for s in scores[m][max(ks)]]) for m in modes}
    lines.append("")
    lines.append(
        f"colourfulness at K={max(ks)}: " + ", ".join(f"{m} {v:.2f}" for m, v in cf.items())
    )
    return "\n".join(lines)


def evaluate_hints(colorizers: dict[str, Colorizer], items, ks: list[int], title: str) -> str:
    """The oracle-hint curve over ``(index, truth)`` items, each resized to 256x256."""
    scores = {m: {k: [] for k in ks} for m in colorizers}
    gray_scores = []
    for index, truth in items:
        truth = _small(truth)
        gray = _gray(truth)
        gray_scores.append(psnr(gray_baseline(truth), truth))
        for k in ks:
            hints = oracle_hints(truth, k, (0, index)) if k else None
            for mode, colorizer in colorizers.items():
                pred = colorizer.colorize(gray, hints=hints)
                scores[mode][k].append(
                    {"psnr": psnr(pred, truth), "colorfulness": colorfulness(pred)}
                )
    return _curve_table(f"{title}, 256x256, {len(items)} images", ks, scores, gray_scores)


def evaluate_instance_colors(colorizer: Colorizer, images, anns) -> str:
    """Held-out COCO at 256x256: fusion without hints vs one ground-truth colour per instance."""
    names = ("gray baseline (ab=0)", "instance fusion", "fusion + instance colours")
    rows: dict[str, list] = {name: [] for name in names}
    for path, info in images:
        truth = np.asarray(Image.open(path).convert("RGB"))
        inst = instances_from_coco(anns[info["id"]], truth.shape[:2])
        if inst.masks is None or not len(inst):
            continue
        small = _small(truth)
        masks = [
            np.asarray(Image.fromarray(m).resize((256, 256), Image.NEAREST)) for m in inst.masks
        ]
        keep = [i for i, m in enumerate(masks) if m.any()]
        inst = Instances.from_masks(np.stack([masks[i] for i in keep]))
        ab = _ab(small)
        colors = {j: Lab(*ab[:, masks[i]].mean(1).tolist()) for j, i in enumerate(keep)}
        gray = _gray(small)
        rows["gray baseline (ab=0)"].append(_score(gray_baseline(small), small))
        rows["instance fusion"].append(_score(colorizer.colorize(gray, instances=inst), small))
        hinted = colorizer.colorize(gray, instances=inst, hints=Hints(instance_colors=colors))
        rows["fusion + instance colours"].append(_score(hinted, small))
    lines = [
        f"### coco128 held-out, one colour per instance, 256x256, {len(rows[names[0]])} images",
        "",
        "| | psnr | colorfulness |",
        "|---|---|---|",
    ]
    for name, scores in rows.items():
        means = [np.mean([s[k] for s in scores]) for k in ("psnr", "colorfulness")]
        lines.append(f"| {name} | {means[0]:.3f} | {means[1]:.3f} |")
    return "\n".join(lines)


def calibration(colorizer: Colorizer, files: list[Path]) -> str:
    """Spearman(confidence, ab error) and ab error by confidence decile, at 256x256."""
    from scipy.stats import spearmanr

    conf, err = [], []
    for path in files:
        truth = _small(np.asarray(Image.open(path).convert("RGB")))
        result = colorizer.colorize(_gray(truth), full_result=True)
        if result.confidence is None:
            name = colorizer.loaded.name
            return (
                f"confidence: not available (weights {name!r} have no trained classification "
                "head, so ColorizeResult.confidence is None)"
            )
        conf.append(result.confidence.ravel())
        err.append(np.sqrt(((_ab(result.image) - _ab(truth)) ** 2).sum(0)).ravel())
    conf, err = np.concatenate(conf), np.concatenate(err)
    rho = spearmanr(conf, err).statistic
    edges = np.quantile(conf, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, 9)
    lines = [
        f"### confidence calibration, 256x256, {len(files)} images, {conf.size} pixels",
        "",
        f"Spearman correlation (confidence, ab error): {rho:+.3f} "
        "(negative: the confident pixels err less)",
        "",
        "| decile | confidence | mean ab error | pixels |",
        "|---|---|---|---|",
    ]
    for d in range(10):
        sel = decile == d
        if sel.any():
            lines.append(
                f"| {d + 1} | {conf[sel].mean():.3f} | {err[sel].mean():.2f} | {int(sel.sum())} |"
            )
    return "\n".join(lines)


def time_hints(image: Path, *, side: int = 1000, count: int = 10, repeats: int = 3) -> str:
    """Seconds per stage for a ``side`` x ``side`` gray image with ``count`` hints.

    The best of ``repeats`` runs of each of: no hints, ``"working"`` and ``"full"``
    propagation (shipped weights, their working size).
    """
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
            runs = [
                colorizer.colorize(gray, hints=h, full_result=True).timings for _ in range(repeats)
            ]
            best = min(runs, key=lambda t: t["total"])
            cells = " ".join(f"{k} {v:.2f}" for k, v in best.items() if k != "detect")
            lines.append(f"{mode:8s} {label:9s} {cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="time hint propagation on one image")
    parser.add_argument("image", type=Path)
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--hints", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(time_hints(args.image, side=args.side, count=args.hints))
