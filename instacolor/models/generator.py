"""The colorization generator: Zhang et al.'s 2017 "siggraph" U-Net, parameterised by width.

At ``width=64`` the module tree, ``nn.Sequential`` indices, shapes and BatchNorm
buffers are those of InstColorization's full-image and instance networks and of
Zhang et al.'s ``siggraph17`` generator, so their state dicts load strictly. Smaller
widths scale every channel count (``64 -> width``) and give instacolor's compact
networks; the classification head keeps its 529 bins.

The forward pass exposes the 13 fusion points of InstColorization. A caller may pass
a ``hook(name, feature) -> feature`` that replaces the feature at each point; the
fusion network and the semantic conditioning are written that way, so the backbone
is written once.

Example:
    >>> import torch
    >>> from instacolor.models.generator import ColorGenerator, FUSION_POINTS
    >>> net = ColorGenerator(width=8).eval()
    >>> out = net(torch.zeros(1, 4, 64, 64))
    >>> out.ab.shape, len(out.features) == len(FUSION_POINTS)
    (torch.Size([1, 2, 64, 64]), True)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch
from torch import nn

from instacolor.errors import InputError

__all__ = [
    "AB_CLASSES",
    "FUSION_POINTS",
    "FUSION_SCALE_DIVISOR",
    "REFERENCE_WIDTH",
    "ColorGenerator",
    "FeatureHook",
    "GeneratorOutput",
    "fusion_channels",
]

#: Width of the published networks (channels of conv1).
REFERENCE_WIDTH = 64
#: Bins of the quantised-ab classification head (23 x 23 grid, Zhang et al.).
AB_CLASSES = 529

#: The 13 fusion points of InstColorization, in the order the forward pass meets them.
FUSION_POINTS = (
    "conv1_2",
    "conv2_2",
    "conv3_3",
    "conv4_3",
    "conv5_3",
    "conv6_3",
    "conv7_3",
    "conv8_up",
    "conv8_3",
    "conv9_up",
    "conv9_3",
    "conv10_up",
    "conv10_2",
)
#: Feature size at each fusion point is ``input_size // divisor``.
FUSION_SCALE_DIVISOR = {
    "conv1_2": 1,
    "conv2_2": 2,
    "conv3_3": 4,
    "conv4_3": 8,
    "conv5_3": 8,
    "conv6_3": 8,
    "conv7_3": 8,
    "conv8_up": 4,
    "conv8_3": 4,
    "conv9_up": 2,
    "conv9_3": 2,
    "conv10_up": 1,
    "conv10_2": 1,
}

#: The forward pass as a coroutine: yields ``(name, feature)``, is sent the feature to
#: continue with, returns ab.
Stages = Generator[tuple[str, torch.Tensor], torch.Tensor, torch.Tensor]

#: ``hook(fusion_point_name, feature) -> feature`` applied at every fusion point.
FeatureHook = Callable[[str, torch.Tensor], torch.Tensor]


def fusion_channels(width: int) -> dict[str, int]:
    """Channels of the feature at each fusion point for a generator of ``width``."""
    c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
    return {
        "conv1_2": c1,
        "conv2_2": c2,
        "conv3_3": c3,
        "conv4_3": c4,
        "conv5_3": c4,
        "conv6_3": c4,
        "conv7_3": c4,
        "conv8_up": c3,
        "conv8_3": c3,
        "conv9_up": c2,
        "conv9_3": c2,
        "conv10_up": c2,
        "conv10_2": c2,
    }


@dataclass(frozen=True)
class GeneratorOutput:
    """What one generator forward returns.

    Attributes:
        ab: ``(B, 2, H, W)`` predicted chroma in network units (Tanh range ``[-1, 1]``;
            times 110 gives Lab a, b).
        features: the 13 fusion-point features in :data:`FUSION_POINTS` order, each
            ``(B, C_i, H / d_i, W / d_i)``, after any hook replaced them. As in the
            reference, ``conv8_up``, ``conv9_up`` and ``conv10_up`` are seen by the next
            block's in-place ReLU, so they are returned rectified.
    """

    ab: torch.Tensor
    features: tuple[torch.Tensor, ...]

    def feature(self, name: str) -> torch.Tensor:
        """The feature at fusion point ``name``."""
        return self.features[FUSION_POINTS.index(name)]


def _block(
    channels: list[int], *, dilation: int = 1, relu_first: bool = False, norm: bool = True
) -> nn.Sequential:
    """Convs with ReLU after each and a final BatchNorm; indices match the reference."""
    layers: list[nn.Module] = [nn.ReLU(True)] if relu_first else []
    for cin, cout in itertools.pairwise(channels):
        layers += [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(True)]
    if norm:
        layers.append(nn.BatchNorm2d(channels[-1]))
    return nn.Sequential(*layers)


def _identity_hook(name: str, feature: torch.Tensor) -> torch.Tensor:
    return feature


class ColorGenerator(nn.Module):
    """Zhang et al. 2017 colorization U-Net with InstColorization's fusion points.

    Args:
        width: channels of the first stage; 64 is the published architecture.
        in_channels: input channels, 4 for (L, a hint, b hint, mask).

    Input ``(B, 4, H, W)`` with ``H`` and ``W`` multiples of 8: ``(L-50)/100``,
    ``a_hint/110``, ``b_hint/110`` and the mask channel (see the weights entry for its
    automatic-mode value).
    """

    def __init__(self, width: int = REFERENCE_WIDTH, *, in_channels: int = 4) -> None:
        super().__init__()
        if width < 1:
            raise InputError(
                f"width: expected a positive integer, received {width}; use 64 for the "
                "published architecture or a smaller width for a compact network"
            )
        self.width = width
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
        self.model1 = _block([in_channels, c1, c1])
        self.model2 = _block([c1, c2, c2])
        self.model3 = _block([c2, c3, c3, c3])
        self.model4 = _block([c3, c4, c4, c4])
        self.model5 = _block([c4, c4, c4, c4], dilation=2)
        self.model6 = _block([c4, c4, c4, c4], dilation=2)
        self.model7 = _block([c4, c4, c4, c4])
        self.model8up = nn.Sequential(nn.ConvTranspose2d(c4, c3, 4, stride=2, padding=1))
        self.model8 = _block([c3, c3, c3], relu_first=True)
        self.model9up = nn.Sequential(nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1))
        self.model9 = _block([c2, c2], relu_first=True)
        self.model10up = nn.Sequential(nn.ConvTranspose2d(c2, c2, 4, stride=2, padding=1))
        self.model10 = nn.Sequential(
            nn.ReLU(True), nn.Conv2d(c2, c2, 3, padding=1), nn.LeakyReLU(0.2)
        )
        self.model3short8 = nn.Sequential(nn.Conv2d(c3, c3, 3, padding=1))
        self.model2short9 = nn.Sequential(nn.Conv2d(c2, c2, 3, padding=1))
        self.model1short10 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1))
        self.model_class = nn.Sequential(nn.Conv2d(c3, AB_CLASSES, 1))
        self.model_out = nn.Sequential(nn.Conv2d(c2, 2, 1), nn.Tanh())

    def stages(
        self, x: torch.Tensor
    ) -> Generator[tuple[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The forward pass as a coroutine that pauses at every fusion point.

        It yields ``(name, feature)`` at each point of :data:`FUSION_POINTS` and
        continues with the tensor sent back (``gen.send(feature)``); it returns the
        ``(B, 2, H, W)`` ab. Two networks can so run in lockstep (the fusion network
        and the instance network on the crops) without keeping every feature alive.
        """
        c1 = yield "conv1_2", self.model1(x)
        c2 = yield "conv2_2", self.model2(c1[:, :, ::2, ::2])
        c3 = yield "conv3_3", self.model3(c2[:, :, ::2, ::2])
        # one running feature ``h``: only the skip sources c1..c3 stay alive meanwhile
        h = yield "conv4_3", self.model4(c3[:, :, ::2, ::2])
        h = yield "conv5_3", self.model5(h)
        h = yield "conv6_3", self.model6(h)
        h = yield "conv7_3", self.model7(h)
        h = yield "conv8_up", _plus(self.model8up(h), self.model3short8, c3)
        del c3
        h = yield "conv8_3", self.model8(h)
        h = yield "conv9_up", _plus(self.model9up(h), self.model2short9, c2)
        del c2
        h = yield "conv9_3", self.model9(h)
        h = yield "conv10_up", _plus(self.model10up(h), self.model1short10, c1)
        del c1
        h = yield "conv10_2", self.model10(h)
        return self.model_out(h)

    def forward(self, x: torch.Tensor, hook: FeatureHook | None = None) -> GeneratorOutput:
        """Predict ab and expose the fusion-point features.

        Args:
            x: ``(B, in_channels, H, W)`` network input, H and W multiples of 8.
            hook: called as ``hook(name, feature)`` at every fusion point; its return
                value replaces the feature for the rest of the forward pass.

        Returns:
            A :class:`GeneratorOutput` with ``ab`` ``(B, 2, H, W)`` in ``[-1, 1]``.
        """
        h = hook or _identity_hook
        run = self.stages(x)
        features = []
        name, feature = next(run)
        while True:
            feature = h(name, feature)
            features.append(feature)
            try:
                name, feature = run.send(feature)
            except StopIteration as done:
                return GeneratorOutput(ab=done.value, features=tuple(features))

    def classify(self, conv8_3: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 529, H/4, W/4)`` over quantised ab from the conv8_3 feature."""
        return self.model_class(conv8_3)


#: The skip connections' ``nn.Sequential`` names (one convolution each).
SHORTCUTS = ("model3short8", "model2short9", "model1short10")


def _plus(up: torch.Tensor, shortcut: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``up + shortcut(x)``; a fused shortcut (``add_into``) adds into ``up`` in place."""
    add_into = getattr(shortcut[0], "add_into", None)
    return up + shortcut(x) if add_into is None else add_into(up, x)
