"""Pieces of the training recipe that the ``instacolor train`` command puts together.

Exporting a checkpoint as weights, the encoder-feature cache of the training photos with
the class prior drawn from it, and datasets joined one after the other.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.models.classes import class_prior
from instacolor.models.encoder import load_encoder
from instacolor.models.network import InstColorNet
from instacolor.structures import Decoding
from instacolor.train.budget import export_weights
from instacolor.train.cache import EncodedImages, build_cache
from instacolor.train.loop import load_stage

__all__ = ["Joined", "cache_class_prior", "cached_photos", "export_checkpoint", "packaged_file"]


def export_checkpoint(
    checkpoint: Path,
    target: Path,
    width: int,
    decoding: Decoding | None = None,
) -> None:
    """Write a checkpoint as weights (``train.budget.export_weights``).

    The class head counts as trained when its run's ``class_weight`` was > 0;
    ``decoding`` (None: regression) becomes the weights' default; guided runs write
    guided weights.
    """
    decoding = decoding or Decoding()
    config = torch.load(checkpoint, map_location="cpu", weights_only=False)["config"]
    net = InstColorNet(width, guided=bool(config.get("guided")))
    stage = load_stage(checkpoint, net)
    if stage != 3:
        warnings.warn(f"{checkpoint} is a stage-{stage} checkpoint, not stage 3", stacklevel=1)
    class_head = config.get("class_weight", 0) > 0
    if decoding.mode != "regression" and not class_head:
        raise InputError(
            f"decode {decoding.spec!r}: expected a checkpoint trained with a class weight, "
            f"received {checkpoint} (trained without); export with decode 'regression'"
        )
    export_weights(
        net,
        target,
        stages=3,
        working_size=config.get("size", 128),
        class_head=class_head,
        decoding=decoding,
        trained_from=str(checkpoint),
    )
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB)")


def packaged_file(init: str | None) -> str | None:
    """``init`` as a file: a registered name of weights shipped in the package is their file."""
    from importlib import resources

    from instacolor.weights import REGISTRY, get_entry

    if init is None or (init != "default" and init not in REGISTRY):
        return init
    entry = get_entry(init)
    if entry.source != "package":
        raise InputError(
            f"init {init!r}: expected weights shipped in the package or a file, received "
            f"weights whose source is {entry.source!r}; pass their file"
        )
    return str(resources.files("instacolor") / "data" / entry.files[0].name)


def cached_photos(files: list[Path], folder: Path, size: int, seed: int) -> EncodedImages:
    """The encoder-feature cache of ``files`` in ``folder`` (built or completed first)."""
    build_cache(files, folder, size=size, encoder=load_encoder(), seed=seed)
    return EncodedImages(folder, seed=seed)


def cache_class_prior(dataset: EncodedImages, seed: int) -> list[float]:
    """The class head's prior from 1,000 cached crops drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    count = min(1000, len(dataset))
    pick = sorted(rng.choice(len(dataset), count, replace=False))
    ab = np.stack([dataset.arrays["ab"][dataset.indices[i]] for i in pick]).astype(np.float32)
    return class_prior(torch.from_numpy(ab) * AB_NORM).tolist()


class Joined(ConcatDataset):
    """Datasets one after the other, each told the epoch."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)
