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

Where the boxes sit on each grid, and the batched resize-and-pad, are
:mod:`instacolor.models.placement`'s (its names are re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from instacolor.models.generator import (
    FUSION_SCALE_DIVISOR,
    REFERENCE_WIDTH,
    ColorGenerator,
    FeatureHook,
    fusion_channels,
)
from instacolor.models.placement import (
    Placement,
    box_placements,
    box_union,
    inside_boxes,
    make_placement,
    place,
    sample_into_boxes,
    span_coordinates,
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
        budget: any int (the default) places the instances one at a time, each
            resized into its box only; None places all instances in one pass (what
            a traced graph with a dynamic number of instances needs: no Python loop
            over the count).

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
    # one instance at a time, resized into its box only (work in proportion to the
    # box's area, not the grid's; the same bilinear resize as the reference's)
    cells = _box_cells(placement)
    offset = 0
    for block in blocks:
        for i in range(block.shape[0]):
            _add_in_box(fused, block[i : i + 1], weights[offset + i], cells[offset + i])
        offset += block.shape[0]
    return fused[None], weights


def _box_cells(placement: Placement) -> list[tuple[int, int, int, int]]:
    """``(top, height, left, width)`` cells of every box of ``placement``."""
    rows, cols = placement.inside_y > 0, placement.inside_x > 0
    top, left = rows.to(torch.uint8).argmax(1), cols.to(torch.uint8).argmax(1)
    spans = (top, rows.sum(1), left, cols.sum(1))
    return list(zip(*(t.tolist() for t in spans), strict=True))


def _add_in_box(
    fused: torch.Tensor, feature: torch.Tensor, weight: torch.Tensor, cell: tuple[int, ...]
) -> None:
    """Add one instance's ``(1, C, s, s)`` feature, resized into its box and weighted by
    its ``(S, S)`` weight map, to ``fused`` ``(C, S, S)`` in place."""
    top, height, left, width = cell
    patch = nn.functional.interpolate(
        feature, size=(height, width), mode="bilinear", align_corners=False
    )[0]
    box = (slice(None), slice(top, top + height), slice(left, left + width))
    fused[box] += patch * weight[box[1:]]


def _blend(
    part: torch.Tensor, placement: Placement, weights: torch.Tensor, lo: int, hi: int | None
) -> torch.Tensor:
    """Sum of instances ``lo:hi``'s placed features ``part`` times their ``weights``."""
    # placed features are zero outside their box: fold that mask into the weights
    scale = inside_boxes(placement, lo, hi) * weights[:, None]
    return (sample_into_boxes(part, placement, lo, hi) * scale).sum(0)


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
            softmax weights; the last map is the background's (``()`` when the
            full-image generator ran alone).
        class_logits: ``(1, 529, S / 4, S / 4)`` logits of the classification head on
            the (fused) conv8_3 feature when asked for, else None.
    """

    ab: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    class_logits: torch.Tensor | None = None


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

    def fuse_points(
        self,
        x: torch.Tensor,
        instance_features: Callable[[str], Sequence[torch.Tensor]],
        placement_at: Callable[[int, torch.Tensor], Placement],
        hook: FeatureHook | None = None,
        *,
        budget: int | None = _PLACE_BUDGET,
        classify: bool = False,
    ) -> FusionOutput:
        """The fusion forward, given where the instance features come from.

        The one loop over the fusion points: :meth:`fuse` feeds it instance features
        computed in lockstep from the crops, the exported ONNX fusion graph features that
        are graph inputs.

        Args:
            x: ``(1, 4, S, S)`` network input of the full image.
            instance_features: called once per fusion point, in order, with its name;
                returns the batches of instance features ``(n, C, s, s)`` to fuse there
                (rectified at :data:`RELU_BEFORE_FUSION`).
            placement_at: ``(divisor, feature) -> Placement`` of the instances on the
                grid of that fusion-scale divisor (``feature`` is this network's feature
                there, for its size, dtype and device).
            hook: applied after fusion at every point (semantic conditioning).
            budget: see :func:`fuse_features`.
            classify: also run the classification head on the fused conv8_3 feature.

        Returns:
            :class:`FusionOutput` with ab, the 13 weight maps and the class logits.
        """
        weights: list[torch.Tensor] = []

        def fusion_hook(name: str, feature: torch.Tensor) -> torch.Tensor:
            placement = placement_at(FUSION_SCALE_DIVISOR[name], feature)
            inst = instance_features(name)
            fused, w = self.fuse_point(name, feature, inst, placement, budget=budget)
            weights.append(w)
            return hook(name, fused) if hook is not None else fused

        out = self.forward(x, fusion_hook)
        logits = self.classify(out.feature("conv8_3")) if classify else None
        return FusionOutput(ab=out.ab, weights=tuple(weights), class_logits=logits)

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
        classify: bool = False,
        instance_hooks: Sequence[FeatureHook] | None = None,
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
            classify: also return the classification head's logits.
            instance_hooks: one hook per batch of ``batch`` crops, applied to the
                instance network's features at every point (encoder guidance).

        Returns:
            :class:`FusionOutput` with ab and the weight maps.
        """
        grad = torch.enable_grad() if instance_grad and torch.is_grad_enabled() else None
        runs = [instance_net.stages(chunk) for chunk in crops.split(batch)]

        def advance(step):
            with grad if grad is not None else torch.no_grad():
                out = [step(run) for run in runs]
                if instance_hooks is None:
                    return out
                return [(n, hk(n, f)) for hk, (n, f) in zip(instance_hooks, out, strict=True)]

        current: list[tuple[str, torch.Tensor]] = []

        def instance_features(name: str) -> list[torch.Tensor]:
            nonlocal current
            if not current:
                current = advance(next)
            else:  # the previous point's features continue the instance runs
                sent = iter([f for _, f in current])
                current = advance(lambda run: run.send(next(sent)))
            inst = [f for _, f in current]
            if name in RELU_BEFORE_FUSION:
                # in place (as the reference) unless autograd may have saved the tensor
                relu = torch.relu if torch.is_grad_enabled() else torch.relu_
                inst = [relu(f) for f in inst]
            return inst

        return self.fuse_points(
            x, instance_features, lambda d, _: placements[d], hook, classify=classify
        )
