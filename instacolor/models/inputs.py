"""Network inputs for one image: the one place where crops, placements and labels are made.

:func:`prepare_inputs` turns the pipeline's full-resolution L plane, its
:class:`~instacolor.structures.Instances` and :class:`~instacolor.structures.SemanticMap`
into the :class:`~instacolor.structures.NetworkInputs` every runtime takes:

* the image squashed to ``S x S`` (antialiased bilinear; aspect not kept, as the
  reference does);
* each instance's box, truncated to integer pixels, cut from the FULL-resolution L and
  squashed to ``S x S`` too;
* the boxes' cells on the grid of every fusion scale (:func:`~instacolor.models.
  placement.placement_cells`);
* the label map nearest-resized to ``S x S``;
* with hints, the hint channels of the image and of every crop (siggraph17's encoding,
  :func:`~instacolor.hints.encode_channels`; the hints mapped to crop coordinates).

Example:
    >>> import numpy as np
    >>> from instacolor.structures import Instances
    >>> light = np.full((48, 64), 50.0, np.float32)
    >>> inst = Instances.from_boxes([[8, 8, 40, 30]], image_size=(48, 64))
    >>> inputs = prepare_inputs(light, inst, None, 32)
    >>> inputs.l.shape, inputs.crops.shape, inputs.placements.shape
    ((1, 1, 32, 32), (1, 1, 32, 32), (4, 1, 6))
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import normalize_l
from instacolor.hints import Hints, constraints, encode_channels
from instacolor.models.placement import placement_cells
from instacolor.structures import Instances, NetworkInputs, SemanticMap

__all__ = ["prepare_inputs", "squash"]


def squash(plane: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of ``(H, W)`` to ``(1, 1, size, size)`` (aspect not kept)."""
    return F.interpolate(
        plane[None, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )


def prepare_inputs(
    light: np.ndarray,
    instances: Instances | None,
    semantic: SemanticMap | None,
    working_size: int,
    *,
    hints: Hints | None = None,
    mask_value: float = -0.5,
    hint_instances: Instances | None = None,
) -> NetworkInputs:
    """The networks' inputs for one image.

    Args:
        light: ``(H, W)`` float32 L in ``[0, 100]`` at full resolution.
        instances: instances to fuse (None or empty: the full-image network alone).
        semantic: label map of any resolution, or None.
        working_size: square size ``S`` the networks run at.
        hints: hints for the networks' hint channels, or None (automatic mode).
        mask_value: the weights' automatic mask value (hinted cells get ``+ 1``).
        hint_instances: the instances ``hints.instance_colors`` index (default
            ``instances``).

    Returns:
        :class:`~instacolor.structures.NetworkInputs` at ``S``.
    """
    size = (int(light.shape[0]), int(light.shape[1]))
    plane = torch.from_numpy(light)
    low = squash(plane, working_size)
    crops = placements = labels = hint_channels = crop_hints = None
    s = (working_size, working_size)
    hint_instances = instances if hint_instances is None else hint_instances
    if hints is not None:
        hint_channels = encode_channels(*constraints(hints, hint_instances, size, s), mask_value)
        hint_channels = hint_channels[None]
    if instances is not None and len(instances):
        boxes = instances.integer_boxes()
        if hints is not None:
            crop_hints = np.stack(
                [
                    encode_channels(*constraints(hints, hint_instances, size, s, b), mask_value)
                    for b in boxes.tolist()
                ]
            )
        crops = torch.cat([squash(plane[y0:y1, x0:x1], working_size) for x0, y0, x1, y1 in boxes])
        crops = normalize_l(crops).numpy()
        placements = placement_cells(boxes, size, working_size)
    if semantic is not None:
        lab = torch.from_numpy(semantic.labels)[None, None].float()
        size_s = (working_size, working_size)
        labels = F.interpolate(lab, size=size_s, mode="nearest")[:, 0].long().numpy()
    return NetworkInputs(
        light=low[0, 0].numpy(),
        l=normalize_l(low).numpy(),
        image_size=size,
        crops=crops,
        placements=placements,
        labels=labels,
        hints=hint_channels,
        crop_hints=crop_hints,
    )
