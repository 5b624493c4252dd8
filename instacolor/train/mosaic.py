"""Synthetic crowded scenes for the fusion stage: mosaics of training photos.

Annotated crowded scenes are few (coco128 has 128), and in them the full-image network
often sees an object well enough that its instance crop adds little, so fusion learns
to ignore instances. A mosaic of ``g x g`` photos (``g`` of 2 to 4) is a scene whose
objects are small in the full view and whole in their crops: the crop's own view (and
the encoder's view of it) is what the full image lacks, which is the case instance
fusion exists for. Some tiles get a box (jittered by up to 8 % of the tile), the others
stay background.

Samples have :class:`~instacolor.train.data.FusionScenes`' layout; with ``semantic`` they
carry an all-unknown label map and ``drop_labels`` (so they batch with scenes that have
maps and train without one).

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from pathlib import Path
    >>> from instacolor.train.mosaic import MosaicScenes
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(4):
    ...     Image.fromarray(np.full((48, 48, 3), 50 * i, np.uint8)).save(folder / f"{i}.png")
    >>> scenes = MosaicScenes(sorted(folder.glob("*.png")), 64, length=3)
    >>> s = scenes[0]
    >>> s["l"].shape, s["crops"].shape[1:], s["boxes"].shape[1]
    (torch.Size([1, 64, 64]), torch.Size([1, 64, 64]), 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor.errors import InputError
from instacolor.labels import UNKNOWN
from instacolor.structures import integer_boxes
from instacolor.train.data import _Epoched, _read_rgb, to_lab_tensors

__all__ = ["MosaicScenes"]


class MosaicScenes(_Epoched):
    """Mosaics of ``g x g`` photos with boxes on some tiles.

    Args:
        files: colour photos (at least 4).
        size: training resolution ``S``.
        length: samples per epoch.
        tile: side of each tile in pixels (photos are resized to it).
        grids: the grid sides drawn from.
        max_instances: at most this many tiles get a box.
        seed: seed of all random choices.
        semantic: emit ``labels`` (unknown everywhere) and ``drop_labels`` (True), as
            :class:`~instacolor.train.data.FusionScenes` with maps does for a file without
            one.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        *,
        length: int,
        tile: int = 144,
        grids: Sequence[int] = (2, 3, 4),
        max_instances: int = 8,
        seed: int = 0,
        semantic: bool = False,
    ) -> None:
        super().__init__(seed)
        if len(files) < 4:
            raise InputError(f"files: expected at least 4 photos, received {len(files)}")
        self.files, self.size, self.length = list(files), size, length
        self.tile, self.grids, self.max_instances = tile, tuple(grids), max_instances
        self.semantic = semantic

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        g = int(rng.choice(self.grids))
        t = self.tile
        picks = rng.choice(len(self.files), size=g * g, replace=len(self.files) < g * g)
        scene = np.zeros((g * t, g * t, 3), np.uint8)
        for k, i in enumerate(picks):
            with Image.fromarray(_read_rgb(self.files[int(i)])) as im:
                photo = np.asarray(im.resize((t, t), Image.Resampling.BILINEAR))
            r, c = divmod(k, g)
            scene[r * t : (r + 1) * t, c * t : (c + 1) * t] = photo
        count = int(rng.integers(1, min(self.max_instances, g * g) + 1))
        tiles = rng.choice(g * g, size=count, replace=False)
        boxes = []
        for k in tiles:
            r, c = divmod(int(k), g)
            jitter = rng.uniform(-0.08, 0.08, 4) * t
            x0, y0 = c * t + jitter[0], r * t + jitter[1]
            x1, y1 = (c + 1) * t + jitter[2], (r + 1) * t + jitter[3]
            boxes.append((max(0.0, x0), max(0.0, y0), min(g * t, x1), min(g * t, y1)))
        ibox = integer_boxes(np.asarray(boxes), scene.shape[:2])
        light, ab = to_lab_tensors(scene, self.size)
        crops = [to_lab_tensors(scene[y0:y1, x0:x1], self.size)[0] for x0, y0, x1, y1 in ibox]
        sample = {
            "l": light,
            "ab": ab,
            "crops": torch.stack(crops),
            "boxes": torch.from_numpy(ibox),
            "size": torch.tensor(scene.shape[:2]),
        }
        if self.semantic:
            sample["labels"] = torch.full((self.size, self.size), UNKNOWN, dtype=torch.int64)
            sample["drop_labels"] = torch.tensor(True)
        return sample
