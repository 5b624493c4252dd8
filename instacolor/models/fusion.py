"""InstColorization's fusion: per-pixel weights that blend instance and full-image features.

The math (Su et al., CVPR 2020), at one fusion point of grid size ``S``:

* each instance ``i`` has a feature map computed on its crop (``s x s``) and a
  non-negative logit map from the instance branch (``ReLU`` last, so logits >= 0);
  both are bilinearly resized to the instance's box (``h_i x w_i`` cells of the
  ``S x S`` grid) and zero-padded to ``S x S``;
* the background logit is the background branch on the full-image feature plus
  ``1e5`` outside the union of boxes;
* a softmax over ``(instances..., background)`` gives the weights; the fused feature
  is the weighted sum of the padded instance features and the full-image feature.

Reproduced quirks: an instance's padded logit outside its box is 0, not ``-inf``, so
it still takes softmax weight there while contributing zero features; and the
instance features at ``conv8_up``, ``conv9_up`` and ``conv10_up`` are rectified (see
:data:`RELU_BEFORE_FUSION`).

Resize-and-pad is one batched ``grid_sample`` whose sampling grid reproduces
``F.interpolate(mode="bilinear", align_corners=False)`` into each box (zero outside
it), so all instances are placed at once instead of in a Python loop per crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from instacolor.models.generator import (
    FUSION_POINTS,
    FUSION_SCALE_DIVISOR,
    REFERENCE_WIDTH,
    ColorGenerator,
    FeatureHook,
    fusion_channels,
)

__all__ = [
    "BACKGROUND_BIAS",
    "RELU_BEFORE_FUSION",
    "WEIGHT_LAYER_NAMES",
    "FusionGenerator",
    "FusionOutput",
    "Placement",
    "WeightGenerator",
    "box_placements",
    "box_union",
    "fuse_features",
    "make_placement",
    "place",
    "span_coordinates",
]

#: Attribute name of the weight generator at each fusion point (state-dict keys).
WEIGHT_LAYER_NAMES = {
    "conv1_2": "weight_layer",
    "conv2_2": "weight_layer2",
    "conv3_3": "weight_layer3",
    "conv4_3": "weight_layer4",
    "conv5_3": "weight_layer5",
    "conv6_3": "weight_layer6",
    "conv7_3": "weight_layer7",
    "conv8_up": "weight_layer8_1",
    "conv8_3": "weight_layer8_2",
    "conv9_up": "weight_layer9_1",
    "conv9_3": "weight_layer9_2",
    "conv10_up": "weight_layer10_1",
    "conv10_2": "weight_layer10_2",
}
#: Points whose instance feature the reference fuses after a ReLU: its instance network
#: stores ``conv8_up``, ``conv9_up`` and ``conv10_up`` and then applies the next block's
#: in-place ``ReLU(inplace=True)`` to the same tensor, so the fusion network receives
#: rectified instance features there (while the full-image feature is not rectified).
RELU_BEFORE_FUSION = ("conv8_up", "conv9_up", "conv10_up")
#: Added to the background logit outside the union of boxes.
BACKGROUND_BIAS = 1e5
# Instance-feature elements placed at once (bounds memory with many instances).
_PLACE_BUDGET = 1 << 24


def box_placements(boxes: np.ndarray, image_size: tuple[int, int], size: int) -> np.ndarray:
    """Place integer boxes on an ``size x size`` grid as InstColorization does.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes in input pixels (the reference truncates
            detector boxes to integers first).
        image_size: ``(H, W)`` of the input image.
        size: grid size ``S`` (256, 128, 64 or 32 at the default working size).

    Returns:
        ``(N, 6)`` int64 ``[left_pad, right_pad, top_pad, bottom_pad, width, height]``
        with ``left_pad + width + right_pad == S`` (same for rows) and width, height >= 1.
    """
    height, width = image_size
    out = np.zeros((len(boxes), 6), dtype=np.int64)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.float64)):
        sx, ex = _span(x0, x1, width, size)
        sy, ey = _span(y0, y1, height, size)
        out[i] = (sx, size - ex, sy, size - ey, ex - sx, ey - sy)
    return out


def _span(start: float, end: float, extent: int, size: int) -> tuple[int, int]:
    s, e = int(start / extent * size), int(end / extent * size)
    if e - s < 1:  # the reference grows a collapsed box by one cell, inwards at the edge
        if size - e > 1:
            e = s + 1
        else:
            s = e - 1
    return s, e


@dataclass(frozen=True)
class Placement:
    """Resize-and-pad operators of N instances on an ``S x S`` grid.

    Attributes:
        grid_y: ``(N, S)`` normalised ``grid_sample`` row coordinate of each grid row
            in the instance's crop (outside ``[-1, 1]`` off the box).
        grid_x: ``(N, S)`` the same for columns.
        inside_y: ``(N, S)`` 1 for grid rows inside the box, else 0.
        inside_x: ``(N, S)`` the same for columns.
        union: ``(S, S)`` 1 inside the union of boxes, 0 elsewhere.
    """

    grid_y: torch.Tensor
    grid_x: torch.Tensor
    inside_y: torch.Tensor
    inside_x: torch.Tensor
    union: torch.Tensor


def span_coordinates(
    offset: torch.Tensor, extent: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised sampling coordinates that resize a crop into a span of a grid.

    Grid cell ``y`` of instance ``i`` samples its crop at the position
    ``F.interpolate(mode="bilinear", align_corners=False)`` uses when the crop is
    resized to ``extent[i]`` cells starting at ``offset[i]``; in ``grid_sample``'s
    normalised units (``align_corners=False``) that is ``(2 (y - offset) + 1) / extent - 1``
    whatever the crop size, and ``padding_mode="border"`` reproduces interpolate's
    clamping at the crop edges.

    Args:
        offset: ``(N,)`` int64 first cell of each span.
        extent: ``(N,)`` int64 length of each span (>= 1).
        size: grid size ``S``.

    Returns:
        ``(coordinate (N, S) float64, inside (N, S) float64)``.
    """
    dst = torch.arange(size, dtype=torch.float64)[None] - offset[:, None].to(torch.float64)
    coordinate = (2 * dst + 1) / extent[:, None].to(torch.float64) - 1
    inside = ((dst >= 0) & (dst < extent[:, None])).to(torch.float64)
    return coordinate, inside


def box_union(placement: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``(S, S)`` float mask, 1 inside any box of ``placement`` ``(N, 6)``."""
    p = torch.as_tensor(placement, dtype=torch.int64)
    grid = torch.arange(size)
    rows = (grid >= p[:, 2, None]) & (grid < (p[:, 2] + p[:, 5])[:, None])
    cols = (grid >= p[:, 0, None]) & (grid < (p[:, 0] + p[:, 4])[:, None])
    return (rows[:, :, None] & cols[:, None, :]).any(0).to(torch.float32)


def make_placement(
    placement: np.ndarray, size: int, *, dtype: torch.dtype, device: torch.device | str
) -> Placement:
    """Build the :class:`Placement` of ``(N, 6)`` box placements on an ``S x S`` grid."""
    p = torch.as_tensor(placement, dtype=torch.int64)
    gy, iy = span_coordinates(p[:, 2], p[:, 5], size)
    gx, ix = span_coordinates(p[:, 0], p[:, 4], size)

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    return Placement(cast(gy), cast(gx), cast(iy), cast(ix), cast(box_union(p, size)))


def _sample(maps: torch.Tensor, placement: Placement, start: int, stop: int) -> torch.Tensor:
    gy, gx = placement.grid_y[start:stop], placement.grid_x[start:stop]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return torch.nn.functional.grid_sample(
        maps, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def _inside(placement: Placement, start: int, stop: int) -> torch.Tensor:
    rows = placement.inside_y[start:stop][:, None, :, None]
    return rows * placement.inside_x[start:stop][:, None, None, :]


def place(maps: torch.Tensor, placement: Placement, start: int = 0, stop: int | None = None):
    """Resize ``(n, C, s, s)`` maps into their boxes, zero elsewhere: ``(n, C, S, S)``.

    ``start``/``stop`` select the instances of ``placement`` that ``maps`` belong to.
    """
    stop = placement.grid_y.shape[0] if stop is None else stop
    return _sample(maps, placement, start, stop) * _inside(placement, start, stop)


def fuse_features(
    full: torch.Tensor,
    full_logit: torch.Tensor,
    instances: torch.Tensor | Sequence[torch.Tensor],
    instance_logits: torch.Tensor,
    placement: Placement,
    *,
    budget: int | None = _PLACE_BUDGET,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend instance features into the full-image feature (one image, N instances).

    Args:
        full: ``(1, C, S, S)`` full-image feature.
        full_logit: ``(1, 1, S, S)`` background-branch logit (>= 0).
        instances: ``(N, C, s, s)`` instance features on their crops, or a sequence of
            consecutive batches of them (so they need not be concatenated).
        instance_logits: ``(N, 1, s, s)`` instance-branch logits (>= 0).
        placement: the instances' resize-and-pad operators at this grid size.
        budget: instance-feature elements placed at once (bounds memory), or None to
            place all instances in one pass (what a traced graph with a dynamic number
            of instances needs: no Python loop over the count).

    Returns:
        ``(fused (1, C, S, S), weights (N + 1, S, S))``; the last weight map is the
        background's; weights sum to one at every pixel.
    """
    blocks = [instances] if isinstance(instances, torch.Tensor) else list(instances)
    logits = place(instance_logits, placement)[:, 0]
    background = full_logit[0, 0] + (1 - placement.union) * BACKGROUND_BIAS
    weights = torch.softmax(torch.cat((logits, background[None]), 0), dim=0)
    fused = full[0] * weights[-1]
    if budget is None:
        every = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        return (fused + _blend(every, placement, weights[:-1], 0, None))[None], weights
    size = placement.union.shape[0]
    offset = 0
    for block in blocks:
        step = max(1, budget // (block.shape[1] * size * size))
        for i in range(0, block.shape[0], step):
            part = block[i : i + step]
            lo, hi = offset + i, offset + i + len(part)
            fused = fused + _blend(part, placement, weights[lo:hi], lo, hi)
        offset += block.shape[0]
    return fused[None], weights


def _blend(
    part: torch.Tensor, placement: Placement, weights: torch.Tensor, lo: int, hi: int | None
) -> torch.Tensor:
    """Sum of instances ``lo:hi``'s placed features ``part`` times their ``weights``."""
    # placed features are zero outside their box: fold that mask into the weights
    scale = _inside(placement, lo, hi) * weights[:, None]
    return (_sample(part, placement, lo, hi) * scale).sum(0)


class WeightGenerator(nn.Module):
    """The two logit branches of one fusion point (``simple_instance_conv``/``_bg_conv``).

    Args:
        channels: channels of the feature at this fusion point.
        inner: hidden channels (16 in the reference).
    """

    def __init__(self, channels: int, inner: int = 16) -> None:
        super().__init__()
        self.simple_instance_conv = _branch(channels, inner)
        self.simple_bg_conv = _branch(channels, inner)

    def forward(self, full: torch.Tensor, instances: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits ``(B, 1, S, S)`` of the full feature and ``(N, 1, s, s)`` of instances."""
        return self.simple_bg_conv(full), self.simple_instance_conv(instances)


def _branch(channels: int, inner: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, inner, 3, padding=1),
        nn.ReLU(True),
        nn.Conv2d(inner, inner, 3, padding=1),
        nn.ReLU(True),
        nn.Conv2d(inner, 1, 3, padding=1),
        nn.ReLU(True),
    )


@dataclass(frozen=True)
class FusionOutput:
    """Output of :class:`FusionGenerator`.

    Attributes:
        ab: ``(1, 2, S, S)`` chroma in network units.
        weights: per fusion point (in ``FUSION_POINTS`` order) the ``(N + 1, S_i, S_i)``
            softmax weights; the last map is the background's.
    """

    ab: torch.Tensor
    weights: tuple[torch.Tensor, ...]


class FusionGenerator(ColorGenerator):
    """InstColorization's fusion network: a generator plus 13 weight generators.

    Its state dict is the reference ``latest_net_GF.pth`` at ``width=64`` (including
    the unused ``weight_layerout``).
    """

    def __init__(self, width: int = REFERENCE_WIDTH, *, in_channels: int = 4) -> None:
        super().__init__(width, in_channels=in_channels)
        for point, channels in fusion_channels(width).items():
            setattr(self, WEIGHT_LAYER_NAMES[point], WeightGenerator(channels))
        self.weight_layerout = WeightGenerator(2)

    def weight_layer_at(self, point: str) -> WeightGenerator:
        """The weight generator of fusion point ``point``."""
        return getattr(self, WEIGHT_LAYER_NAMES[point])

    def fuse_point(
        self,
        name: str,
        feature: torch.Tensor,
        instances: Sequence[torch.Tensor],
        placement: Placement,
        *,
        budget: int | None = _PLACE_BUDGET,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the instance features into ``feature`` at fusion point ``name``.

        Args:
            name: fusion point (one of :data:`FUSION_POINTS`).
            feature: ``(1, C, S, S)`` this network's feature at that point.
            instances: batches of the instance features ``(n, C, s, s)`` at that point
                (rectified at :data:`RELU_BEFORE_FUSION`).
            placement: the instances' operators at this grid size.
            budget: see :func:`fuse_features`.

        Returns:
            ``(fused (1, C, S, S), weights (N + 1, S, S))``.
        """
        layer = self.weight_layer_at(name)
        logits = torch.cat([layer.simple_instance_conv(f) for f in instances])
        return fuse_features(
            feature, layer.simple_bg_conv(feature), instances, logits, placement, budget=budget
        )

    def fuse(
        self,
        x: torch.Tensor,
        instance_net: ColorGenerator,
        crops: torch.Tensor,
        placements: dict[int, Placement],
        hook: FeatureHook | None = None,
        *,
        batch: int = 8,
        instance_grad: bool = False,
    ) -> FusionOutput:
        """Run the fusion forward for one image and its N instances.

        The instance network runs on the crops in lockstep with this network, in
        batches of ``batch`` crops: at each fusion point every batch is advanced to that
        point, its features are fused, and only what the instance network still needs
        (its skip connections) stays in memory.

        Args:
            x: ``(1, 4, S, S)`` network input of the full image.
            instance_net: the instance generator.
            crops: ``(N, 4, S, S)`` network inputs of the crops.
            placements: operators per fusion-scale divisor (1, 2, 4, 8).
            hook: applied after fusion at every point (semantic conditioning).
            batch: crops per instance-network batch (bounds peak memory).
            instance_grad: track gradients through the instance network.

        Returns:
            :class:`FusionOutput` with ab and the weight maps.
        """
        grad = torch.enable_grad() if instance_grad and torch.is_grad_enabled() else None
        runs = [instance_net.stages(chunk) for chunk in crops.split(batch)]

        def advance(step):
            with grad if grad is not None else torch.no_grad():
                return [step(run) for run in runs]

        current = advance(next)
        weights: list[torch.Tensor] = []

        def fusion_hook(name: str, feature: torch.Tensor) -> torch.Tensor:
            nonlocal current
            inst = [f for _, f in current]
            if name in RELU_BEFORE_FUSION:
                # in place (as the reference) unless autograd may have saved the tensor
                relu = torch.relu if torch.is_grad_enabled() else torch.relu_
                inst = [relu(f) for f in inst]
            fused, w = self.fuse_point(name, feature, inst, placements[FUSION_SCALE_DIVISOR[name]])
            weights.append(w)
            del inst
            if name != FUSION_POINTS[-1]:
                sent = iter(f for _, f in current)
                current = advance(lambda run: run.send(next(sent)))
            return hook(name, fused) if hook is not None else fused

        out = self.forward(x, fusion_hook)
        return FusionOutput(ab=out.ab, weights=tuple(weights))
