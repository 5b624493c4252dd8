"""Training batches of a fine-tuning run: augmented crops of the collection's photos, or
(guided weights) crops whose frozen-encoder features are cached once on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from instacolor.train.cache import EncodedImages, build_cache
from instacolor.train.collection import Collection
from instacolor.train.data import _augment, to_lab_tensors

__all__ = ["CACHE_COPIES", "cached_batches", "photo_batches"]

CACHE_COPIES = 4  # guided weights: cached crops per training photo


def photo_batches(collection: Collection, train: list[int], size: int, batch: int, seed: int):
    """``next_batch(step)``: ``batch`` augmented crops of the ``train`` photos at ``size``.

    Returns:
        A function of the step giving ``{"l": (B, 1, S, S), "ab": (B, 2, S, S)}``; the
        same step gives the same batch (seeded by ``seed`` and the step).
    """
    photos = [collection.photos[i] for i in train]

    def next_batch(step: int) -> dict:
        rng = np.random.default_rng([seed, step])
        pairs = []
        for i in rng.choice(len(photos), size=min(batch, len(photos)), replace=False):
            crop = _augment(photos[i], rng, (0.5, 1.0))
            pairs.append(to_lab_tensors(np.ascontiguousarray(crop), size))
        return {"l": torch.stack([p[0] for p in pairs]), "ab": torch.stack([p[1] for p in pairs])}

    return next_batch


def cached_batches(net, files: list[Path], folder: Path, size, batch, seed, progress):
    """Cache :data:`CACHE_COPIES` crops of each file with ``net``'s frozen encoder
    features in ``folder`` (once; a resumed run finds them), then serve batches of them.

    Returns:
        A function of the step giving ``{"l", "ab", "encoded"}``: ``(B, 1, S, S)``,
        ``(B, 2, S, S)`` and the encoder's five feature maps, each batched.
    """
    repeated = [f for _ in range(CACHE_COPIES) for f in files]
    encoder = net.guidance["full"].encoder
    build_cache(repeated, folder, size=size, encoder=encoder, seed=seed, progress=progress)
    data = EncodedImages(folder, seed=seed)

    def next_batch(step: int) -> dict:
        rng = np.random.default_rng([seed, step])
        data.set_epoch(step)
        items = [data[int(i)] for i in rng.choice(len(data), size=batch, replace=False)]
        encoded = tuple(torch.stack([it["encoded"][k] for it in items]) for k in range(5))
        return {
            "l": torch.stack([it["l"] for it in items]),
            "ab": torch.stack([it["ab"] for it in items]),
            "encoded": encoded,
        }

    return next_batch
