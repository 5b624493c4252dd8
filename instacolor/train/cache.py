"""A cache of what the frozen encoder computes, so that decoder epochs are cheap.

For guided weights (:mod:`instacolor.models.guidance`) the frozen encoder costs about as
much as the rest of a training step. Its output depends only on the crop, so each
training photo is cropped once (a seeded random crop of 70-100 % of its area, as
:class:`~instacolor.train.data.ColorImages` draws), and the crop's L, ab and five encoder
feature maps are stored as float16 in memory-mapped arrays. Epochs then read the cache
and flip a sample (image and features together) at random.

Building is resumable: the arrays are preallocated, filled in chunks, and a small JSON
file records how many samples are complete; a killed build continues where it stopped.

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from pathlib import Path
    >>> from instacolor.models.encoder import EfficientNetLite0
    >>> from instacolor.train.cache import build_cache, EncodedImages
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     rgb = np.full((40, 40, 3), (200, 60 * i, 30), np.uint8)
    ...     Image.fromarray(rgb).save(folder / f"{i}.png")
    >>> cache = build_cache(sorted(folder.glob("*.png")), folder / "cache", size=32,
    ...                     encoder=EfficientNetLite0().eval(), progress=False)
    >>> data = EncodedImages(cache)
    >>> len(data), data[0]["l"].shape, len(data[0]["encoded"])
    (2, torch.Size([1, 32, 32]), 5)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from instacolor.errors import InputError
from instacolor.models.encoder import ENCODER_CHANNELS, ENCODER_STRIDES, EfficientNetLite0
from instacolor.train.data import _augment, _Epoched, _read_rgb, sample_rng, to_lab_tensors

__all__ = ["EncodedImages", "build_cache"]

_META = "cache.json"
_CHUNK = 32


def _shapes(n: int, size: int) -> dict[str, tuple[int, ...]]:
    shapes = {"l": (n, 1, size, size), "ab": (n, 2, size, size)}
    for i, (c, s) in enumerate(zip(ENCODER_CHANNELS, ENCODER_STRIDES, strict=True)):
        side = -(-size // s)
        shapes[f"f{i}"] = (n, c, side, side)
    return shapes


def _open(folder: Path, n: int, size: int, mode: str) -> dict[str, np.memmap]:
    return {
        key: np.lib.format.open_memmap(
            folder / f"{key}.npy", mode=mode, dtype=np.float16, shape=shape
        )
        if mode == "w+"
        else np.load(folder / f"{key}.npy", mmap_mode=mode)
        for key, shape in _shapes(n, size).items()
    }


def _digest(files: Sequence[Path], size: int, seed: int) -> str:
    h = hashlib.sha256(f"{size}:{seed}".encode())
    for f in files:
        h.update(str(f).encode() + b"\0")
    return h.hexdigest()


def build_cache(
    files: Sequence[Path],
    folder: str | os.PathLike,
    *,
    size: int,
    encoder: EfficientNetLite0,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Crop every photo once and store its L, ab and encoder features (resumable).

    Args:
        files: colour photos.
        folder: the cache folder (created; an existing cache of the same files, size and
            seed is completed, not rebuilt).
        size: crop side ``S`` (a multiple of 32).
        encoder: the frozen encoder.
        seed: seed of the crops.
        progress: show a progress bar.

    Returns:
        ``folder``.

    Raises:
        InputError: ``folder`` holds a cache of other files, size or seed.
    """
    if size % 32:
        raise InputError(f"size: expected a multiple of 32, received {size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / _META
    digest = _digest(files, size, seed)
    meta = {"count": len(files), "size": size, "seed": seed, "digest": digest, "done": 0}
    if meta_path.is_file():
        saved = json.loads(meta_path.read_text())
        if saved.get("digest") != digest:
            raise InputError(
                f"{folder}: expected a cache of these {len(files)} photos at size {size} "
                f"(seed {seed}), received one of {saved.get('count')} at size "
                f"{saved.get('size')} (seed {saved.get('seed')}); use another folder"
            )
        meta = saved
        arrays = _open(folder, len(files), size, "r+")
    else:
        arrays = _open(folder, len(files), size, "w+")
        _write_meta(meta_path, meta)
    bar = tqdm(total=len(files), initial=meta["done"], disable=not progress, desc="cache")
    for start in range(meta["done"], len(files), _CHUNK):
        stop = min(start + _CHUNK, len(files))
        pairs = [_crop(files[i], size, seed, i) for i in range(start, stop)]
        light = torch.stack([p[0] for p in pairs])
        with torch.no_grad():
            feats = encoder.features(light)
        arrays["l"][start:stop] = light.numpy()
        arrays["ab"][start:stop] = torch.stack([p[1] for p in pairs]).numpy()
        for i, f in enumerate(feats):
            arrays[f"f{i}"][start:stop] = f.numpy()
        for a in arrays.values():
            a.flush()
        meta["done"] = stop
        _write_meta(meta_path, meta)
        bar.update(stop - start)
    bar.close()
    return folder


def _crop(path: Path, size: int, seed: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = _augment(_read_rgb(path), sample_rng(seed, 0, index), (0.7, 1.0))
    if rgb.strides[1] < 0:  # _augment flips half the crops: flipping is done per epoch
        rgb = rgb[:, ::-1]
    return to_lab_tensors(np.ascontiguousarray(rgb), size)


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)


class EncodedImages(_Epoched):
    """Samples of a complete cache: ``{"l", "ab", "encoded"}`` with a seeded random flip.

    Args:
        folder: a folder written by :func:`build_cache`.
        indices: the samples to use (default all).
        augment: flip at random (image and features together).
        seed: seed of the flips.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        indices: Sequence[int] | None = None,
        *,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        folder = Path(folder)
        meta = json.loads((folder / _META).read_text())
        if meta["done"] != meta["count"]:
            raise InputError(
                f"{folder}: expected a complete cache, received {meta['done']} of "
                f"{meta['count']} samples; finish it with build_cache"
            )
        self.arrays = _open(folder, meta["count"], meta["size"], "r")
        self.indices = list(range(meta["count"])) if indices is None else list(indices)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        i = self.indices[index]
        flip = self.augment and self.rng(index).random() < 0.5

        def read(key: str) -> torch.Tensor:
            a = self.arrays[key][i]
            return torch.from_numpy(np.array(a[..., ::-1] if flip else a, dtype=np.float32))

        encoded = tuple(read(f"f{k}") for k in range(len(ENCODER_CHANNELS)))
        return {"l": read("l"), "ab": read("ab"), "encoded": encoded}
