"""The caller's instance and semantic arguments as typed values (for :mod:`instacolor.api`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instacolor.errors import InputError
from instacolor.io.coco import instances_from_coco
from instacolor.structures import Instances, SemanticMap

__all__ = ["as_instances", "as_semantic"]


def as_instances(instances: Any, image_size: tuple[int, int]) -> Instances | None:
    """The caller's ``instances`` as :class:`Instances` of an ``image_size`` image.

    Accepts None, :class:`Instances` (of this size), COCO annotation dicts, bool masks
    ``(N, H, W)`` or XYXY boxes ``(N, 4)`` in input pixels.

    Raises:
        InputError: instances of another image size, masks of the wrong shape, bad boxes.
    """
    if instances is None:
        return None
    if isinstance(instances, Instances):
        if instances.image_size != image_size:
            raise InputError(
                f"instances: expected image_size {image_size} (H, W) of this image, received "
                f"{instances.image_size}; rescale the boxes or build Instances for this image"
            )
        return instances
    if isinstance(instances, Mapping) or (
        isinstance(instances, Sequence) and len(instances) and isinstance(instances[0], Mapping)
    ):
        return instances_from_coco(instances, image_size)
    arr = np.asarray(instances)
    if arr.dtype == np.bool_ and arr.ndim in (2, 3):
        if arr.shape[-2:] != image_size:
            raise InputError(
                f"instances: expected masks of shape (N, {image_size[0]}, {image_size[1]}), "
                f"received {arr.shape}"
            )
        return Instances.from_masks(arr)
    return Instances.from_boxes(arr, image_size)


def as_semantic(semantic: Any) -> SemanticMap | None:
    """The caller's ``semantic`` (None, :class:`SemanticMap` or an int label map)."""
    if semantic is None or isinstance(semantic, SemanticMap):
        return semantic
    return SemanticMap(np.asarray(semantic))
