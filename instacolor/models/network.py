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

import torch
from torch import nn

from instacolor.errors import InputError
from instacolor.models.encoder import load_encoder
from instacolor.models.fusion import FusionGenerator, FusionOutput
from instacolor.models.generator import (
    REFERENCE_WIDTH,
    ColorGenerator,
    FeatureHook,
    fusion_channels,
)
from instacolor.models.guidance import GUIDED_POINTS, EncoderGuidance
from instacolor.models.placement import (
    PLACEMENT_DIVISORS,
    Placement,
    instance_placements,
    placement_cells,
)
from instacolor.models.semantic import SEMANTIC_POINTS, SemanticConditioning

__all__ = [
    "PLACEMENT_DIVISORS",
    "InstColorNet",
    "instance_placements",
    "network_input",
    "placement_cells",
]


def network_input(
    l_norm: torch.Tensor, mask_value: float, hints: torch.Tensor | None = None
) -> torch.Tensor:
    """The generators' input ``(B, 4, S, S)``: normalised L, hint a, hint b, mask.

    Args:
        l_norm: ``(B, 1, S, S)`` normalised L.
        mask_value: the automatic value of the mask channel.
        hints: ``(B, 3, S, S)`` hint channels (``a/110, b/110, mask``, see
            :func:`~instacolor.hints.encode_channels`), or None: automatic mode (hints 0,
            mask ``mask_value``).
    """
    if hints is not None:
        return torch.cat((l_norm, hints), dim=1)
    b, _, h, w = l_norm.shape
    hints = l_norm.new_zeros(b, 2, h, w)
    mask = l_norm.new_full((b, 1, h, w), mask_value)
    return torch.cat((l_norm, hints, mask), dim=1)


class InstColorNet(nn.Module):
    """Full-image, instance and fusion generators plus semantic conditioning.

    Args:
        width: generator width (64 is the published architecture).
        with_instances: build the instance and fusion generators (False for weights
            that only hold a full-image generator, such as Zhang et al.'s siggraph17).
        mask_value: automatic-mode value of the mask channel (-0.5 for InstColorization,
            0 for siggraph17).
        instance_batch: crops per instance-generator forward (bounds peak memory).
        guided: guide each generator by the frozen pretrained encoder
            (:mod:`instacolor.models.guidance`; prefixes ``guidance.full.``,
            ``guidance.instance.``, ``guidance.fusion.``).
    """

    def __init__(
        self,
        width: int = REFERENCE_WIDTH,
        *,
        with_instances: bool = True,
        mask_value: float = -0.5,
        instance_batch: int = 8,
        guided: bool = False,
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
        self.guidance: nn.ModuleDict | None = None
        if guided:
            encoder = load_encoder()  # one frozen encoder, shared by the three blocks
            guided_channels = {p: channels[p] for p in GUIDED_POINTS}
            names = ("full", "instance", "fusion") if with_instances else ("full",)
            self.guidance = nn.ModuleDict(
                {n: EncoderGuidance(guided_channels, encoder) for n in names}
            )

    @property
    def with_instances(self) -> bool:
        """Whether the network can fuse instances."""
        return self.fusion is not None

    @property
    def guided(self) -> bool:
        """Whether the generators are guided by the pretrained encoder."""
        return self.guidance is not None

    def with_guidance(self) -> InstColorNet:
        """A guided copy of this unguided network that computes exactly what it does.

        The guidance blocks' modulations are zero-initialised (an untrained block is the
        identity), so the copy's outputs equal this network's until the blocks are
        trained (how v6's first stage and a guided fine-tuning start from v4).

        Raises:
            InputError: the network is guided already.
        """
        if self.guided:
            raise InputError("with_guidance: expected an unguided network, received a guided one")
        copy = InstColorNet(
            self.width,
            with_instances=self.with_instances,
            mask_value=self.mask_value,
            instance_batch=self.instance_batch,
            guided=True,
        )
        state = self.state_dict()
        missing, unexpected = copy.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("guidance.") for k in missing):
            raise InputError(  # unreachable unless the two architectures drift apart
                f"with_guidance: expected only guidance parameters missing, received missing "
                f"{missing[:3]} and unexpected {unexpected[:3]}"
            )
        return copy.to(next(self.parameters()).dtype).train(self.training)

    def semantic_hook(self, labels: torch.Tensor | None) -> FeatureHook | None:
        """The hook that conditions decoder features on ``labels`` ``(1, S, S)``, or None."""
        if labels is None:
            return None
        semantic = self.semantic
        return lambda name, feature: semantic(name, feature, labels)

    def generator_hook(
        self,
        network: str,
        l_norm: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        encoded: tuple[torch.Tensor, ...] | None = None,
    ) -> FeatureHook | None:
        """Every hook one generator's forward applies: encoder guidance, then semantics.

        Args:
            network: ``"full"``, ``"instance"`` or ``"fusion"``.
            l_norm: ``(B, 1, S, S)`` the normalised L that generator sees.
            labels: ``(B, S, S)`` semantic labels, or None.
            encoded: the encoder's features of ``l_norm`` when already computed.
        """
        semantic = self.semantic_hook(labels)
        if self.guidance is None:
            return semantic
        block = self.guidance[network]
        guide = block.hook(block.embed(l_norm, encoded=encoded))
        if semantic is None:
            return guide
        return lambda name, feature: semantic(name, guide(name, feature))

    def colorize(
        self,
        l_norm: torch.Tensor,
        *,
        crops: torch.Tensor | None = None,
        placements: dict[int, Placement] | None = None,
        labels: torch.Tensor | None = None,
        classify: bool = False,
        hints: torch.Tensor | None = None,
        crop_hints: torch.Tensor | None = None,
    ) -> FusionOutput:
        """Predict ab for one image.

        Args:
            l_norm: ``(1, 1, S, S)`` normalised L, ``(L - 50) / 100``.
            crops: ``(N, 1, S, S)`` normalised L of the instance crops, or None.
            placements: operators from :func:`instance_placements` for the crops' boxes.
            labels: ``(1, S, S)`` int64 semantic labels, or None.
            classify: also return the classification head's logits (``(1, 529, S/4,
                S/4)``, from the network that produced ab: the fusion network's fused
                conv8_3 with instances, else the full-image network's).
            hints: ``(1, 3, S, S)`` hint channels of the image, or None (automatic).
            crop_hints: ``(N, 3, S, S)`` hint channels of the crops, or None.

        Returns:
            :class:`~instacolor.models.fusion.FusionOutput` (tensors): ab ``(1, 2, S, S)``
            in network units; the 13 fusion weight maps when crops were given, else ``()``.
        """
        x = network_input(l_norm, self.mask_value, hints)
        encoded = self.guidance["full"].encode(l_norm) if self.guidance is not None else None
        if crops is None or crops.shape[0] == 0 or self.fusion is None:
            out = self.full(x, self.generator_hook("full", l_norm, labels, encoded=encoded))
            logits = self.full.classify(out.feature("conv8_3")) if classify else None
            return FusionOutput(ab=out.ab, weights=(), class_logits=logits)
        if placements is None:
            raise InputError(
                f"placements: expected the operators of the {crops.shape[0]} crops' boxes "
                "(instance_placements), received None"
            )
        crops_x = network_input(crops, self.mask_value, crop_hints)
        instance_hooks = None
        if self.guidance is not None:
            instance_hooks = [
                self.generator_hook("instance", chunk) for chunk in crops.split(self.instance_batch)
            ]
        return self.fusion.fuse(
            x,
            self.instance,
            crops_x,
            placements,
            self.generator_hook("fusion", l_norm, labels, encoded=encoded),
            batch=self.instance_batch,
            classify=classify,
            instance_hooks=instance_hooks,
        )
