"""The oracle-hint protocol (Zhang et al. 2017): PSNR as ground-truth colour points are given.

On each image squashed to 256x256, K points are drawn uniformly with a fixed seed
(numpy ``default_rng([0, image index])``; the first K of one draw of the largest K, so
the curves are nested), at least one pixel from the border, each carrying the mean ab
of the ground truth's 3x3 patch around it (radius 1). :func:`hint_curve` scores the
colorizations at every K beside the gray baseline, for each way hints reach the colours
(:data:`HINT_MODES`); :func:`oracle_hints` draws the points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from instacolor import Colorizer, Hints, Lab
from instacolor.evaluation.scoring import ab_planes, gray_plane, small
from instacolor.metrics import colorfulness, gray_baseline, psnr

__all__ = ["HINT_MODES", "HintCurve", "hint_curve", "oracle_hints"]

#: Colorizer options of each way hints reach the colours.
HINT_MODES: Mapping[str, Mapping[str, object]] = {
    "propagation": {"hint_channels": False, "hint_propagation": "working"},
    "channels": {"hint_channels": True, "hint_propagation": "none"},
    "both": {"hint_channels": True, "hint_propagation": "working"},
}


def oracle_hints(truth: np.ndarray, k: int, seed: Sequence[int], draw: int = 50) -> Hints:
    """``k`` ground-truth points: the 3x3 mean ab around uniformly drawn pixels.

    The first ``k`` of ``max(draw, k)`` drawn points, so hints for a smaller ``k`` are a
    prefix of those for a larger one (with the same seed).

    Args:
        truth: ``(H, W, 3)`` uint8 original, ``H, W >= 3``.
        k: number of points, >= 0.
        seed: numpy ``default_rng`` seed, e.g. ``(0, image index)``.
        draw: points drawn before taking the first ``k``.

    Returns:
        :class:`~instacolor.Hints` with ``k`` points of radius 1.
    """
    h, w = truth.shape[:2]
    rng = np.random.default_rng(list(seed))
    ys, xs = rng.integers(1, h - 1, max(draw, k)), rng.integers(1, w - 1, max(draw, k))
    ab = ab_planes(truth)
    points = []
    for y, x in zip(ys[:k].tolist(), xs[:k].tolist()):
        a, b = ab[:, y - 1 : y + 2, x - 1 : x + 2].reshape(2, -1).mean(1).tolist()
        points.append((x, y, Lab(a, b), 1))
    return Hints(points=points)


@dataclass(frozen=True)
class HintCurve:
    """PSNR at K oracle hints, per hint mode, at 256x256.

    Attributes:
        title: what was scored, e.g. ``"oracle hints, kodak24, 256x256, 24 images"``.
        ks: the numbers of hints, ascending.
        gray_psnr: mean PSNR of the gray baseline (ab = 0).
        psnr: mode -> (K -> mean PSNR).
        colorfulness: mode -> mean colourfulness at the largest K.
        images: how many images were scored.
    """

    title: str
    ks: tuple[int, ...]
    gray_psnr: float
    psnr: Mapping[str, Mapping[int, float]]
    colorfulness: Mapping[str, float]
    images: int

    def gain(self, mode: str, k: int) -> float:
        """PSNR at ``k`` hints minus PSNR at none (NaN when K = 0 was not scored)."""
        if 0 not in self.ks:
            return float("nan")
        return float(self.psnr[mode][k] - self.psnr[mode][0])

    def markdown(self) -> str:
        """The curve as a Markdown table (one row per K) and a colourfulness line."""
        modes = list(self.psnr)
        head = ["K", "gray baseline"] + [f"{m} psnr" for m in modes]
        head += [f"{m} gain" for m in modes]
        lines = [f"### {self.title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for k in self.ks:
            cells = [str(k), f"{self.gray_psnr:.3f}"]
            cells += [f"{self.psnr[m][k]:.3f}" for m in modes]
            cells += [f"{self.gain(m, k):+.3f}" for m in modes]
            lines.append("| " + " | ".join(cells) + " |")
        top = max(self.ks)
        lines += [
            "",
            f"colourfulness at K={top}: "
            + ", ".join(f"{m} {v:.2f}" for m, v in self.colorfulness.items()),
        ]
        return "\n".join(lines)


def hint_curve(
    colorizers: Mapping[str, Colorizer],
    items: Sequence[tuple[int, np.ndarray]],
    ks: Sequence[int],
    title: str,
) -> HintCurve:
    """The oracle-hint curve over ``(index, truth)`` items, each squashed to 256x256.

    Args:
        colorizers: hint mode name -> a Colorizer built with that mode's
            :data:`HINT_MODES` options.
        items: ``(image index, (H, W, 3) uint8 original)``; the index seeds the points.
        ks: numbers of hints, ascending (0: no hints).
        title: what is scored; the image size and count are appended.

    Returns:
        The :class:`HintCurve`.
    """
    ks = tuple(ks)
    scores = {m: {k: [] for k in ks} for m in colorizers}
    gray_scores = []
    for index, truth in items:
        truth = small(truth)
        gray = gray_plane(truth)
        gray_scores.append(psnr(gray_baseline(truth), truth))
        for k in ks:
            hints = oracle_hints(truth, k, (0, index)) if k else None
            for mode, colorizer in colorizers.items():
                pred = colorizer.colorize(gray, hints=hints)
                scores[mode][k].append((psnr(pred, truth), colorfulness(pred)))
    return HintCurve(
        title=f"{title}, 256x256, {len(items)} images",
        ks=ks,
        gray_psnr=float(np.mean(gray_scores)),
        psnr={m: {k: float(np.mean([s[0] for s in scores[m][k]])) for k in ks} for m in scores},
        colorfulness={m: float(np.mean([s[1] for s in scores[m][max(ks)]])) for m in scores},
        images=len(items),
    )
