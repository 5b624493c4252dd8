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
* the label map nearest-resized to ``S x S``.

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
) -> NetworkInputs:
    """The networks' inputs for one image.

    Args:
        light: ``(H, W)`` float32 L in ``[0, 100]`` at full resolution.
        instances: instances to fuse (None or empty: the full-image network alone).
        semantic: label map of any resolution, or None.
        working_size: square size ``S`` the networks run at.

    Returns:
        :class:`~instacolor.structures.NetworkInputs` at ``S``.
    """
    size = (int(light.shape[0]), int(light.shape[1]))
    plane = torch.from_numpy(light)
    low = squash(plane, working_size)
    crops = placements = labels = None
    if instances is not None and len(instances):
        boxes = instances.integer_boxes()
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
    )
