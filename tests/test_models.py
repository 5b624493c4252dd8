"""Networks: reference layout, fusion invariants, batched == looped fusion, semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor.labels import NUM_LABELS
from instacolor.models.fusion import (
    FusionGenerator,
    box_placements,
    box_union,
)
from instacolor.models.generator import FUSION_POINTS, FUSION_SCALE_DIVISOR, ColorGenerator
from instacolor.models.network import InstColorNet, instance_placements, network_input
from instacolor.models.semantic import SemanticConditioning
from tests.reference_fusion import reference_forward

SIZE = 64  # working size used in these tests (fusion grids 64, 32, 16, 8)


def _randomize_bn(module: torch.nn.Module, seed: int) -> None:
    """Give BatchNorm layers non-trivial statistics so eval mode is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _net(width=8, seed=0, dtype=torch.float32) -> InstColorNet:
    torch.manual_seed(seed)
    net = InstColorNet(width)
    _randomize_bn(net, seed)
    # Weight-branch biases > 0 so the ReLU logits are not all zero (random init would
    # leave many of them dead, which would make the invariants trivially true).
    for point in FUSION_POINTS:
        layer = net.fusion.weight_layer_at(point)
        torch.nn.init.uniform_(layer.simple_instance_conv[4].bias, 0.5, 2.0)
        torch.nn.init.uniform_(layer.simple_bg_conv[4].bias, 0.5, 2.0)
    return net.eval().to(dtype)


def _inputs(n, seed=0, dtype=torch.float32, image_size=(48, 80)):
    g = torch.Generator().manual_seed(seed)
    full = torch.rand(1, 1, SIZE, SIZE, generator=g, dtype=dtype) - 0.5
    crops = torch.rand(n, 1, SIZE, SIZE, generator=g, dtype=dtype) - 0.5
    rng = np.random.default_rng(seed)
    h, w = image_size
    x0 = rng.integers(0, w - 2, n)
    y0 = rng.integers(0, h - 2, n)
    x1 = np.minimum(w, x0 + 1 + rng.integers(0, w, n))
    y1 = np.minimum(h, y0 + 1 + rng.integers(0, h, n))
    boxes = np.stack([x0, y0, x1, y1], 1)
    return full, crops, boxes


def _reference_keys() -> set[str]:
    """State-dict keys of the published generator, written out from its layer list."""
    keys = set()

    def conv(prefix):
        keys.update({f"{prefix}.weight", f"{prefix}.bias"})

    def bn(prefix):
        keys.update(
            f"{prefix}.{k}"
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        )

    for block, convs, norm in (
        [("model1", (0, 2), 4), ("model2", (0, 2), 4)]
        + [(f"model{i}", (0, 2, 4), 6) for i in range(3, 8)]
        + [("model8", (1, 3), 5), ("model9", (1,), 3)]
    ):
        for i in convs:
            conv(f"{block}.{i}")
        bn(f"{block}.{norm}")
    for name in (
        "model8up.0",
        "model3short8.0",
        "model9up.0",
        "model2short9.0",
        "model10up.0",
        "model1short10.0",
        "model10.1",
        "model_class.0",
        "model_out.0",
    ):
        conv(name)
    return keys


def test_generator_matches_published_layout():
    net = ColorGenerator(64)
    state = net.state_dict()
    assert set(state) == _reference_keys()
    assert sum(p.numel() for p in net.parameters()) == 34_187_027
    assert state["model1.0.weight"].shape == (64, 4, 3, 3)
    assert state["model5.0.weight"].shape == (512, 512, 3, 3)
    assert net.model5[0].dilation == (2, 2) and net.model7[0].dilation == (1, 1)
    assert state["model8up.0.weight"].shape == (512, 256, 4, 4)
    assert state["model_class.0.weight"].shape == (529, 256, 1, 1)
    assert state["model_out.0.weight"].shape == (2, 128, 1, 1)


def test_fusion_generator_has_all_weight_layers():
    keys = set(FusionGenerator(8).state_dict())
    for layer in (
        "weight_layer",
        "weight_layer2",
        "weight_layer7",
        "weight_layer8_1",
        "weight_layer9_2",
        "weight_layer10_2",
        "weight_layerout",
    ):
        for branch in ("simple_instance_conv", "simple_bg_conv"):
            for i in (0, 2, 4):
                assert f"{layer}.{branch}.{i}.weight" in keys


def test_generator_features_have_documented_shapes():
    out = ColorGenerator(8).eval()(torch.zeros(2, 4, SIZE, SIZE))
    assert out.ab.shape == (2, 2, SIZE, SIZE)
    assert out.ab.abs().max() <= 1
    for name, feat in zip(FUSION_POINTS, out.features):
        assert feat.shape[-1] == SIZE // FUSION_SCALE_DIVISOR[name]


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((0, 0, 80, 48), 64, (0, 0, 0, 0, 64, 64)),
        ((10, 12, 30, 40), 32, (4, 20, 8, 6, 8, 18)),
        ((75, 0, 76, 48), 8, (6, 1, 0, 0, 1, 8)),  # collapsed near the edge: grows inwards
        ((0, 0, 1, 1), 8, (0, 7, 0, 7, 1, 1)),  # collapsed at the origin: grows outwards
    ],
)
def test_box_placement_follows_reference_rules(box, size, expected):
    placed = box_placements(np.array([box]), (48, 80), size)[0]
    assert tuple(placed.tolist()) == expected
    left, right, top, bottom, w, h = placed
    assert left + w + right == size and top + h + bottom == size


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_batched_fusion_equals_one_crop_at_a_time(dtype, tol):
    net = _net(dtype=dtype, seed=3)
    full, crops, boxes = _inputs(5, seed=3, dtype=dtype)
    placements = instance_placements(boxes, (48, 80), SIZE, dtype=dtype)
    with torch.no_grad():
        out = net.colorize(full, crops=crops, placements=placements)
        infos = {d: box_placements(boxes, (48, 80), SIZE // d) for d in (1, 2, 4, 8)}
        ref_ab, ref_w = reference_forward(net.instance, net.fusion, full, crops, infos)
    assert (out.ab - ref_ab).abs().max().item() < tol
    for w, rw in zip(out.weights, ref_w):
        assert (w - rw).abs().max().item() < tol


def test_batch_size_of_instance_network_does_not_change_result():
    net = _net(seed=4)
    full, crops, boxes = _inputs(7, seed=4)
    placements = instance_placements(boxes, (48, 80), SIZE)
    with torch.no_grad():
        net.instance_batch = 7
        one = net.colorize(full, crops=crops, placements=placements).ab
        net.instance_batch = 2
        chunked = net.colorize(full, crops=crops, placements=placements).ab
    torch.testing.assert_close(one, chunked, atol=1e-6, rtol=0)


def test_fusion_weights_sum_to_one_and_background_owns_outside_of_boxes():
    net = _net(seed=5)
    full, crops, boxes = _inputs(4, seed=5)
    placements = instance_placements(boxes, (48, 80), SIZE)
    with torch.no_grad():
        out = net.colorize(full, crops=crops, placements=placements)
    for name, w in zip(FUSION_POINTS, out.weights):
        size = SIZE // FUSION_SCALE_DIVISOR[name]
        assert w.shape == (5, size, size)
        torch.testing.assert_close(w.sum(0), torch.ones(size, size), atol=1e-6, rtol=0)
        outside = box_union(box_placements(boxes, (48, 80), size), size) == 0
        assert outside.any()
        assert torch.all(w[-1][outside] > 1 - 1e-6)
        # the quirk: inside the boxes instances share weight (not all background)
        assert w[:-1][:, ~outside].sum() > 0


def test_no_instances_runs_the_full_image_network_exactly():
    net = _net(seed=6)
    full, _, _ = _inputs(0, seed=6)
    with torch.no_grad():
        direct = net.full(network_input(full, net.mask_value)).ab
        for crops in (None, torch.zeros(0, 1, SIZE, SIZE)):
            out = net.colorize(full, crops=crops)
            assert torch.equal(out.ab, direct) and out.weights == ()


def test_full_frame_instance_with_suppressed_background_reproduces_instance_network():
    net = _net(seed=7)
    # same backbone in the fusion net and the instance net; instance logits dominate
    net.fusion.load_state_dict(net.instance.state_dict(), strict=False)
    for point in FUSION_POINTS:
        torch.nn.init.constant_(net.fusion.weight_layer_at(point).simple_instance_conv[4].bias, 1e4)
    image = torch.rand(1, 1, SIZE, SIZE) - 0.5
    boxes = np.array([[0, 0, 80, 48]])
    placements = instance_placements(boxes, (48, 80), SIZE)
    with torch.no_grad():
        fused = net.colorize(image, crops=image.clone(), placements=placements)
        alone = net.instance(network_input(image, net.mask_value)).ab
    torch.testing.assert_close(fused.ab, alone, atol=1e-5, rtol=0)
    assert fused.weights[-1][0].min() > 1 - 1e-6


def test_untrained_semantic_conditioning_is_the_identity():
    net = _net(seed=8)
    full, crops, boxes = _inputs(3, seed=8)
    placements = instance_placements(boxes, (48, 80), SIZE)
    labels = torch.randint(0, NUM_LABELS, (1, SIZE, SIZE))
    with torch.no_grad():
        for kw in ({}, {"crops": crops, "placements": placements}):
            plain = net.colorize(full, **kw).ab
            conditioned = net.colorize(full, labels=labels, **kw).ab
            assert torch.equal(plain, conditioned)


def test_trained_semantic_conditioning_changes_output_per_class():
    net = _net(seed=9)
    torch.manual_seed(9)
    for mod in net.semantic.modulations.values():
        torch.nn.init.normal_(mod.gamma.weight, std=0.05)
        torch.nn.init.normal_(mod.beta.weight, std=0.05)
    full, _, _ = _inputs(0, seed=9)
    sky = torch.full((1, SIZE, SIZE), 120)
    person = torch.zeros((1, SIZE, SIZE), dtype=torch.long)
    with torch.no_grad():
        a = net.colorize(full, labels=sky).ab
        b = net.colorize(full, labels=person).ab
    assert (a - b).abs().max() > 1e-4


def test_semantic_module_gradients_flow_to_zero_initialised_layers():
    block = SemanticConditioning({"conv10_2": 4})
    feat = torch.randn(1, 4, 8, 8)
    labels = torch.randint(0, NUM_LABELS, (1, 8, 8))
    block("conv10_2", feat, labels).square().sum().backward()
    mod = block.modulations["conv10_2"]
    assert mod.gamma.weight.grad.abs().sum() > 0 and mod.beta.bias.grad.abs().sum() > 0
