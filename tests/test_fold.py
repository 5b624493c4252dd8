"""BatchNorm folding and the TorchRuntime inference options (fold, channels_last, bf16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from instacolor.errors import InputError
from instacolor.models.fold import (
    ConvReLU,
    ConvSum,
    Shift,
    batchnorm_affine,
    fold_batchnorm,
    inference_copy,
    scale_conv,
)
from instacolor.models.inputs import prepare_inputs
from instacolor.models.network import InstColorNet
from instacolor.runtime.allocator import keep_freed_memory
from instacolor.runtime.torch_runtime import TorchRuntime
from instacolor.structures import Instances

S = 32


def _randomise_batchnorm(net: nn.Module, seed: int = 0, negative: bool = False) -> None:
    """Random statistics and affine parameters; ``negative``: every other BatchNorm
    gets a negative scale in channel 0."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for k, m in enumerate(bns):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            if negative and k % 2 == 0:
                m.weight[0] = -0.7
            m.bias.copy_(torch.randn(c, generator=gen) * 0.3)


def _net(seed: int = 0, negative: bool = False) -> InstColorNet:
    torch.manual_seed(seed)
    net = InstColorNet(8).eval()
    _randomise_batchnorm(net, seed, negative)
    return net


def _inputs(n: int = 2):
    light = (np.random.default_rng(3).random((48, 80)) * 100).astype(np.float32)
    boxes = [[8, 4, 40, 30], [50, 10, 80, 48], [0, 0, 80, 48]][:n]
    inst = Instances.from_boxes(boxes, light.shape) if n else None
    return prepare_inputs(light, inst, None, S)


def test_batchnorm_affine_equals_eval_batchnorm():
    bn = nn.BatchNorm2d(5).eval()
    _randomise_batchnorm(nn.Sequential(bn))
    x = torch.randn(2, 5, 7, 7)
    scale, shift = batchnorm_affine(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
    torch.testing.assert_close(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), bn(x))


@pytest.mark.parametrize("transposed", [False, True])
def test_scale_conv_scales_each_output_channel(transposed):
    conv = nn.ConvTranspose2d(3, 4, 4, 2, 1) if transposed else nn.Conv2d(3, 4, 3, padding=1)
    scale = torch.tensor([0.5, 2.0, -1.0, 3.0])
    w, b = scale_conv(conv.weight, conv.bias, scale, transposed=transposed)
    x = torch.randn(1, 3, 6, 6)
    op = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    kw = {"stride": 2, "padding": 1} if transposed else {"padding": 1}
    torch.testing.assert_close(op(x, w, b, **kw), conv(x) * scale.view(1, -1, 1, 1))


def test_conv_batchnorm_folds_into_the_bias_and_any_sign_of_scale():
    block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    _randomise_batchnorm(block, negative=True)
    x = torch.randn(2, 3, 9, 9)
    want = block(x)
    assert fold_batchnorm(block) == 1 and isinstance(block[1], nn.Identity)
    torch.testing.assert_close(block(x), want, atol=1e-5, rtol=1e-5)


def test_batchnorm_after_relu_folds_only_with_positive_scales():
    positive = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    negative = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    _randomise_batchnorm(positive)
    _randomise_batchnorm(negative, negative=True)
    x = torch.randn(2, 3, 9, 9)
    want_pos, want_neg = positive(x), negative(x)
    assert fold_batchnorm(positive) == 1 and isinstance(positive[2], Shift)
    assert fold_batchnorm(negative) == 0 and isinstance(negative[2], nn.BatchNorm2d)
    torch.testing.assert_close(positive(x), want_pos, atol=1e-5, rtol=1e-5)
    assert torch.equal(negative(x), want_neg)
    with torch.no_grad():  # the shift is added in place only when autograd does not need x
        y = torch.ones(1, 4, 2, 2)
        assert positive[2](y) is y


def test_folding_a_training_batchnorm_raises():
    block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    with pytest.raises(InputError, match="eval mode"):
        fold_batchnorm(block)


@pytest.mark.parametrize("n", [0, 2, 3])
def test_folded_network_matches_unfolded(n):
    net = _net(seed=n)
    folded, count = inference_copy(net, fold=True)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert count == bns == 27  # 9 per generator, all folded (positive scales)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    want = TorchRuntime(net).run(_inputs(n))
    got = TorchRuntime(folded).run(_inputs(n))
    assert np.abs(got.ab - want.ab).max() < 1e-4 and np.abs(want.ab).max() > 1e-3
    for a, b in zip(got.weights, want.weights, strict=True):
        assert np.abs(a - b).max() < 1e-4


def test_runtime_options_keep_the_callers_network_and_match_it():
    net = _net(seed=5, negative=True)  # every other BatchNorm cannot be folded
    keys = sorted(net.state_dict())
    plain = TorchRuntime(net)
    assert plain.inference_net is net and plain.folded == 0
    fast = TorchRuntime(net, fold_batchnorm=True, channels_last=True)
    assert fast.inference_net is not fast.net and fast.net is net
    assert 0 < fast.folded < 27 and sorted(net.state_dict()) == keys  # net untouched
    inputs = _inputs(2)
    want, got = plain.run(inputs), fast.run(inputs)
    assert np.abs(got.ab - want.ab).max() < 1e-4
    assert got.ab.flags.c_contiguous or got.ab.shape == want.ab.shape
    for a, b in zip(got.weights, want.weights, strict=True):
        assert np.abs(a - b).max() < 1e-4


def test_bf16_runtime_is_close_to_float32():
    net = _net(seed=7)
    inputs = _inputs(2)
    want = TorchRuntime(net).run(inputs)
    got = TorchRuntime(net, bf16=True, fold_batchnorm=True).run(inputs)
    assert got.ab.dtype == np.float32 and len(got.weights) == 13
    delta = np.abs(got.ab - want.ab).max()
    assert 0 < delta < 0.02  # network units (x110: ~2 Lab units at most on random weights)


def test_keep_freed_memory_is_applied_once_on_glibc():
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True


def test_fused_conv_relu_matches_conv_then_relu():
    net = _net(seed=9)
    fused, _ = inference_copy(net, fold=True, channels_last=True, fuse_relu=True)
    assert any(isinstance(m, ConvReLU) for m in fused.modules())
    assert not any(isinstance(m, ConvReLU) for m in net.modules())
    inputs = _inputs(2)
    want = TorchRuntime(net).run(inputs)
    got = TorchRuntime(net, fold_batchnorm=True, channels_last=True, fuse_relu=True).run(inputs)
    assert np.abs(got.ab - want.ab).max() < 1e-4
    block = ConvReLU(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    block(x).sum().backward()  # under autograd it falls back to conv then ReLU
    assert x.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(block.conv(x)))


def test_leaky_relu_and_shortcuts_are_fused_and_match():
    net = _net(seed=11)
    fused, _ = inference_copy(net, fold=True, channels_last=True, fuse_relu=True)
    slopes = {m.negative_slope for m in fused.modules() if isinstance(m, ConvReLU)}
    assert slopes == {None, 0.2}  # model10's Conv2d -> LeakyReLU(0.2) too
    sums = [m for m in fused.modules() if isinstance(m, ConvSum)]
    assert len(sums) == 3 * 3  # three skip connections in each of the three generators
    assert not any(isinstance(m, nn.LeakyReLU) for m in fused.modules())
    block = ConvReLU(nn.Conv2d(3, 4, 3, padding=1), 0.2)
    shortcut = ConvSum(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(2, 3, 6, 6)
    y = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        want_act = torch.nn.functional.leaky_relu(block.conv(x), 0.2)
        want_sum = y + shortcut.conv(x)
        torch.testing.assert_close(block(x), want_act)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xs, ys = x.to(memory_format=fmt), y.clone().to(memory_format=fmt)
            torch.testing.assert_close(shortcut.add_into(ys, xs), want_sum)
    x.requires_grad_(True)
    out = shortcut.add_into(y, x)  # under autograd: conv then a new sum, y untouched
    out.sum().backward()
    assert x.grad is not None and out.data_ptr() != y.data_ptr()
