"""Guidance of a generator by a frozen pretrained encoder (weights v6 onwards).

The encoder (:mod:`instacolor.models.encoder`) sees the same gray input as the
generator; a small feature pyramid (1x1 laterals, top-down sums, a 3x3 conv at strides
8 and 4) turns its five feature maps into two embeddings, and at chosen decoder points
the generator's feature is modulated by them, ``f * (1 + gamma) + beta``
(:class:`~instacolor.models.semantic.Modulation`, zero-initialised: an untrained block
is the identity). The full-image generator is guided by the encoder's view of the
whole image, the instance generator by its view of each crop, which is what the full
image lacks for small objects.

Only the pyramid and the modulations are instacolor's parameters (state-dict prefix
``guidance.``); the encoder's come from its package and are not stored in our files.

Example:
    >>> import torch
    >>> from instacolor.models.encoder import EfficientNetLite0
    >>> from instacolor.models.guidance import EncoderGuidance
    >>> block = EncoderGuidance({"conv4_3": 8, "conv8_3": 4}, EfficientNetLite0().eval())
    >>> l_norm = torch.zeros(1, 1, 64, 64)
    >>> embedded = block.embed(l_norm)
    >>> f = torch.randn(1, 8, 8, 8)
    >>> bool(torch.equal(block.modulate("conv4_3", f, embedded), f))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from instacolor.models.encoder import ENCODER_CHANNELS, EfficientNetLite0
from instacolor.models.generator import FUSION_SCALE_DIVISOR, FeatureHook
from instacolor.models.semantic import Modulation

__all__ = ["GUIDED_POINTS", "EncoderGuidance", "Guide"]

#: Decoder points the encoder guides by default.
GUIDED_POINTS = ("conv4_3", "conv7_3", "conv8_3", "conv9_3")
_ENCODER_PREFIX = "encoder."


@dataclass(frozen=True)
class Guide:
    """The pyramid's embeddings of one batch of images.

    Attributes:
        stride8: ``(B, D, H/8, W/8)``.
        stride4: ``(B, D, H/4, W/4)``.
    """

    stride8: torch.Tensor
    stride4: torch.Tensor

    def at(self, divisor: int) -> torch.Tensor:
        """The embedding used for features at ``input_size // divisor``."""
        return self.stride8 if divisor >= 8 else self.stride4

    def chunk(self, size: int) -> list[Guide]:
        """The guide split along the batch in pieces of ``size`` images."""
        return [
            Guide(a, b)
            for a, b in zip(self.stride8.split(size), self.stride4.split(size), strict=True)
        ]


class EncoderGuidance(nn.Module):
    """A frozen encoder, a trainable pyramid and per-point modulations.

    Args:
        channels: ``{fusion_point: channels}`` of the generator features to modulate.
        encoder: the pretrained encoder (frozen; its tensors are left out of
            ``state_dict`` and expected nowhere by ``load_state_dict``).
        dim: channels of the pyramid.
        hidden: hidden channels of each modulation.
    """

    def __init__(
        self,
        channels: dict[str, int],
        encoder: EfficientNetLite0,
        *,
        dim: int = 64,
        hidden: int = 32,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.laterals = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in ENCODER_CHANNELS)
        self.smooth8 = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(True))
        self.smooth4 = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(True))
        self.modulations = nn.ModuleDict(
            {name: Modulation(dim, hidden, c) for name, c in channels.items()}
        )
        self._register_state_dict_hook(_drop_encoder)
        self.register_load_state_dict_post_hook(_encoder_not_expected)

    @property
    def points(self) -> tuple[str, ...]:
        """Fusion points this block modulates."""
        return tuple(self.modulations.keys())

    def train(self, mode: bool = True) -> EncoderGuidance:
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm keeps ImageNet's statistics
        return self

    def encode(self, l_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The frozen encoder's five feature maps of ``(B, 1, H, W)`` normalised L."""
        with torch.no_grad():
            return self.encoder.features(l_norm)

    def embed(
        self,
        l_norm: torch.Tensor | None = None,
        *,
        encoded: Sequence[torch.Tensor] | None = None,
    ) -> Guide:
        """The pyramid's embeddings of a batch.

        Args:
            l_norm: ``(B, 1, H, W)`` normalised L, ``H`` and ``W`` multiples of 32.
            encoded: the encoder's features of that batch when already computed (a
                training cache); ``l_norm`` is then not needed.

        Returns:
            A :class:`Guide`.
        """
        feats = tuple(encoded) if encoded is not None else self.encode(l_norm)
        p4, p8, p16, p32, head = (lat(f.float()) for lat, f in zip(self.laterals, feats))
        top = p32 + head
        p16 = p16 + _up(top, p16)
        p8 = p8 + _up(p16, p8)
        p4 = p4 + _up(p8, p4)
        return Guide(stride8=self.smooth8(p8), stride4=self.smooth4(p4))

    def modulate(self, name: str, feature: torch.Tensor, guide: Guide) -> torch.Tensor:
        """``feature`` ``(B, C, h, w)`` at point ``name`` modulated by ``guide``."""
        if name not in self.modulations:
            return feature
        embedded = guide.at(FUSION_SCALE_DIVISOR[name]).to(feature.dtype)
        return self.modulations[name](feature, embedded)

    def hook(self, guide: Guide) -> FeatureHook:
        """``hook(name, feature)`` modulating a generator's features by ``guide``."""
        return lambda name, feature: self.modulate(name, feature, guide)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return nn.functional.interpolate(x, size=like.shape[-2:], mode="nearest")


def _drop_encoder(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + _ENCODER_PREFIX)]:
        del state_dict[key]


def _encoder_not_expected(module, incompatible) -> None:
    incompatible.missing_keys[:] = [
        k for k in incompatible.missing_keys if f".{_ENCODER_PREFIX}" not in f".{k}"
    ]
