"""Semantic conditioning of the decoder: SPADE-style scale and shift from a class map.

A per-pixel label map (instacolor's one label space, :mod:`instacolor.labels`) is
embedded, passed through a small shared conv, and predicts per-channel ``gamma`` and
``beta`` maps for chosen decoder features: ``f * (1 + gamma) + beta``. The layers
that predict ``gamma`` and ``beta`` start at zero, so an untrained block is exactly
the identity and official weights give official outputs with or without a map.

Unlike SPADE there is no parameter-free normalisation before the modulation: the
backbone's BatchNorm statistics stay those of the weights it was trained with.

Example:
    >>> import torch
    >>> from instacolor.models.semantic import SemanticConditioning
    >>> block = SemanticConditioning({"conv10_2": 8})
    >>> feature = torch.randn(1, 8, 16, 16)
    >>> labels = torch.randint(0, 134, (1, 16, 16))
    >>> bool(torch.equal(block("conv10_2", feature, labels), feature))
    True
"""

from __future__ import annotations

import torch
from torch import nn

from instacolor.labels import NUM_LABELS

__all__ = ["SEMANTIC_POINTS", "Modulation", "SemanticConditioning", "downsample_labels"]

#: Decoder fusion points that the semantic map conditions by default.
SEMANTIC_POINTS = ("conv8_3", "conv9_3", "conv10_2")


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a ``(B, H, W)`` int64 label map to ``size``."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    resized = nn.functional.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].long()


class Modulation(nn.Module):
    """``f * (1 + gamma(e)) + beta(e)`` of a feature ``f`` and an embedding ``e``.

    ``gamma`` and ``beta`` start at zero (the block is the identity until trained); they
    are computed on the embedding's grid and bilinearly resized to the feature's.
    """

    def __init__(self, embed_dim: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Conv2d(embed_dim, hidden, 3, padding=1), nn.ReLU(True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, feature: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        hidden = self.shared(embedded)
        gamma, beta = self.gamma(hidden), self.beta(hidden)
        if gamma.shape[-2:] != feature.shape[-2:]:
            size = tuple(feature.shape[-2:])
            gamma = nn.functional.interpolate(gamma, size=size, mode="bilinear")
            beta = nn.functional.interpolate(beta, size=size, mode="bilinear")
        return feature * (1 + gamma) + beta


class SemanticConditioning(nn.Module):
    """Class-map conditioning of decoder features.

    Args:
        channels: ``{fusion_point: channels}`` of the features to condition.
        num_labels: size of the label space (134: COCO panoptic + unknown).
        embed_dim: width of the label embedding.
        hidden: width of the shared conv of each modulation.
    """

    def __init__(
        self,
        channels: dict[str, int],
        *,
        num_labels: int = NUM_LABELS,
        embed_dim: int = 16,
        hidden: int = 32,
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.embedding = nn.Embedding(num_labels, embed_dim)
        self.modulations = nn.ModuleDict(
            {name: Modulation(embed_dim, hidden, c) for name, c in channels.items()}
        )

    @property
    def points(self) -> tuple[str, ...]:
        """Fusion points this block conditions."""
        return tuple(self.modulations.keys())

    def forward(self, name: str, feature: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Condition ``feature`` ``(B, C, h, w)`` at point ``name`` on ``labels``.

        Args:
            name: fusion point; features at points without a modulation pass unchanged.
            feature: ``(B, C, h, w)`` decoder feature.
            labels: ``(B, H, W)`` int64 labels in ``[0, num_labels)``, resized to
                ``(h, w)`` by nearest neighbour.

        Returns:
            ``(B, C, h, w)`` conditioned feature.
        """
        if name not in self.modulations:
            return feature
        small = downsample_labels(labels, tuple(feature.shape[-2:]))
        embedded = self.embedding(small).permute(0, 3, 1, 2).to(feature.dtype)
        return self.modulations[name](feature, embedded)
