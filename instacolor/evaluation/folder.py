"""Scoring a folder of colour photos: the folder tables, the confidence calibration, a grid.

:func:`evaluate_folder` colorizes the gray version of each photo and scores it beside the
gray baseline (ab = 0) and the original itself, at 256x256 (the photo squashed, as the
network sees it) and at full resolution. :func:`calibration` correlates
``ColorizeResult.confidence`` with the per-pixel ab error at 256x256.
:func:`write_grid` draws gray | model | original rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from instacolor import Colorizer
from instacolor.evaluation.scoring import (
    MetricTable,
    ab_planes,
    gray_plane,
    mean_table,
    read_rgb,
    score,
    small,
    truth_score,
)
from instacolor.metrics import gray_baseline
from instacolor.perceptual import Lpips

__all__ = [
    "Calibration",
    "Decile",
    "calibration",
    "evaluate_folder",
    "grid_image",
    "pooled_calibration",
    "write_grid",
]

GRAY, MODEL, TRUTH = "gray baseline (ab=0)", "model", "ground truth"


def evaluate_folder(
    colorizer: Colorizer, files: Sequence[Path], lpips: Lpips | None = None
) -> tuple[MetricTable, MetricTable]:
    """Score ``colorizer`` on colour photos, at 256x256 and at full resolution.

    Args:
        colorizer: what colorizes the gray version of each photo.
        files: colour image files.
        lpips: the LPIPS metric, or None to leave it out.

    Returns:
        ``(256x256 table, full-resolution table)``, rows ``"gray baseline (ab=0)"``,
        ``"model"`` and ``"ground truth"``.

    Raises:
        DecodeError: a file cannot be read.
    """
    tables = []
    for title, resize in (("256x256", True), ("full resolution", False)):
        rows: dict[str, list] = {GRAY: [], MODEL: [], TRUTH: []}
        for path in files:
            truth = read_rgb(path)
            if resize:
                truth = small(truth)
            pred = colorizer.colorize(gray_plane(truth))
            rows[GRAY].append(score(gray_baseline(truth), truth, lpips))
            rows[MODEL].append(score(pred, truth, lpips))
            rows[TRUTH].append(truth_score(truth, lpips))
        tables.append(mean_table(f"{title}, {len(files)} images", rows))
    return tables[0], tables[1]


@dataclass(frozen=True)
class Decile:
    """The pixels of one confidence decile.

    Attributes:
        decile: 1 (least confident) to 10.
        confidence: their mean confidence in ``[0, 1]``.
        ab_error: their mean Euclidean ab error (Lab units).
        pixels: how many.
    """

    decile: int
    confidence: float
    ab_error: float
    pixels: int


@dataclass(frozen=True)
class Calibration:
    """How well ``ColorizeResult.confidence`` predicts the ab error, at 256x256.

    Attributes:
        images: photos scored.
        pixels: pixels pooled (``images * 256 * 256``; 0 when unavailable).
        spearman: Spearman correlation of confidence and ab error (negative: the confident
            pixels err less); NaN when unavailable.
        deciles: the error by confidence decile (empty deciles left out).
        unavailable: why there is no calibration (weights without a trained classification
            head), else None.
    """

    images: int
    pixels: int
    spearman: float
    deciles: tuple[Decile, ...]
    unavailable: str | None = None

    def markdown(self) -> str:
        """The Spearman line and the decile table, or the line saying why there is none."""
        if self.unavailable is not None:
            return self.unavailable
        lines = [
            f"### confidence calibration, 256x256, {self.images} images, {self.pixels} pixels",
            "",
            f"Spearman correlation (confidence, ab error): {self.spearman:+.3f} "
            "(negative: the confident pixels err less)",
            "",
            "| decile | confidence | mean ab error | pixels |",
            "|---|---|---|---|",
        ]
        for d in self.deciles:
            lines.append(f"| {d.decile} | {d.confidence:.3f} | {d.ab_error:.2f} | {d.pixels} |")
        return "\n".join(lines)


def calibration(colorizer: Colorizer, files: Sequence[Path]) -> Calibration:
    """Spearman(confidence, ab error) and ab error by confidence decile, at 256x256.

    Args:
        colorizer: what colorizes the gray version of each photo.
        files: colour image files.

    Returns:
        The :class:`Calibration`; ``unavailable`` set when the weights give no confidence.
    """
    conf, err = [], []
    for path in files:
        truth = small(read_rgb(path))
        result = colorizer.colorize_full(gray_plane(truth))
        if result.confidence is None:
            name = colorizer.loaded.name
            return Calibration(
                images=len(files),
                pixels=0,
                spearman=float("nan"),
                deciles=(),
                unavailable=f"confidence: not available (weights {name!r} have no trained "
                "classification head, so ColorizeResult.confidence is None)",
            )
        conf.append(result.confidence.ravel())
        err.append(np.sqrt(((ab_planes(result.image) - ab_planes(truth)) ** 2).sum(0)).ravel())
    return pooled_calibration(conf, err, len(files))


def pooled_calibration(
    conf: Sequence[np.ndarray], err: Sequence[np.ndarray], images: int
) -> Calibration:
    """The :class:`Calibration` of per-image confidence and ab error maps, pooled.

    Args:
        conf: each image's confidence in ``[0, 1]`` (any shape, raveled).
        err: each image's per-pixel Euclidean ab error (Lab units), as ``conf``.
        images: how many images they come from.

    Returns:
        Spearman(confidence, ab error) over all pixels and the error by confidence decile.
    """
    from scipy.stats import spearmanr

    conf = np.concatenate([np.ravel(c) for c in conf])
    err = np.concatenate([np.ravel(e) for e in err])
    rho = float(spearmanr(conf, err).statistic)
    edges = np.quantile(conf, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, 9)
    deciles = []
    for d in range(10):
        sel = decile == d
        if sel.any():
            deciles.append(
                Decile(d + 1, float(conf[sel].mean()), float(err[sel].mean()), int(sel.sum()))
            )
    return Calibration(images=images, pixels=int(conf.size), spearman=rho,
                       deciles=tuple(deciles))  # fmt: skip


def grid_image(colorizer: Colorizer, files: Sequence[Path], height: int = 192) -> np.ndarray:
    """One row per photo: gray input | model | original, each ``height`` pixels high.

    Returns:
        ``(rows * (height + 4), W, 3)`` uint8, rows padded with white to the widest.
    """
    rows = []
    for path in files:
        truth = Image.fromarray(read_rgb(path))
        truth = truth.resize((round(truth.width * height / truth.height), height), Image.LANCZOS)
        truth = np.asarray(truth)
        gray = gray_plane(truth)
        rows.append(
            np.concatenate([np.repeat(gray[..., None], 3, 2), colorizer.colorize(gray), truth], 1)
        )
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows)


def write_grid(colorizer: Colorizer, files: Sequence[Path], target: Path, height: int = 192):
    """Write :func:`grid_image` to ``target`` (format from its suffix); returns ``target``."""
    image = grid_image(colorizer, files, height)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        Image.fromarray(image).save(partial)
        os.replace(partial, target)  # a reader never sees half a figure
    finally:
        partial.unlink(missing_ok=True)
    return target
