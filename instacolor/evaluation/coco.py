"""The COCO protocols: held-out scenes scored with their ground-truth instances.

The scenes of a COCO folder (``annotations/instances_train2017.json`` and the images
beside it) are split as training splits them: every ``every``-th sorted image is held
out (:func:`coco_heldout`), the others are the training scenes (:func:`coco_training`).

:func:`evaluate_coco` colorizes each held-out scene in five modes (gray baseline, full
image only, semantic map without instances, instance fusion, fusion + semantic map
painted from the instance masks) and scores them at full resolution and at 256x256
(the full-resolution result and the original both squashed), with the boundary
colour-bleeding error (mean ab error within 3 px of instance boundaries) and the PSNR
inside the instance masks; it also reports the mean fusion weight an instance receives
inside its own box. :func:`instance_colors` gives each instance its ground-truth mean
colour as a hint and compares with fusion without hints (256x256).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from instacolor import Colorizer, Hints, Instances, Lab, SemanticMap
from instacolor.errors import InputError
from instacolor.evaluation.scoring import (
    MetricTable,
    Row,
    ab_planes,
    gray_plane,
    label,
    mean_table,
    read_rgb,
    score,
    small,
)
from instacolor.io.coco import instances_from_coco
from instacolor.metrics import boundary_bleeding, colorfulness, gray_baseline, psnr
from instacolor.models.placement import box_placements
from instacolor.perceptual import Lpips
from instacolor.train.data import list_images

__all__ = [
    "ANNOTATIONS",
    "CocoReport",
    "CocoScene",
    "OwnBoxWeights",
    "coco_heldout",
    "coco_scenes",
    "coco_training",
    "evaluate_coco",
    "instance_colors",
    "masked_psnr",
    "own_box_weights",
]

#: The annotation file of a COCO folder, relative to it.
ANNOTATIONS = Path("annotations") / "instances_train2017.json"
MODES = (
    "gray baseline (ab=0)",
    "full image only",
    "semantic, no instances",
    "instance fusion",
    "fusion + semantic",
)


@dataclass(frozen=True)
class CocoScene:
    """A held-out COCO scene.

    Attributes:
        path: its image file.
        annotations: its COCO instance annotations (dicts as in the JSON file).
    """

    path: Path
    annotations: tuple[Mapping, ...]


def _annotations(coco: Path) -> tuple[dict[str, int], dict[int, list]]:
    """``{file name: image id}`` of annotated images and the annotations by image id."""
    file = Path(coco) / ANNOTATIONS
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        anns: dict[int, list] = {}
        for a in data["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        ids = {i["file_name"]: i["id"] for i in data["images"] if i["id"] in anns}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"--coco: expected a COCO folder with {ANNOTATIONS.as_posix()} (instances with "
            f"'images' and 'annotations'), received {str(coco)!r} ({type(err).__name__}: "
            f"{err})"
        ) from None
    return ids, anns


def coco_heldout(coco: Path, every: int) -> list[CocoScene]:
    """The held-out annotated scenes: every ``every``-th sorted image of ``coco``.

    Args:
        coco: a COCO folder (``annotations/instances_train2017.json`` and images).
        every: the split, >= 1 (training holds out every ``every``-th image).

    Returns:
        The held-out images that have annotations, in order.

    Raises:
        InputError: no annotation file, or one that is not COCO instances.
    """
    held_out = set(list_images(coco)[::every])
    return [scene for scene in coco_scenes(coco) if scene.path in held_out]


def coco_scenes(coco: Path) -> list[CocoScene]:
    """Every annotated image of ``coco`` (sorted by path) with its annotations.

    Raises:
        InputError: no annotation file, or one that is not COCO instances.
    """
    ids, anns = _annotations(coco)
    return [CocoScene(p, tuple(anns[ids[p.name]])) for p in list_images(coco) if p.name in ids]


def coco_training(coco: Path, every: int) -> list[Path]:
    """The scenes training trains on: every image of ``coco`` but each ``every``-th."""
    files = list_images(coco)
    held = set(files[::every])
    return [f for f in files if f not in held]


def masked_psnr(pred: np.ndarray, truth: np.ndarray, masks: np.ndarray | None) -> float:
    """PSNR of the pixels inside the union of the instance masks.

    Args:
        pred: ``(H, W, 3)`` uint8.
        truth: ``(H, W, 3)`` uint8.
        masks: ``(N, H, W)`` bool instance masks, or None.

    Returns:
        PSNR in dB; NaN without masks or when they are empty.
    """
    if masks is None or not masks.any():
        return float("nan")
    inside = masks.any(0)
    err = (pred.astype(np.float64) - truth.astype(np.float64))[inside] ** 2
    return float(20 * np.log10(255.0 / np.sqrt(max(err.mean(), 1e-12))))


def own_box_weights(result) -> list[tuple[float, float]]:
    """Per instance: its mean fusion weight inside its own box.

    Args:
        result: a ``ColorizeResult`` of a colorization with instances.

    Returns:
        ``[(conv10_2 weight, mean over the 13 fusion points), ...]``, one per instance;
        empty without instances or weight maps.
    """
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


@dataclass(frozen=True)
class OwnBoxWeights:
    """Mean fusion weight instances receive inside their own boxes.

    Attributes:
        instances: instances fused.
        conv10_2: mean weight at the last fusion point.
        all_points: mean over the 13 fusion points.
    """

    instances: int
    conv10_2: float
    all_points: float

    def markdown(self) -> str:
        """One sentence."""
        return (
            f"Mean fusion weight an instance receives inside its own box (fusion + semantic, "
            f"{self.instances} instances): conv10_2 {self.conv10_2:.3f}, mean of the 13 "
            f"points {self.all_points:.3f} (equal logits would give 1 / (N + 1): "
            "every instance takes softmax weight everywhere, as in the reference)"
        )


@dataclass(frozen=True)
class CocoReport:
    """The held-out COCO scores.

    Attributes:
        full: the five modes at full resolution (with ``bleeding`` and ``mask_psnr``).
        small: the five modes squashed to 256x256.
        own_box: the fusion weight of instances in their own boxes; None if none fused.
    """

    full: MetricTable
    small: MetricTable
    own_box: OwnBoxWeights | None

    def markdown(self) -> str:
        """Both tables and the own-box sentence."""
        weight = self.own_box.markdown() if self.own_box else "No instance was fused."
        return "\n\n".join((self.full.markdown(), self.small.markdown(), weight))


def evaluate_coco(
    colorizer: Colorizer, coco: Path, scenes: Sequence[CocoScene], lpips: Lpips | None = None,
    *, every: int = 4,
) -> CocoReport:  # fmt: skip
    """Score the five modes on held-out scenes with their ground-truth instances.

    Args:
        colorizer: what colorizes.
        coco: the COCO folder (its name titles the tables).
        scenes: the scenes, from :func:`coco_heldout`.
        lpips: the LPIPS metric, or None to leave it out.
        every: the split the scenes came from (for the title).

    Returns:
        The :class:`CocoReport`.

    Raises:
        DecodeError: a scene's image cannot be read.
    """
    rows: dict[str, list] = {m: [] for m in MODES}
    squashed: dict[str, list] = {m: [] for m in MODES}
    own: list[tuple[float, float]] = []
    for scene in scenes:
        truth = read_rgb(scene.path)
        gray = gray_plane(truth)
        inst = instances_from_coco(list(scene.annotations), truth.shape[:2])
        sem = SemanticMap.from_instances(inst)
        masks = inst.masks if inst.masks is not None else None
        ab_truth = ab_planes(truth)
        fused = colorizer.colorize_full(gray, instances=inst, semantic=sem)
        own.extend(own_box_weights(fused))
        outputs = {
            MODES[0]: gray_baseline(truth),
            MODES[1]: colorizer.colorize(gray),
            MODES[2]: colorizer.colorize(gray, semantic=sem),
            MODES[3]: colorizer.colorize(gray, instances=inst),
            MODES[4]: fused.image,
        }
        for name, pred in outputs.items():
            scores = score(pred, truth, lpips)
            scores["bleeding"] = (
                boundary_bleeding(ab_planes(pred), ab_truth, masks) if masks is not None else np.nan
            )
            scores["mask_psnr"] = masked_psnr(pred, truth, masks)
            rows[name].append(scores)
            squashed[name].append(score(small(pred), small(truth), lpips))
    title = f"{label(Path(coco).name)}, {len(scenes)} images (every {every}th)"
    return CocoReport(
        full=mean_table(f"{title}, full resolution", rows),
        small=mean_table(f"{title}, resized to 256x256", squashed),
        own_box=OwnBoxWeights(
            instances=len(own),
            conv10_2=float(np.mean([o[0] for o in own])),
            all_points=float(np.mean([o[1] for o in own])),
        )
        if own
        else None,
    )


def instance_colors(colorizer: Colorizer, coco: Path, scenes: Sequence[CocoScene]) -> MetricTable:
    """Held-out scenes at 256x256: fusion without hints vs one true colour per instance.

    Each instance's colour is the mean ab of the ground truth under its mask (masks
    squashed to 256x256 with nearest-neighbour; instances left empty are dropped).

    Args:
        colorizer: what colorizes.
        coco: the COCO folder (its name titles the table).
        scenes: the scenes, from :func:`coco_heldout`; those without masks are skipped.

    Returns:
        Rows ``"gray baseline (ab=0)"``, ``"instance fusion"``,
        ``"fusion + instance colours"``; columns ``psnr``, ``colorfulness``.
    """
    names = ("gray baseline (ab=0)", "instance fusion", "fusion + instance colours")
    rows: dict[str, list] = {name: [] for name in names}
    for scene in scenes:
        truth = read_rgb(scene.path)
        inst = instances_from_coco(list(scene.annotations), truth.shape[:2])
        if inst.masks is None or not len(inst):
            continue
        view = small(truth)
        masks = [
            np.asarray(Image.fromarray(m).resize((256, 256), Image.NEAREST)) for m in inst.masks
        ]
        keep = [i for i, m in enumerate(masks) if m.any()]
        if not keep:
            continue
        inst = Instances.from_masks(np.stack([masks[i] for i in keep]))
        ab = ab_planes(view)
        colors = {j: Lab(*ab[:, masks[i]].mean(1).tolist()) for j, i in enumerate(keep)}
        gray = gray_plane(view)
        preds = (gray_baseline(view), colorizer.colorize(gray, instances=inst))
        hinted = colorizer.colorize(gray, instances=inst, hints=Hints(instance_colors=colors))
        for name, pred in zip(names, (*preds, hinted)):
            rows[name].append({"psnr": psnr(pred, view), "colorfulness": colorfulness(pred)})
    count = len(rows[names[0]])
    title = f"{label(Path(coco).name)} held-out, one colour per instance, 256x256, {count} images"
    if not count:
        nan = {"psnr": float("nan"), "colorfulness": float("nan")}
        empty = tuple(Row(name, nan, 0) for name in names)
        return MetricTable(title, ("psnr", "colorfulness"), empty)
    return mean_table(title, rows)
