"""Network inputs and the one runtime interface (torch side; onnxruntime: test_onnx_backend.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor.color import normalize_l
from instacolor.errors import InputError
from instacolor.models.inputs import prepare_inputs, squash
from instacolor.models.network import InstColorNet, instance_placements
from instacolor.runtime import Runtime, TorchRuntime, make_runtime
from instacolor.structures import Instances, NetworkInputs, SemanticMap
from instacolor.weights import load_weights

S = 32


def _light(h=48, w=80, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w)) * 100).astype(np.float32)


def test_prepare_inputs_cuts_crops_from_full_resolution_and_places_boxes():
    light = _light()
    inst = Instances.from_boxes([[8, 4, 40, 30], [50, 10, 80, 48]], image_size=light.shape)
    labels = np.zeros(light.shape, np.int64)
    labels[:, 40:] = 7
    inputs = prepare_inputs(light, inst, SemanticMap(labels), S)
    assert inputs.working_size == S and inputs.instance_count == 2
    assert inputs.image_size == (48, 80)
    # the crop is the full-resolution box squashed, not a cut of the squashed image
    want = normalize_l(squash(torch.from_numpy(light)[4:30, 8:40], S))[0].numpy()
    np.testing.assert_array_equal(inputs.crops[0], want)
    np.testing.assert_array_equal(inputs.l, normalize_l(torch.from_numpy(inputs.light))[None, None])
    # placements on the 32, 16, 8, 4 grids: [left, right, top, bottom, width, height]
    assert inputs.placements.shape == (4, 2, 6)
    # x: int(8/80*32) = 3, int(40/80*32) = 16; y: int(4/48*32) = 2, int(30/48*32) = 20
    assert inputs.placements[0, 0].tolist() == [3, 16, 2, 12, 13, 18]
    assert (inputs.placements[:, :, [0, 1, 4]].sum(-1) == [[S], [S // 2], [S // 4], [S // 8]]).all()
    assert set(np.unique(inputs.labels)) == {0, 7} and inputs.labels.shape == (1, S, S)
    assert (inputs.labels[0, :, S // 2 + 1 :] == 7).all()
    plain = prepare_inputs(light, None, None, S)
    assert plain.crops is None and plain.placements is None and plain.labels is None


def test_inconsistent_network_inputs_are_refused():
    light = np.zeros((S, S), np.float32)
    l_norm = np.zeros((1, 1, S, S), np.float32)
    with pytest.raises(InputError, match=r"expected light \(S, S\) and l \(1, 1, S, S\)"):
        NetworkInputs(light=light, l=np.zeros((1, 1, S, 2 * S), np.float32), image_size=(9, 9))
    with pytest.raises(InputError, match="with placements"):
        NetworkInputs(light, l_norm, (9, 9), crops=np.zeros((1, 1, S, S), np.float32))
    with pytest.raises(InputError, match=r"expected labels \(1, 32, 32\)"):
        NetworkInputs(light, l_norm, (9, 9), labels=np.zeros((S, S), np.int64))


def test_torch_runtime_runs_the_network_on_the_inputs():
    torch.manual_seed(0)
    net = InstColorNet(8).eval()
    runtime = TorchRuntime(net)
    assert isinstance(runtime, Runtime) and runtime.name == "torch" and runtime.with_instances
    light = _light(seed=1)
    boxes = np.array([[8, 4, 40, 30], [50, 10, 80, 48]])
    inputs = prepare_inputs(light, Instances.from_boxes(boxes, light.shape), None, S)
    out = runtime.run(inputs)
    with torch.no_grad():
        want = net.colorize(
            torch.from_numpy(inputs.l),
            crops=torch.from_numpy(inputs.crops),
            placements=instance_placements(boxes, light.shape, S),
        )
    np.testing.assert_array_equal(out.ab, want.ab.numpy())
    assert len(out.weights) == 13 and out.weights[0].shape == (3, S, S)
    np.testing.assert_allclose(out.weights[-1].sum(0), 1.0, atol=1e-5)
    full = runtime.run(prepare_inputs(light, None, None, S))
    assert full.weights == () and full.ab.dtype == np.float32


def test_make_runtime_names_the_backends():
    loaded = load_weights("default")
    runtime = make_runtime(loaded, "torch")
    assert isinstance(runtime, TorchRuntime) and runtime.net is loaded.net
    with pytest.raises(InputError, match=r"backend: expected one of \('torch', 'onnxruntime'\)"):
        make_runtime(loaded, "tensorrt")
