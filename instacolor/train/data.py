"""Training data: colour photos to (L, ab) pairs, crops, and boxes for the fusion stage.

Every random choice (crop, flip, sampled boxes) is drawn from a generator seeded by
``(seed, epoch, index)``, so a sample is the same whichever worker loads it and a
resumed run sees exactly the data an uninterrupted run would.

Sources:

* :func:`list_images` - every image file of a folder (recursively), minus those named
  in its ``GRAYSCALE_OR_LOWCHROMA.txt``;
* :func:`load_coco_boxes` - per image, the XYXY boxes of a COCO annotation file;
* :func:`load_coco_semantic` - per image, a label map painted from its instance masks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from instacolor.color import normalize_ab, normalize_l, rgb_to_lab
from instacolor.errors import InputError
from instacolor.hints import reference_hint_channels
from instacolor.io.coco import instances_from_coco
from instacolor.labels import UNKNOWN
from instacolor.structures import SemanticMap, integer_boxes

__all__ = [
    "HINT_PATCH_SIZES",
    "IMAGE_SUFFIXES",
    "ColorImages",
    "FusionScenes",
    "InstanceCrops",
    "WithHints",
    "batch_hints",
    "list_collate",
    "list_images",
    "load_coco_boxes",
    "load_coco_semantic",
    "sample_boxes",
    "sample_hint_patches",
    "sample_rng",
    "to_lab_tensors",
]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
_SKIP_LIST = "GRAYSCALE_OR_LOWCHROMA.txt"


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample: the same for the same ``(seed, epoch, index)``."""
    return np.random.default_rng([seed, epoch, index])


def list_images(folder: str | Path, skip_lists: Sequence[str | Path] = ()) -> list[Path]:
    """Sorted image files under ``folder``, without those its skip lists name as gray.

    A skip list (``GRAYSCALE_OR_LOWCHROMA.txt`` anywhere under ``folder``, plus any given
    in ``skip_lists``, e.g. the one at a dataset's root when ``folder`` is its image
    sub-folder) names one file per line, optionally followed by tab-separated reasons;
    files are matched by name.
    """
    folder = Path(folder)
    skip: set[str] = set()
    listings = [*folder.rglob(_SKIP_LIST), *(Path(p) for p in skip_lists)]
    for listing in listings:
        # one file per line, first field (``path`` or ``path<TAB>reason<TAB>chroma``)
        lines = listing.read_text().splitlines()
        skip.update(Path(line.split()[0]).name for line in lines if line.strip())
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in skip and p.is_file()
    )


def load_coco_boxes(annotation_file: str | Path) -> dict[str, np.ndarray]:
    """``{file_name: (N, 4) float XYXY boxes}`` from a COCO instances file."""
    data = json.loads(Path(annotation_file).read_text())
    names = {img["id"]: img["file_name"] for img in data["images"]}
    boxes: dict[str, list] = {name: [] for name in names.values()}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        if w >= 1 and h >= 1:
            boxes[names[ann["image_id"]]].append((x, y, x + w, y + h))
    return {k: np.asarray(v, np.float64).reshape(-1, 4) for k, v in boxes.items()}


def load_coco_semantic(annotation_file: str | Path) -> dict[str, np.ndarray]:
    """``{file_name: (H, W) uint8 labels}`` painted from a COCO file's instance masks.

    Pixels outside every mask are :data:`~instacolor.labels.UNKNOWN`; images without
    annotations are left out.
    """
    data = json.loads(Path(annotation_file).read_text())
    anns: dict[int, list] = {}
    for ann in data["annotations"]:
        anns.setdefault(ann["image_id"], []).append(ann)
    out = {}
    for img in data["images"]:
        if img["id"] in anns:
            inst = instances_from_coco(anns[img["id"]], (img["height"], img["width"]))
            out[img["file_name"]] = SemanticMap.from_instances(inst).labels.astype(np.uint8)
    return out


def sample_boxes(
    rng: np.random.Generator, size: tuple[int, int], count: int, *, min_frac: float = 0.15
) -> np.ndarray:
    """``count`` random XYXY boxes covering at least ``min_frac`` of each side."""
    h, w = size
    bw = rng.uniform(min_frac, 0.8, count) * w
    bh = rng.uniform(min_frac, 0.8, count) * h
    x0 = rng.uniform(0, 1, count) * (w - bw)
    y0 = rng.uniform(0, 1, count) * (h - bh)
    return np.stack([x0, y0, x0 + bw, y0 + bh], 1)


def to_lab_tensors(rgb: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(H, W, 3)`` -> normalised L ``(1, S, S)`` and ab ``(2, S, S)`` (squashed)."""
    t = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    lab = rgb_to_lab(t.clamp(0, 1))[0]
    return normalize_l(lab[:1]), normalize_ab(lab[1:])


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _augment(rgb: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]):
    """Random crop keeping ``scale`` of the area, and a horizontal flip."""
    h, w = rgb.shape[:2]
    area = rng.uniform(*scale)
    ch, cw = max(1, round(h * area**0.5)), max(1, round(w * area**0.5))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


class _Epoched(Dataset):
    """A dataset whose randomness depends on a settable epoch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return sample_rng(self.seed, self.epoch, index)


class ColorImages(_Epoched):
    """Stage 1: whole images as ``{"l": (1, S, S), "ab": (2, S, S)}`` (normalised).

    Args:
        files: image paths.
        size: training resolution ``S``.
        augment: random crop (70-100 % of the area) and flip.
        seed: seed of all random choices.
    """

    def __init__(self, files: Sequence[Path], size: int, *, augment: bool = True, seed: int = 0):
        super().__init__(seed)
        self.files, self.size, self.augment = list(files), size, augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rgb = _read_rgb(self.files[index])
        if self.augment:
            rgb = _augment(rgb, self.rng(index), (0.7, 1.0))
        light, ab = to_lab_tensors(rgb, self.size)
        return {"l": light, "ab": ab}


class InstanceCrops(_Epoched):
    """Stage 2: one random instance crop per image (annotated box, else a sampled box).

    Args:
        files: image paths.
        size: training resolution ``S``.
        boxes: ``{file_name: (N, 4) XYXY}``; images without boxes get a sampled box.
        seed: seed of all random choices.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        *,
        boxes: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.files, self.size, self.boxes = list(files), size, dict(boxes or {})

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        rgb = _read_rgb(self.files[index])
        h, w = rgb.shape[:2]
        known = self.boxes.get(self.files[index].name)
        if known is not None and len(known):
            box = known[rng.integers(len(known))]
        else:
            box = sample_boxes(rng, (h, w), 1)[0]
        x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
        x1, y1 = int(min(w, max(box[2], x0 + 1))), int(min(h, max(box[3], y0 + 1)))
        crop = rgb[y0:y1, x0:x1]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        light, ab = to_lab_tensors(crop, self.size)
        return {"l": light, "ab": ab}


class FusionScenes(_Epoched):
    """Stage 3: an image, its instance crops and their integer boxes.

    Returns ``{"l", "ab"}`` of the whole image, ``"crops"`` ``(N, 1, S, S)`` normalised
    crop L, ``"boxes"`` ``(N, 4)`` int64 XYXY and ``"size"`` ``(H, W)``; use batch size 1
    (instance counts differ). Images without boxes get ``sampled`` random boxes. With
    ``semantic`` maps, ``"labels"`` ``(S, S)`` int64 too (``UNKNOWN`` where a file's map
    does not fit it) and ``"drop_labels"``, a bool that is True for a ``label_dropout``
    fraction of samples and for files without a map (the network then trains without
    one, so it works with and without a map).

    Args:
        files: image paths.
        size: training resolution ``S``.
        boxes: ``{file_name: (N, 4) XYXY}``.
        max_instances: the largest boxes kept (8 in the reference).
        sampled: boxes drawn for images without annotations.
        seed: seed of all random choices.
        semantic: ``{file_name: (H, W) labels}`` (see :func:`load_coco_semantic`).
        label_dropout: probability that a sample is trained without its label map.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        *,
        boxes: Mapping[str, np.ndarray] | None = None,
        semantic: Mapping[str, np.ndarray] | None = None,
        max_instances: int = 8,
        sampled: int = 3,
        seed: int = 0,
        label_dropout: float = 0.0,
    ):
        super().__init__(seed)
        self.label_dropout = label_dropout
        self.files, self.size, self.boxes = list(files), size, dict(boxes or {})
        self.max_instances, self.sampled = max_instances, sampled
        self.semantic = None if semantic is None else dict(semantic)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        rgb = _read_rgb(self.files[index])
        h, w = rgb.shape[:2]
        boxes = self.boxes.get(self.files[index].name)
        if boxes is None or not len(boxes):
            boxes = sample_boxes(rng, (h, w), self.sampled)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = boxes[np.argsort(-area, kind="stable")[: self.max_instances]]
        ibox = integer_boxes(boxes, (h, w))  # as inference cuts its crops
        light, ab = to_lab_tensors(rgb, self.size)
        crops = [to_lab_tensors(rgb[y0:y1, x0:x1], self.size)[0] for x0, y0, x1, y1 in ibox]
        sample = {
            "l": light,
            "ab": ab,
            "crops": torch.stack(crops),
            "boxes": torch.from_numpy(ibox),
            "size": torch.tensor([h, w]),
        }
        if self.semantic is not None:
            labels = self.semantic.get(self.files[index].name)
            if labels is None or labels.shape != (h, w):
                sample["labels"] = torch.full((self.size, self.size), UNKNOWN, dtype=torch.int64)
            else:
                lab = torch.from_numpy(labels.astype(np.int64))[None, None].float()
                lab = F.interpolate(lab, size=(self.size, self.size), mode="nearest")
                sample["labels"] = lab[0, 0].long()
            drop = self.label_dropout > 0 and rng.random() < self.label_dropout
            # a scene without a map (e.g. extra scenes with sampled boxes) trains without one
            sample["drop_labels"] = torch.tensor(bool(drop or labels is None))
        return sample


#: Patch sides of Zhang et al. 2017's random hints (``opt.sample_Ps``).
HINT_PATCH_SIZES = tuple(range(1, 10))


def sample_hint_patches(
    rng: np.random.Generator, size: tuple[int, int], sample_p: float
) -> list[tuple[int, int, int]]:
    """Random hint patches ``(row, column, side)`` as Zhang et al. 2017 train with them.

    The number of points is geometric (another point while ``rand < 1 - sample_p``:
    ``sample_p = 1`` gives none, their 1/8 about 7 on average), each patch side uniform in
    :data:`HINT_PATCH_SIZES`, its top-left corner normal around the centre (mean
    ``(H - P + 1) / 2``, deviation ``(H - P + 1) / 4``, clipped), as
    ``util.add_color_patches_rand_gt`` samples them.
    """
    h, w = size
    patches = []
    while rng.random() < 1 - sample_p:
        p = int(rng.choice(HINT_PATCH_SIZES))
        row = int(np.clip(rng.normal((h - p + 1) / 2, (h - p + 1) / 4), 0, h - p))
        col = int(np.clip(rng.normal((w - p + 1) / 2, (w - p + 1) / 4), 0, w - p))
        patches.append((row, col, p))
    return patches


class WithHints(Dataset):
    """A stage's samples plus random ground-truth hints: ``"hints"`` ``(3, S, S)``.

    The hint channels are the reference's (:func:`~instacolor.hints.
    reference_hint_channels` of :func:`sample_hint_patches`) with the mask 0/1; the
    training loop adds the network's automatic mask value. Crops get no hints.

    Args:
        dataset: a stage dataset whose samples hold ``"ab"`` ``(2, S, S)`` normalised.
        sample_p: stopping probability of the geometric number of points (1: no hints,
            Zhang et al. 2017 train with 1/8).
        seed: seed of the hint draws (per epoch and index, as the dataset's own).
    """

    def __init__(self, dataset: Dataset, sample_p: float, *, seed: int = 0) -> None:
        if not 0 < sample_p <= 1:
            raise InputError(f"hint sample_p: expected a number in (0, 1], received {sample_p!r}")
        self.dataset, self.sample_p, self.seed, self.epoch = dataset, sample_p, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[index]
        ab = sample["ab"].numpy()
        rng = sample_rng(self.seed + 7919, self.epoch, index)  # not the dataset's own draws
        patches = sample_hint_patches(rng, ab.shape[-2:], self.sample_p)
        sample["hints"] = torch.from_numpy(reference_hint_channels(ab, patches, mask_cent=0.0))
        return sample


def batch_hints(batch: dict, mask_value: float, device, index: int | None = None):
    """A batch's ``"hints"`` as network hint channels (the mask shifted by ``mask_value``).

    Args:
        batch: a collated batch (``"hints"`` stacked ``(B, 3, S, S)``, or a list of
            ``(3, S, S)`` from stage 3's list collate).
        mask_value: the network's automatic mask value (the reference's ``-mask_cent``).
        device: where the tensor goes.
        index: one sample of a list batch (``(1, 3, S, S)``), or None for all.

    Returns:
        float32 ``(B, 3, S, S)``, or None when the batch has no hints.
    """
    if "hints" not in batch:
        return None
    hints = batch["hints"] if index is None else batch["hints"][index][None]
    hints = hints.to(device, torch.float32).clone()
    hints[:, 2] += mask_value
    return hints


def list_collate(batch: list[dict]) -> dict[str, list | torch.Tensor]:
    """Collate for stage 3: stack same-shaped entries, keep the rest as lists."""
    out: dict[str, list | torch.Tensor] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        same = all(v.shape == values[0].shape for v in values)
        out[key] = torch.stack(values) if same and key in ("l", "ab", "size") else values
    return out
