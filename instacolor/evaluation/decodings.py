"""The inference-settings sweep: working size x saturation x decoding, on validation photos.

The full-image network colorizes every photo of a set at full resolution through the
public API with each setting; the result and the original are both squashed to 256x256
and PSNR and colourfulness are averaged (:func:`score_set`). :func:`sweep` scores every
setting on one set; :meth:`Sweep.best` is the highest PSNR, :meth:`Sweep.chosen` the
decoding rule: the highest PSNR among decodings whose colourfulness reaches
``min_colorfulness`` of the originals', else the regression.

Decodings are written as :class:`~instacolor.structures.Decoding` specs: ``regression``,
``annealed-mean``, ``annealed-mean:T`` or ``annealed-mean:T:MIX`` (the annealed mean at
temperature T, blended with the regression as ``MIX * annealed + (1 - MIX) *
regression``; parts left out are the weights' default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instacolor import Colorizer
from instacolor.evaluation.scoring import gray_plane, read_rgb, small
from instacolor.metrics import colorfulness, gray_baseline, psnr
from instacolor.structures import Decoding

__all__ = ["Setting", "Sweep", "load_set", "score_set", "sweep"]


def load_set(files: Sequence[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gray (H, W) uint8 at full resolution, original (256, 256, 3) uint8)`` per file.

    Raises:
        DecodeError: a file cannot be read.
    """
    out = []
    for path in files:
        truth = read_rgb(path)
        out.append((gray_plane(truth), small(truth)))
    return out


@dataclass(frozen=True)
class Setting:
    """The scores of one setting on a set.

    Attributes:
        working_size: the square size the network ran at.
        saturation: the factor on the predicted chroma.
        decoding: the decoding spec as written.
        mix: the mix the decoding ran with (None for regression).
        psnr: mean PSNR at 256x256.
        colorfulness: mean colourfulness at 256x256.
        of_originals: ``colorfulness`` over the originals' mean colourfulness.
    """

    working_size: int
    saturation: float
    decoding: str
    mix: float | None
    psnr: float
    colorfulness: float
    of_originals: float

    def markdown(self) -> str:
        """The setting's table row."""
        mix = "-" if self.mix is None else f"{self.mix:g}"
        return (
            f"| {self.working_size} | {self.saturation:g} | {self.decoding} | {mix} "
            f"| {self.psnr:.3f} | {self.colorfulness:.2f} | {self.of_originals:.2f} |"
        )


def score_set(
    colorizer: Colorizer,
    images: Sequence[tuple[np.ndarray, np.ndarray]],
    decoding: Decoding | str = "regression",
) -> tuple[float, float, float | None]:
    """Mean PSNR and colourfulness at 256x256 of the full-image network on ``images``.

    Args:
        colorizer: the settings' Colorizer.
        images: from :func:`load_set`.
        decoding: a :class:`~instacolor.structures.Decoding` or its spec.

    Returns:
        ``(psnr, colorfulness, mix the decoding ran with or None for regression)``.
    """
    rows, used = [], None
    for gray, small_truth in images:
        result = colorizer.colorize_full(gray, decode=decoding)
        pred, used = small(result.image), result.decoding.record()["mix"]
        rows.append((psnr(pred, small_truth), colorfulness(pred)))
    return (
        float(np.mean([r[0] for r in rows])),
        float(np.mean([r[1] for r in rows])),
        used,
    )


@dataclass(frozen=True)
class Sweep:
    """Every setting scored on one set.

    Attributes:
        name: the set, e.g. ``"train every 115"``.
        images: photos in the set.
        gray_psnr: mean PSNR of the gray baseline at 256x256.
        settings: in the order scored (sizes, then saturations, then decodings).
        min_colorfulness: the decoding rule's share of the originals' colourfulness.
    """

    name: str
    images: int
    gray_psnr: float
    settings: tuple[Setting, ...]
    min_colorfulness: float = 0.6

    def best(self) -> Setting:
        """The setting with the highest PSNR (the first one on a tie)."""
        best = self.settings[0]
        for setting in self.settings[1:]:
            if setting.psnr > best.psnr:
                best = setting
        return best

    def chosen(self) -> Setting | None:
        """The decoding rule: the highest PSNR among settings whose colourfulness reaches
        ``min_colorfulness`` of the originals'; None when none does (then: regression)."""
        chosen = None
        for setting in self.settings:
            vivid = setting.of_originals >= self.min_colorfulness
            if vivid and (chosen is None or setting.psnr > chosen.psnr):
                chosen = setting
        return chosen

    def markdown(self) -> str:
        """The title and the table of every setting."""
        lines = [
            f"### {self.name}, {self.images} images, 256x256 (gray baseline "
            f"{self.gray_psnr:.3f} dB)",
            "",
            "| working size | saturation | decoding | mix | psnr | colorfulness | of originals' |",
            "|---|---|---|---|---|---|---|",
        ]
        return "\n".join(lines + [s.markdown() for s in self.settings])


def sweep(
    name: str,
    images: Sequence[tuple[np.ndarray, np.ndarray]],
    colorizers: Mapping[tuple[int, float], Colorizer],
    decodings: Sequence[str],
    *,
    min_colorfulness: float = 0.6,
    on_start=None,
    on_setting=None,
) -> Sweep:
    """Score every ``(working size, saturation)`` Colorizer with every decoding on a set.

    Args:
        name: the set's name.
        images: from :func:`load_set`.
        colorizers: ``(working size, saturation)`` -> its Colorizer.
        decodings: decoding specs (:meth:`~instacolor.structures.Decoding.parse`).
        min_colorfulness: the decoding rule's threshold (share of the originals').
        on_start: called with the :class:`Sweep` without settings before any is scored.
        on_setting: called with each :class:`Setting` as it is scored (progress).

    Returns:
        The :class:`Sweep`.
    """
    truth_c = float(np.mean([colorfulness(t) for _, t in images]))
    gray = float(np.mean([psnr(gray_baseline(t), t) for _, t in images]))
    if on_start is not None:
        on_start(Sweep(name, len(images), gray, (), min_colorfulness))
    settings = []
    for (size, sat), colorizer in colorizers.items():
        for spec in decodings:
            value, colour, mix = score_set(colorizer, images, spec)
            ratio = colour / truth_c if truth_c else float("nan")  # gray originals: NaN
            setting = Setting(size, sat, spec, mix, value, colour, ratio)
            settings.append(setting)
            if on_setting is not None:
                on_setting(setting)
    return Sweep(name, len(images), gray, tuple(settings), min_colorfulness)
