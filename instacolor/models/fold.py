"""BatchNorm folded into the preceding convolutions, for inference.

In the siggraph generator every block ends ``Conv2d -> ReLU -> BatchNorm2d``. In eval
mode BatchNorm is the per-channel affine map ``y = s * x + t`` with
``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s``. Because
``ReLU`` is positively homogeneous, ``s * ReLU(z) = ReLU(s * z)`` for ``s > 0``, so the
scale moves into the convolution (``W' = s W``, ``b' = s b``) and only the shift
``t`` remains, added in place after the ReLU (:class:`Shift`). With a directly
preceding convolution (``Conv2d -> BatchNorm2d``) the shift folds into the bias too.
A block whose BatchNorm has a scale ``<= 0`` in any channel is left as it is, so
folding is exact up to float rounding wherever it is applied.

The math lives in tensor functions (:func:`batchnorm_affine`, :func:`scale_conv`);
:func:`fold_batchnorm` rewrites a module tree in place.

Example:
    >>> import torch
    >>> from torch import nn
    >>> block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4))
    >>> block = block.eval()
    >>> x = torch.randn(1, 3, 8, 8)
    >>> want = block(x)
    >>> fold_batchnorm(block)
    1
    >>> bool(torch.allclose(block(x), want, atol=1e-6))
    True
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from instacolor.errors import InputError
from instacolor.models.generator import SHORTCUTS

__all__ = [
    "ConvReLU",
    "ConvSum",
    "Shift",
    "batchnorm_affine",
    "fold_batchnorm",
    "fuse_conv_relu",
    "fuse_shortcuts",
    "inference_copy",
    "scale_conv",
]


def batchnorm_affine(
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` of an eval-mode BatchNorm: ``y = scale * x + shift``.

    Args:
        weight: ``(C,)`` gamma.
        bias: ``(C,)`` beta.
        running_mean: ``(C,)`` running mean.
        running_var: ``(C,)`` running variance (>= 0).
        eps: the BatchNorm's epsilon.

    Returns:
        ``(scale (C,), shift (C,))``, computed in float64 and cast to ``weight``'s dtype.
    """
    scale = weight.double() / torch.sqrt(running_var.double() + eps)
    shift = bias.double() - running_mean.double() * scale
    return scale.to(weight.dtype), shift.to(weight.dtype)


def scale_conv(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: torch.Tensor,
    *,
    transposed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights and bias of a convolution whose output channels are multiplied by ``scale``.

    Args:
        weight: ``(C_out, C_in, k, k)`` (``(C_in, C_out, k, k)`` when ``transposed``).
        bias: ``(C_out,)`` or None.
        scale: ``(C_out,)`` per-output-channel factors.
        transposed: the weight is a ``ConvTranspose2d``'s.

    Returns:
        ``(weight', bias')`` with ``conv'(x) = scale * conv(x)`` per output channel.
    """
    view = (1, -1, 1, 1) if transposed else (-1, 1, 1, 1)
    w = (weight.double() * scale.double().view(view)).to(weight.dtype)
    b = None if bias is None else (bias.double() * scale.double()).to(bias.dtype)
    return w, b


class Shift(nn.Module):
    """Adds a per-channel constant in place: what is left of a folded BatchNorm.

    Args:
        shift: ``(C,)`` values added to channel ``c`` of a ``(B, C, H, W)`` input.
    """

    def __init__(self, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + shift`` (in place when autograd does not need ``x``)."""
        if torch.is_grad_enabled() and x.requires_grad:
            return x + self.shift
        return x.add_(self.shift)


_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _foldable(layers: list[nn.Module], i: int) -> tuple[nn.Module, bool] | None:
    """The convolution BatchNorm ``layers[i]`` folds into, and whether a ReLU sits between."""
    if i >= 1 and isinstance(layers[i - 1], _CONVS):
        return layers[i - 1], False
    relu = i >= 2 and isinstance(layers[i - 1], nn.ReLU) and isinstance(layers[i - 2], _CONVS)
    return (layers[i - 2], True) if relu else None


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that follows a convolution into it, in place.

    Patterns (inside one ``nn.Sequential``): ``Conv -> BatchNorm`` (scale and shift go
    into the convolution, the BatchNorm becomes ``nn.Identity``) and
    ``Conv -> ReLU -> BatchNorm`` with every scale ``> 0`` (the scale goes into the
    convolution, the BatchNorm becomes :class:`Shift`, or ``nn.Identity`` when the shift
    is zero). Other BatchNorms are left unchanged. Only for inference: the folded
    module no longer trains as the original would.

    Args:
        module: the network (its BatchNorms in eval mode).

    Returns:
        The number of BatchNorms folded.

    Raises:
        InputError: when a BatchNorm to fold is in training mode or has no running stats.
    """
    folded = _fold_named_pairs(module)
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i, bn in enumerate(layers):
            if not isinstance(bn, nn.BatchNorm2d) or (found := _foldable(layers, i)) is None:
                continue
            _check_eval(bn)
            conv, after_relu = found
            ones = torch.ones_like(bn.running_mean)
            gamma = bn.weight if bn.affine else ones
            beta = bn.bias if bn.affine else torch.zeros_like(ones)
            scale, shift = batchnorm_affine(
                gamma.detach(), beta.detach(), bn.running_mean, bn.running_var, bn.eps
            )
            if after_relu and not bool((scale > 0).all()):
                continue
            transposed = isinstance(conv, nn.ConvTranspose2d)
            w, b = scale_conv(conv.weight.detach(), _bias(conv), scale, transposed=transposed)
            if not after_relu:
                b, shift = b + shift, torch.zeros_like(shift)
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            seq[i] = Shift(shift) if bool(shift.any()) else nn.Identity()
            folded += 1
    return folded


def _check_eval(bn: nn.BatchNorm2d) -> None:
    if bn.training or bn.running_mean is None:
        raise InputError(
            "fold_batchnorm: expected BatchNorm2d layers in eval mode with running "
            "statistics, received one in training mode; call module.eval() first"
        )


def _fold_named_pairs(module: nn.Module) -> int:
    """Fold the ``Conv -> BatchNorm`` pairs that modules name in ``CONV_BATCHNORM``.

    Modules whose forward calls attributes rather than an ``nn.Sequential`` (the
    pretrained encoder's blocks) list their ``(conv attribute, BatchNorm attribute)``
    pairs there; the BatchNorm becomes ``nn.Identity``.
    """
    folded = 0
    for owner in module.modules():
        for conv_name, bn_name in getattr(owner, "CONV_BATCHNORM", ()):
            conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
            if conv is None or not isinstance(bn, nn.BatchNorm2d):
                continue
            _check_eval(bn)
            scale, shift = batchnorm_affine(
                bn.weight.detach(), bn.bias.detach(), bn.running_mean, bn.running_var, bn.eps
            )
            w, b = scale_conv(conv.weight.detach(), _bias(conv), scale, transposed=False)
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b + shift)
            setattr(owner, bn_name, nn.Identity())
            folded += 1
    return folded


def _bias(conv: nn.Module) -> torch.Tensor:
    if conv.bias is None:
        channels = conv.weight.shape[1 if isinstance(conv, nn.ConvTranspose2d) else 0]
        conv.bias = nn.Parameter(conv.weight.new_zeros(channels))
    return conv.bias.detach()


class ConvReLU(nn.Module):
    """``ReLU(conv(x))`` (or ``LeakyReLU``) as one oneDNN operation on the CPU.

    No separate pass of the activation over the feature map: it is oneDNN's post-op on
    the same accumulator. Falls back to the two operations off the CPU, under autograd
    or autocast, or when ``x`` and the weights differ in dtype.

    Args:
        conv: the ``nn.Conv2d`` (zero padding) whose output is rectified.
        negative_slope: None for ``ReLU``; the slope of a ``LeakyReLU`` otherwise.
    """

    def __init__(self, conv: nn.Conv2d, negative_slope: float | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.negative_slope = negative_slope

    def _activate(self, y: torch.Tensor) -> torch.Tensor:
        if self.negative_slope is None:
            return torch.relu(y)
        return F.leaky_relu(y, self.negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``act(conv(x))``, ``(B, C_out, H', W')``."""
        c = self.conv
        if not _fusable(x, c):
            return self._activate(c(x))
        attr, scalars = (
            ("relu", []) if self.negative_slope is None else ("leaky_relu", [self.negative_slope])
        )
        return torch.ops.mkldnn._convolution_pointwise(
            x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups, attr, scalars, ""
        )


def _activation_slope(layer: nn.Module) -> float | bool | None:
    """None for ReLU, the slope for LeakyReLU, False for anything else."""
    if isinstance(layer, nn.ReLU):
        return None
    if isinstance(layer, nn.LeakyReLU):
        return float(layer.negative_slope)
    return False


def fuse_conv_relu(module: nn.Module) -> int:
    """Replace every ``Conv2d -> ReLU`` (or ``LeakyReLU``) pair of an ``nn.Sequential``.

    Each pair becomes one :class:`ConvReLU`; the activation's slot becomes
    ``nn.Identity`` so that indices stay. Only for inference.

    Returns:
        The number of pairs fused.
    """
    fused = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i in range(len(layers) - 1):
            conv, slope = layers[i], _activation_slope(layers[i + 1])
            plain = type(conv) is nn.Conv2d and conv.padding_mode == "zeros"
            if plain and slope is not False and not isinstance(conv.padding, str):
                seq[i], seq[i + 1] = ConvReLU(conv, slope), nn.Identity()
                fused += 1
    return fused


class ConvSum(nn.Module):
    """A skip connection's convolution that can add its output into a tensor in place.

    ``forward`` is the convolution; :meth:`add_into` computes ``y + conv(x)`` as one
    oneDNN convolution with a sum post-op writing into ``y`` (no temporary feature map,
    no separate addition) on the CPU, and falls back to ``y + conv(x)`` elsewhere.

    Args:
        conv: the ``nn.Conv2d`` (zero padding).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)``."""
        return self.conv(x)

    def add_into(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``y + conv(x)``, ``(B, C_out, H', W')``; ``y`` may be overwritten."""
        c = self.conv
        fused = (
            _fusable(x, c)
            and y.dtype == x.dtype
            and y.is_contiguous(memory_format=_format(x))
            and not (torch.is_grad_enabled() and y.requires_grad)
        )
        if not fused:
            return y + c(x)
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            y, x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups,
            "add", 1.0, None, [], None,
        )  # fmt: skip


def _format(x: torch.Tensor) -> torch.memory_format:
    """``x``'s memory format (channels_last or contiguous)."""
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


def _fusable(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether oneDNN may run ``conv`` on ``x`` with a post-op (CPU, same dtype, no grad)."""
    return (
        x.device.type == "cpu"
        and x.dtype == conv.weight.dtype
        and not torch.is_autocast_enabled("cpu")
        and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
    )


def fuse_shortcuts(module: nn.Module) -> int:
    """Replace each skip connection's convolution (:data:`~instacolor.models.generator.
    SHORTCUTS`) by :class:`ConvSum`, so that the generator adds it in place.

    Returns:
        The number of shortcuts replaced.
    """
    fused = 0
    for name, seq in module.named_modules():
        if name.rsplit(".", 1)[-1] in SHORTCUTS and isinstance(seq, nn.Sequential):
            conv = seq[0]
            if len(seq) == 1 and type(conv) is nn.Conv2d and conv.padding_mode == "zeros":
                seq[0] = ConvSum(conv)
                fused += 1
    return fused


def inference_copy(
    net: nn.Module, *, fold: bool = True, channels_last: bool = False, fuse_relu: bool = False
) -> tuple[nn.Module, int]:
    """A copy of ``net`` prepared for inference, or ``net`` itself when nothing is asked.

    Args:
        net: the network in eval mode (left unchanged: its state dict, and so its
            digest and checkpoints, stay those of the weights).
        fold: fold BatchNorms into the preceding convolutions (:func:`fold_batchnorm`).
        channels_last: store the convolution weights as NHWC (``torch.channels_last``),
            so that oneDNN runs the convolutions without reordering every feature.
        fuse_relu: run each ``Conv2d -> ReLU`` (or ``LeakyReLU``) as one oneDNN
            operation (:func:`fuse_conv_relu`) and add each skip connection's
            convolution in place (:func:`fuse_shortcuts`).

    Returns:
        ``(network, number of BatchNorms folded)``.
    """
    if not (fold or channels_last or fuse_relu):
        return net, 0
    out = copy.deepcopy(net)
    folded = fold_batchnorm(out) if fold else 0  # before fusing: it looks for Conv, ReLU, BN
    if fuse_relu:
        fuse_conv_relu(out)
        fuse_shortcuts(out)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    return out, folded
