"""The scoring every protocol shares: the 256x256 view, per-image scores, tables of means.

Images are ``(H, W, 3)`` uint8 sRGB numpy arrays. A protocol colorizes the gray version
of an image (:func:`gray_plane`, the Lab L of the original) and scores the result
against the original with :mod:`instacolor.metrics`: PSNR, SSIM, CIEDE2000 and
colourfulness (:func:`score`), LPIPS when an :class:`~instacolor.perceptual.Lpips` is
given. "256x256" means the image squashed to 256x256 with bilinear resampling
(:func:`small`), as Zhang et al. 2016/2017 and InstColorization score.

A :class:`MetricTable` holds the mean of each metric per row (NaN scores, e.g. the
boundary bleeding of an image without instances, are left out of the mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor.color import rgb_to_lab
from instacolor.errors import DecodeError, InputError
from instacolor.metrics import colorfulness, delta_e2000, gray_baseline, psnr, ssim
from instacolor.perceptual import Lpips
from instacolor.train.data import IMAGE_SUFFIXES, list_images

__all__ = [
    "SIZE",
    "MetricTable",
    "Row",
    "ab_planes",
    "gray_plane",
    "image_files",
    "label",
    "mean_table",
    "read_rgb",
    "score",
    "small",
    "truth_score",
]

#: Side of the square view the 256x256 protocols score at.
SIZE = 256


def small(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` uint8 squashed to ``(256, 256, 3)`` (bilinear)."""
    return np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.BILINEAR))


def gray_plane(rgb: np.ndarray) -> np.ndarray:
    """The gray input of a colour image: ``(H, W)`` uint8, the Lab L of ``rgb`` ``(H, W, 3)``."""
    return gray_baseline(rgb)[:, :, 0]


def ab_planes(rgb: np.ndarray) -> np.ndarray:
    """The Lab a, b of ``rgb`` ``(H, W, 3)`` uint8: ``(2, H, W)`` float32 in Lab units."""
    t = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
    return rgb_to_lab(t)[1:].numpy()


def label(name: str) -> str:
    """A file or folder name fit for a Markdown title: unprintable and table characters
    replaced by ``?`` (names come from the user's disk and may hold anything)."""
    return "".join(c if c.isprintable() and c not in "|`#<>" else "?" for c in name)


def read_rgb(path: Path) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB pixels of an image file.

    Raises:
        DecodeError: the file cannot be read or decoded as an image.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DecodeError(
            f"expected a readable image, received {str(path)!r} ({err}); remove or replace "
            "the file and run again"
        ) from None


def image_files(folder: Path, *, every: int = 1, limit: int = 0, option: str = "--data") -> list:
    """Every ``every``-th image file under ``folder`` (sorted by path), at most ``limit``.

    The listing is :func:`instacolor.train.data.list_images` (the training's, so a split
    by ``every`` is the training's split; files its skip lists name are left out).

    Args:
        folder: a folder of colour images (searched recursively).
        every: keep every Nth file, >= 1.
        limit: at most this many files (0: all).
        option: the option the folder came from, for messages.

    Returns:
        ``list[Path]``, never empty.

    Raises:
        InputError: ``folder`` is no folder, or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{option}: expected a folder of colour images, received {str(folder)!r} (no such "
            "folder)"
        )
    files = list_images(folder)[::every][: limit or None]
    if not files:
        raise InputError(
            f"{option}: expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under "
            f"{str(folder)!r}, found none"
        )
    return files


def score(pred: np.ndarray, truth: np.ndarray, lpips: Lpips | None = None) -> dict[str, float]:
    """PSNR, SSIM, CIEDE2000 and colourfulness of ``pred`` against ``truth`` (and LPIPS).

    Args:
        pred: ``(H, W, 3)`` uint8 colorization.
        truth: ``(H, W, 3)`` uint8 original.
        lpips: the LPIPS metric, or None to leave it out.

    Returns:
        ``{"psnr", "ssim", "delta_e2000", "colorfulness"[, "lpips"]}`` floats.
    """
    scores = {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "delta_e2000": delta_e2000(pred, truth),
        "colorfulness": colorfulness(pred),
    }
    if lpips is not None:
        scores["lpips"] = lpips(pred, truth)
    return scores


def truth_score(truth: np.ndarray, lpips: Lpips | None = None) -> dict[str, float]:
    """``score(truth, truth, lpips)`` without computing it: the metrics' identities."""
    scores = {
        "psnr": math.inf,
        "ssim": 1.0,
        "delta_e2000": 0.0,
        "colorfulness": colorfulness(truth),
    }
    if lpips is not None:
        scores["lpips"] = 0.0
    return scores


@dataclass(frozen=True)
class Row:
    """One row of a :class:`MetricTable`.

    Attributes:
        name: what was scored (``"model"``, ``"gray baseline (ab=0)"``, ...).
        means: metric name -> mean over the images (NaN scores left out; NaN if all are).
        images: how many images were scored.
    """

    name: str
    means: Mapping[str, float]
    images: int


@dataclass(frozen=True)
class MetricTable:
    """Mean scores of a protocol, one :class:`Row` per colorization mode.

    Attributes:
        title: what was scored, e.g. ``"256x256, 24 images"``.
        metrics: the column names, in order.
        rows: one per mode, in order.
    """

    title: str
    metrics: tuple[str, ...]
    rows: tuple[Row, ...]

    def row(self, name: str) -> Row:
        """The row called ``name``.

        Raises:
            InputError: no row has that name.
        """
        for row in self.rows:
            if row.name == name:
                return row
        names = [r.name for r in self.rows]
        raise InputError(f"name: expected one of {names}, received {name!r}")

    def markdown(self) -> str:
        """The table in Markdown under a ``###`` title, means to 3 decimals."""
        lines = [
            f"### {self.title}",
            "",
            "| | " + " | ".join(self.metrics) + " |",
            "|---" * (len(self.metrics) + 1) + "|",
        ]
        for row in self.rows:
            cells = " | ".join(f"{row.means[k]:.3f}" for k in self.metrics)
            lines.append(f"| {row.name} | {cells} |")
        return "\n".join(lines)


def mean_table(title: str, scores: Mapping[str, Sequence[Mapping[str, float]]]) -> MetricTable:
    """A :class:`MetricTable` of per-image scores: ``{row name: [{metric: value}, ...]}``.

    The columns are the first row's first image's metrics; means ignore NaN.
    """
    metrics = tuple(next(iter(scores.values()))[0].keys())
    rows = []
    for name, per_image in scores.items():
        with np.errstate(all="ignore"):
            means = {k: _nanmean([s[k] for s in per_image]) for k in metrics}
        rows.append(Row(name=name, means=means, images=len(per_image)))
    return MetricTable(title=title, metrics=metrics, rows=tuple(rows))


def _nanmean(values: list[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    if np.isnan(array).all():
        return math.nan
    return float(np.nanmean(array))
