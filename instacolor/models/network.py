"""The instance-aware colorization network: full-image, instance and fusion generators.

:class:`InstColorNet` owns the three generators of InstColorization and the semantic
conditioning block, and delegates: the instance generator runs once on all crops
(batched), the fusion generator blends its features into the full image at the 13
fusion points, and the semantic block conditions the decoder. Without instances the
full-image generator runs alone, as in the reference.

State-dict prefixes: ``full.``, ``instance.``, ``fusion.``, ``semantic.``; the first
three are, key for key, the reference's ``latest_net_GComp``, ``latest_net_G`` and
``latest_net_GF`` at width 64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from instacolor.models.fusion import FusionGenerator, Placement, box_placements, make_placement
from instacolor.models.generator import (
    FUSION_SCALE_DIVISOR,
    REFERENCE_WIDTH,
    ColorGenerator,
    FeatureHook,
    fusion_channels,
)
from instacolor.models.semantic import SEMANTIC_POINTS, SemanticConditioning

__all__ = [
    "PLACEMENT_DIVISORS",
    "InstColorNet",
    "NetOutput",
    "instance_placements",
    "network_input",
    "placement_cells",
]


@dataclass(frozen=True)
class NetOutput:
    """Output of :meth:`InstColorNet.colorize`.

    Attributes:
        ab: ``(1, 2, S, S)`` chroma in network units (times 110 for Lab).
        weights: ``(N + 1, S_i, S_i)`` fusion weights per fusion point, or ``()`` when
            the full-image generator ran alone.
    """

    ab: torch.Tensor
    weights: tuple[torch.Tensor, ...]


def network_input(l_norm: torch.Tensor, mask_value: float) -> torch.Tensor:
    """Automatic-mode input ``(B, 4, S, S)`` from normalised L ``(B, 1, S, S)``: no hints."""
    b, _, h, w = l_norm.shape
    hints = l_norm.new_zeros(b, 2, h, w)
    mask = l_norm.new_full((b, 1, h, w), mask_value)
    return torch.cat((l_norm, hints, mask), dim=1)


#: Grid divisors of the fusion points, in the order of :func:`placement_cells`' rows.
PLACEMENT_DIVISORS = tuple(sorted(set(FUSION_SCALE_DIVISOR.values())))


def placement_cells(
    boxes: np.ndarray, image_size: tuple[int, int], working_size: int
) -> np.ndarray:
    """Box placements on the grid of every fusion scale.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels.
        image_size: ``(H, W)`` of the input.
        working_size: the network's square working size (multiple of 8).

    Returns:
        ``(4, N, 6)`` int64: :func:`~instacolor.models.fusion.box_placements` on the
        ``working_size // d`` grid for ``d`` in :data:`PLACEMENT_DIVISORS` (1, 2, 4, 8).
    """
    rows = [box_placements(boxes, image_size, working_size // d) for d in PLACEMENT_DIVISORS]
    return np.stack(rows) if len(boxes) else np.zeros((len(rows), 0, 6), np.int64)


def instance_placements(
    boxes: np.ndarray,
    image_size: tuple[int, int],
    working_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[int, Placement]:
    """Resize-and-pad operators of integer boxes for every fusion scale.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels.
        image_size: ``(H, W)`` of the input.
        working_size: the network's square working size (multiple of 8).

    Returns:
        ``{divisor: Placement}`` for divisors 1, 2, 4 and 8.
    """
    cells = placement_cells(boxes, image_size, working_size)
    return {
        d: make_placement(c, working_size // d, dtype=dtype, device=device)
        for d, c in zip(PLACEMENT_DIVISORS, cells)
    }


class InstColorNet(nn.Module):
    """Full-image, instance and fusion generators plus semantic conditioning.

    Args:
        width: generator width (64 is the published architecture).
        with_instances: build the instance and fusion generators (False for weights
            that only hold a full-image generator, such as Zhang et al.'s siggraph17).
        mask_value: automatic-mode value of the mask channel (-0.5 for InstColorization,
            0 for siggraph17).
        instance_batch: crops per instance-generator forward (bounds peak memory).
    """

    def __init__(
        self,
        width: int = REFERENCE_WIDTH,
        *,
        with_instances: bool = True,
        mask_value: float = -0.5,
        instance_batch: int = 8,
    ) -> None:
        super().__init__()
        self.width = width
        self.mask_value = mask_value
        self.instance_batch = instance_batch
        self.full = ColorGenerator(width)
        self.instance = ColorGenerator(width) if with_instances else None
        self.fusion = FusionGenerator(width) if with_instances else None
        channels = fusion_channels(width)
        self.semantic = SemanticConditioning({p: channels[p] for p in SEMANTIC_POINTS})

    @property
    def with_instances(self) -> bool:
        """Whether the network can fuse instances."""
        return self.fusion is not None

    def semantic_hook(self, labels: torch.Tensor | None) -> FeatureHook | None:
        """The hook that conditions decoder features on ``labels`` ``(1, S, S)``, or None."""
        if labels is None:
            return None
        semantic = self.semantic
        return lambda name, feature: semantic(name, feature, labels)

    def colorize(
        self,
        l_norm: torch.Tensor,
        *,
        crops: torch.Tensor | None = None,
        placements: dict[int, Placement] | None = None,
        labels: torch.Tensor | None = None,
    ) -> NetOutput:
        """Predict ab for one image.

        Args:
            l_norm: ``(1, 1, S, S)`` normalised L, ``(L - 50) / 100``.
            crops: ``(N, 1, S, S)`` normalised L of the instance crops, or None.
            placements: operators from :func:`instance_placements` for the crops' boxes.
            labels: ``(1, S, S)`` int64 semantic labels, or None.

        Returns:
            :class:`NetOutput`; fusion weights are present when crops were given.
        """
        hook = self.semantic_hook(labels)
        x = network_input(l_norm, self.mask_value)
        if crops is None or crops.shape[0] == 0 or self.fusion is None:
            return NetOutput(ab=self.full(x, hook).ab, weights=())
        if placements is None:
            raise ValueError("placements are required with crops")
        crops_x = network_input(crops, self.mask_value)
        fused = self.fusion.fuse(
            x, self.instance, crops_x, placements, hook, batch=self.instance_batch
        )
        return NetOutput(ab=fused.ab, weights=fused.weights)
