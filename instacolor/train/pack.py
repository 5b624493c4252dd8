"""Training data for one accelerator: a compact pack, decoded once, augmented on the device.

The training machine needs only the repository and a small data folder: a *pack* built
beforehand from the photo folders (:func:`build_pack`), a folder of:

* ``train.npz`` - re-encoded (WebP) training photos, squashed to ``store_size`` squares,
  as one byte string with offsets: a seeded random subset of the training split that fits
  ``train_mib``;
* ``val/`` - the held-out training photos (every ``holdout_every``-th sorted file, as
  ``tools/train.py`` holds out for stage 1), copied unchanged;
* ``coco/`` - the COCO scenes re-encoded at most ``coco_side`` pixels on a side, and
  ``coco.npz`` with their boxes and semantic label maps at that size and which scenes are
  held out (every ``coco_holdout_every``-th sorted file, as ``instacolor evaluate
  --holdout-every 4``);
* ``manifest.json`` - sources, split rules, counts and sizes.

:func:`load_pack` decodes the training photos once into a ``(N, 3, S, S)`` uint8 tensor on
the device; :func:`crop_batch` cuts, resizes, flips and converts a batch to Lab there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.ops import roi_align

from instacolor.color import normalize_ab, normalize_l, rgb_to_lab
from instacolor.errors import InputError
from instacolor.labels import UNKNOWN
from instacolor.models.encoder import ENCODER_FILE_ENV, encoder_file, verify_encoder_file
from instacolor.train.data import ColorImages, list_images, load_coco_boxes, load_coco_semantic

__all__ = [
    "PACK_VERSION",
    "Pack",
    "build_pack",
    "crop_batch",
    "crop_boxes",
    "decode_images",
    "load_pack",
]

PACK_VERSION = 1
_MANIFEST = "manifest.json"


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    return buffer.getvalue()


def _bytes_array(chunks: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(chunks) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return np.frombuffer(b"".join(chunks), np.uint8), offsets


def build_pack(
    train_dir: str | Path,
    coco_dir: str | Path,
    out: str | Path,
    *,
    train_mib: float = 32.0,
    max_images: int | None = None,
    store_size: int = 144,
    quality: int = 80,
    coco_side: int = 384,
    holdout_every: int = 115,
    coco_holdout_every: int = 4,
    seed: int = 0,
    encoder: bool = False,
) -> dict:
    """Write the pack of ``train_dir`` and ``coco_dir`` to the folder ``out``.

    Args:
        train_dir: folder of colour photos (the data pack's ``train/``).
        coco_dir: COCO root with ``annotations/instances_*.json`` and its images.
        out: the pack folder (replaced if it exists).
        train_mib: at most this many MiB of re-encoded training photos.
        max_images: at most this many training photos (None: as many as fit).
        store_size: side of the stored squares (photos are squashed, as training does).
        quality: WebP quality of the training photos.
        coco_side: longest side of the re-encoded COCO scenes.
        holdout_every: every Nth sorted training photo is held out (stage 1's split).
        coco_holdout_every: every Nth sorted COCO scene is held out (the evaluation's split).
        seed: seed of the subset's order.
        encoder: also carry the pretrained encoder's weights (guided training on a machine
            without their package: :func:`pack_encoder` finds them there).

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        InputError: no photos, scenes or annotations.
        MissingDependencyError, WeightsError: ``encoder`` and the encoder's file cannot be
            found or is another file.
    """
    train_dir, coco_dir, out = Path(train_dir), Path(coco_dir), Path(out)
    files = list_images(train_dir)
    scenes = list_images(coco_dir)
    annotations = sorted((coco_dir / "annotations").glob("instances_*.json"))
    if not files or not scenes or not annotations:
        raise InputError(
            f"pack: expected photos under {train_dir} and COCO scenes with "
            f"annotations/instances_*.json under {coco_dir}, received {len(files)} photos, "
            f"{len(scenes)} scenes, {len(annotations)} annotation files; point --data at a "
            "folder of colour photos and --coco at a COCO root (annotations/ and its images)"
        )
    if out.exists():
        shutil.rmtree(out)
    (out / "val").mkdir(parents=True)
    (out / "coco").mkdir()
    held = files[::holdout_every]
    for path in held:
        shutil.copyfile(path, out / "val" / path.name)
    rest = [f for i, f in enumerate(files) if i % holdout_every]
    order = np.random.default_rng(seed).permutation(len(rest))
    chunks, names, budget, used = [], [], int(train_mib * 2**20), 0
    for i in order:
        if max_images is not None and len(chunks) >= max_images:
            break
        with Image.open(rest[i]) as im:
            square = im.convert("RGB").resize((store_size, store_size), Image.BILINEAR)
        data = _encode(square, "WEBP", quality)
        if used + len(data) > budget:
            break
        used += len(data)
        chunks.append(data)
        names.append(rest[i].name)
    blob, offsets = _bytes_array(chunks)
    np.savez(out / "train.npz", data=blob, offsets=offsets, names=np.array(names))
    _pack_coco(scenes, annotations, out, coco_side, coco_holdout_every)
    carried = None
    if encoder:
        source = verify_encoder_file(encoder_file())
        (out / "encoder").mkdir()
        shutil.copyfile(source, out / "encoder" / source.name)
        carried = f"encoder/{source.name}"
    manifest = {
        "version": PACK_VERSION,
        "train_dir": str(train_dir),
        "coco_dir": str(coco_dir),
        "store_size": store_size,
        "quality": quality,
        "coco_side": coco_side,
        "holdout_every": holdout_every,
        "coco_holdout_every": coco_holdout_every,
        "seed": seed,
        "train_split": len(rest),
        "train_packed": len(names),
        "train_bytes": int(blob.size),
        "val": len(held),
        "coco_train": len(scenes) - len(scenes[::coco_holdout_every]),
        "coco_val": len(scenes[::coco_holdout_every]),
        "encoder": carried,
    }
    (out / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def pack_encoder(folder: str | Path, manifest: dict) -> Path | None:
    """Point the encoder loader at the weights a pack carries (``build_pack(encoder=True)``).

    Sets ``$INSTACOLOR_ENCODER_FILE`` to the pack's copy unless it is set already.

    Args:
        folder: the pack folder.
        manifest: its manifest.

    Returns:
        The carried file, or None when the pack carries none.

    Raises:
        InputError: the manifest names a file the pack lacks, or one outside the pack.
    """
    name = manifest.get("encoder")
    if not name:
        return None
    folder = Path(folder).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise InputError(
            f"pack {folder}: expected the encoder weights its manifest names ({name!r}) "
            "inside the pack, received no such file; rebuild the pack with "
            "tools/train_budget.py --pack-to ... --guided"
        )
    os.environ.setdefault(ENCODER_FILE_ENV, str(path))
    return path


def _pack_coco(scenes: list[Path], annotations: list[Path], out: Path, side: int, every: int):
    boxes, semantic = {}, {}
    for ann in annotations:
        boxes.update(load_coco_boxes(ann))
        semantic.update(load_coco_semantic(ann))
    all_boxes, counts, labels, shapes = [], [], [], []
    for path in scenes:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        scale = min(1.0, side / max(w, h))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb.resize(size, Image.BILINEAR).save(out / "coco" / path.name, "JPEG", quality=90)
        known = boxes.get(path.name, np.zeros((0, 4)))
        all_boxes.append(known * np.array([size[0] / w, size[1] / h] * 2))
        counts.append(len(known))
        label = semantic.get(path.name)
        label = None if label is None or label.shape != (h, w) else label
        label = np.full((h, w), UNKNOWN, np.uint8) if label is None else label
        labels.append(np.asarray(Image.fromarray(label).resize(size, Image.NEAREST)).ravel())
        shapes.append((size[1], size[0], int(path.name in semantic)))
    np.savez_compressed(
        out / "coco.npz",
        names=np.array([p.name for p in scenes]),
        held_out=np.arange(len(scenes)) % every == 0,
        boxes=np.concatenate(all_boxes).reshape(-1, 4),
        box_counts=np.array(counts, np.int64),
        labels=np.concatenate(labels),
        shapes=np.array(shapes, np.int64).reshape(-1, 3),
    )


def decode_images(blob: np.ndarray, offsets: np.ndarray, *, threads: int = 16) -> np.ndarray:
    """Decode a byte string of same-sized images into a ``(N, H, W, 3)`` uint8 array."""

    def one(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())) as im:
            return np.asarray(im.convert("RGB"))

    n = len(offsets) - 1
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return np.stack(list(pool.map(one, range(n)))) if n else np.zeros((0, 1, 1, 3), np.uint8)


@dataclass
class Pack:
    """A loaded pack.

    Attributes:
        images: ``(N, 3, S, S)`` uint8 training photos on the device.
        val_light: ``(V, 1, T, T)`` normalised L of the held-out photos at the training
            size ``T`` (as ``ColorImages(augment=False)`` makes them), on the device.
        val_ab: ``(V, 2, T, T)`` their normalised ab.
        coco_train: paths of the training scenes (their pack copies).
        coco_val: paths of the held-out scenes.
        boxes: ``{file_name: (N, 4) XYXY}`` in pack pixels.
        semantic: ``{file_name: (H, W) uint8 labels}`` of annotated scenes.
        manifest: the pack's manifest.
        decode_s: seconds spent decoding.
    """

    images: torch.Tensor
    val_light: torch.Tensor
    val_ab: torch.Tensor
    coco_train: list[Path]
    coco_val: list[Path]
    boxes: dict[str, np.ndarray]
    semantic: dict[str, np.ndarray]
    manifest: dict
    decode_s: float


def load_pack(
    folder: str | Path,
    size: int,
    device: str | torch.device,
    *,
    max_images: int | None = None,
    max_val: int | None = None,
    max_scenes: int | None = None,
    threads: int = 16,
) -> Pack:
    """Decode a pack once: photos to a uint8 tensor on ``device``, scenes to paths.

    Args:
        folder: a folder written by :func:`build_pack`.
        size: training size (for the held-out photos' L and ab).
        device: where the tensors live.
        max_images / max_val / max_scenes: keep only the first ones (tiny runs).
        threads: decoding threads.
    """
    folder = Path(folder)
    manifest_path = folder / _MANIFEST
    if not manifest_path.is_file():
        raise InputError(
            f"pack: expected {manifest_path} (tools/train_budget.py --pack-to writes it), "
            "received no such file; build the pack first"
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") != PACK_VERSION:
        raise InputError(
            f"pack {folder}: expected version {PACK_VERSION}, received "
            f"{manifest.get('version')!r}; rebuild it with tools/train_budget.py --pack-to"
        )
    t0 = time.perf_counter()
    train = np.load(folder / "train.npz")
    offsets = train["offsets"][: None if max_images is None else max_images + 1]
    images = torch.from_numpy(decode_images(train["data"], offsets, threads=threads))
    images = images.permute(0, 3, 1, 2).contiguous().to(device)
    val_files = sorted((folder / "val").iterdir())[:max_val]
    val = ColorImages(val_files, size, augment=False)
    samples = [val[i] for i in range(len(val))]
    val_light = torch.stack([s["l"] for s in samples]).to(device)
    val_ab = torch.stack([s["ab"] for s in samples]).to(device)
    with np.load(folder / "coco.npz") as stored:  # each access of an npz entry reads it
        coco = {key: stored[key] for key in stored.files}
    boxes, semantic = {}, {}
    starts = np.concatenate([[0], np.cumsum(coco["box_counts"])])
    pixels = np.concatenate([[0], np.cumsum(coco["shapes"][:, 0] * coco["shapes"][:, 1])])
    for i, name in enumerate(coco["names"].tolist()):
        boxes[name] = coco["boxes"][starts[i] : starts[i + 1]]
        h, w, annotated = coco["shapes"][i]
        if annotated:
            semantic[name] = coco["labels"][pixels[i] : pixels[i + 1]].reshape(h, w)
    paths = [folder / "coco" / n for n in coco["names"].tolist()]
    held = coco["held_out"]
    coco_train = [p for p, h in zip(paths, held) if not h][:max_scenes]
    coco_val = [p for p, h in zip(paths, held) if h][:max_scenes]
    return Pack(
        images=images,
        val_light=val_light,
        val_ab=val_ab,
        coco_train=coco_train,
        coco_val=coco_val,
        boxes=boxes,
        semantic=semantic,
        manifest=manifest,
        decode_s=time.perf_counter() - t0,
    )


def crop_boxes(
    rng: np.random.Generator, size: tuple[int, int], count: int, scale=(0.7, 1.0)
) -> np.ndarray:
    """``(count, 4)`` XYXY pixel boxes of random crops keeping ``scale`` of the area.

    The crops of :class:`~instacolor.train.data.ColorImages` (same aspect as the image,
    integer sides and offsets), drawn for a whole batch at once.
    """
    h, w = size
    area = np.sqrt(rng.uniform(*scale, count))
    ch, cw = np.maximum(1, np.round(h * area)), np.maximum(1, np.round(w * area))
    y0 = np.floor(rng.uniform(0, 1, count) * (h - ch + 1))
    x0 = np.floor(rng.uniform(0, 1, count) * (w - cw + 1))
    return np.stack([x0, y0, x0 + cw, y0 + ch], 1)


def crop_batch(
    images: torch.Tensor,
    index: torch.Tensor,
    boxes: torch.Tensor,
    flip: torch.Tensor,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut, resize, flip and convert a batch of training photos on their device.

    Args:
        images: ``(N, 3, H, W)`` uint8 photos.
        index: ``(B,)`` int64 photo of each sample.
        boxes: ``(B, 4)`` float XYXY crop boxes in pixels (pixel ``i`` spans ``[i, i+1)``).
        flip: ``(B,)`` bool, flip the sample left-right.
        size: output side ``S``.

    Returns:
        ``(l (B, 1, S, S), ab (B, 2, S, S))`` normalised float32 (``(L - 50) / 100``,
        ``ab / 110``): one bilinear sample at each output pixel's centre, i.e.
        ``F.interpolate(mode="bilinear", align_corners=False)`` of the crop (the crops
        shrink by at most 144/128 at the defaults, so no anti-aliasing is needed), except
        that the outermost samples interpolate towards the pixels just outside the box
        where ``interpolate`` repeats the crop's edge.
    """
    rgb = images[index].float()
    rois = torch.cat((torch.arange(len(index), device=rgb.device)[:, None], boxes.to(rgb)), 1)
    out = roi_align(rgb, rois, (size, size), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    out = torch.where(flip.to(out.device)[:, None, None, None], out.flip(-1), out)
    lab = rgb_to_lab((out / 255.0).clamp(0, 1))
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])
