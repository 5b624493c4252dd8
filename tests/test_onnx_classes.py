"""ONNX export with a trained classification head: the graphs output its logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from instacolor.models.network import InstColorNet
from instacolor.models.placement import placement_cells
from instacolor.runtime import TorchRuntime
from instacolor.runtime.export import MANIFEST_NAME, export_onnx
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.structures import NetworkInputs
from instacolor.weights import LoadedWeights

S, IMAGE = 64, (120, 160)


@pytest.fixture(scope="module")
def head_export(tmp_path_factory):
    torch.manual_seed(1)
    net = InstColorNet(8).eval()
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape) + 0.5)
    loaded = LoadedWeights(net=net, name="head-w8", sha256=None, trained=True, class_head=True)
    return net, export_onnx(loaded, tmp_path_factory.mktemp("head") / "onnx", working_size=S)


def _inputs(n: int, size: int, seed: int) -> NetworkInputs:
    gen = torch.Generator().manual_seed(seed)
    l_norm = torch.rand(1, 1, size, size, generator=gen) - 0.5
    rng = np.random.default_rng(seed)
    x0, y0 = rng.integers(0, 100, n), rng.integers(0, 70, n)
    boxes = np.stack([x0, y0, x0 + rng.integers(8, 60, n), y0 + rng.integers(8, 50, n)], 1)
    return NetworkInputs(
        light=(l_norm[0, 0] * 100 + 50).numpy(),
        l=l_norm.numpy(),
        image_size=IMAGE,
        crops=(torch.rand(n, 1, size, size, generator=gen) - 0.5).numpy() if n else None,
        placements=placement_cells(boxes, IMAGE, size) if n else None,
    )


@pytest.mark.parametrize("n", [0, 2])
def test_class_logits_match_torch(head_export, n):
    net, folder = head_export
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["class_head"] is True
    assert "logits" in manifest["graphs"]["full"]["outputs"]
    assert manifest["graphs"]["fusion"]["outputs"][-1] == "logits"
    inputs = _inputs(n, 2 * S if n else S, seed=n)  # another size: dynamic axes
    want = TorchRuntime(net, classify=True).run(inputs)
    got = OnnxRuntime(folder, threads=1).run(inputs)
    size = inputs.working_size
    assert got.class_logits.shape == want.class_logits.shape == (1, 529, size // 4, size // 4)
    assert np.abs(got.class_logits - want.class_logits).max() < 1e-4
    assert np.abs(got.ab - want.ab).max() < 1e-4 and len(got.weights) == (13 if n else 0)
    for a, b in zip(got.weights, want.weights):
        assert np.abs(a - b).max() < 1e-4
    # without a trained head nothing changes: no logits from either runtime
    assert TorchRuntime(net).run(inputs).class_logits is None
