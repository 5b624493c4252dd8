"""Tests of instacolor's safetensors weights: round trips, stored dtypes, metadata checks
(working size included) and corrupt files, all on real files in ``tmp_path``."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from instacolor.errors import WeightsError
from instacolor.models.network import InstColorNet
from instacolor.weights import load_safetensors, load_weights, save_safetensors, sha256_file
from tests.weight_files import assert_state_equal, randomize_buffers


def _randomize_all(module: torch.nn.Module, seed: int) -> None:
    """Random values in every floating tensor (the semantic block starts at zeros)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
    randomize_buffers(module, seed + 1)


def _small_net(with_instances: bool = True, mask_value: float = -0.5, seed: int = 5):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InstColorNet(8, with_instances=with_instances, mask_value=mask_value)
    _randomize_all(net, seed)
    return net


@pytest.fixture(scope="module")
def small_net():
    return _small_net()


@pytest.fixture(scope="module")
def small_file(small_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("st") / "w8.safetensors"
    save_safetensors(small_net, path, name="w8", dtype=torch.float16)
    return path


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_safetensors_round_trip(small_net, tmp_path, dtype):
    path = save_safetensors(small_net, tmp_path / "sub" / "w.safetensors", name="w8", dtype=dtype)
    assert path == tmp_path / "sub" / "w.safetensors"
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no .tmp left
    assert path.stat().st_mode & 0o777 == 0o644  # readable by all: weights get shipped
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        stored = {k: f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert meta["format"] == "instacolor" and meta["name"] == "w8"
    assert meta["architecture"] == "instcolor" and meta["width"] == "8"
    assert float(meta["mask_value"]) == -0.5
    params = {name for name, _ in small_net.named_parameters()}
    for key, stored_dtype in stored.items():
        if key.endswith("num_batches_tracked"):
            assert stored_dtype == torch.int64
        else:  # BatchNorm statistics stay float32 (fp16 rounding of them costs PSNR)
            assert stored_dtype == (dtype if key in params else torch.float32), key
    assert any(k.endswith("running_mean") for k in stored)

    net = load_safetensors(path)
    assert net.width == 8 and net.with_instances is True and net.mask_value == -0.5
    assert not net.training
    expected = {
        k: v.to(dtype).to(v.dtype) if k in params else v for k, v in small_net.state_dict().items()
    }
    assert_state_equal(net.state_dict(), expected)
    if dtype != torch.float32:  # the rounding really happened (the test can tell)
        original = small_net.state_dict()["full.model1.0.weight"]
        assert not torch.equal(net.state_dict()["full.model1.0.weight"], original)

    if dtype == torch.float16:
        loaded = load_weights(path)
        assert loaded.sha256 == sha256_file(path) and loaded.trained is True
        assert_state_equal(loaded.net.state_dict(), expected)


def test_safetensors_full_only_network_keeps_architecture(tmp_path):
    source = _small_net(with_instances=False, mask_value=0.0, seed=9)
    path = save_safetensors(source, tmp_path / "sig.safetensors", name="sig", dtype=torch.float32)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["architecture"] == "siggraph17"
    net = load_safetensors(path)
    assert net.with_instances is False and net.mask_value == 0.0
    assert_state_equal(net.state_dict(), source.state_dict())


def test_safetensors_keeps_a_custom_mask_value(tmp_path):
    source = _small_net(mask_value=-0.25, seed=11)
    path = save_safetensors(source, tmp_path / "m.safetensors", name="m", extra={"note": "x"})
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["note"] == "x"
    assert load_safetensors(path).mask_value == -0.25


def _rewrite_metadata(source: Path, target: Path, **changes) -> Path:
    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_file(load_file(source), target, metadata=meta)
    return target


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"width": "16"}, ["width 16", "shape"]),
        ({"width": "abc"}, ["corrupt"]),
        ({"width": None}, ["corrupt"]),
        ({"format": "not-instacolor"}, ["format", "not-instacolor"]),
        ({"format": None}, ["format", "None"]),
        ({"architecture": "resnet"}, ["architecture", "resnet"]),
        ({"architecture": "siggraph17"}, ["unexpected", "fusion."]),
    ],
    ids=["width16", "width-abc", "no-width", "format", "no-format", "arch", "arch-siggraph"],
)
def test_safetensors_metadata_is_checked(small_file, tmp_path, changes, expected):
    path = _rewrite_metadata(small_file, tmp_path / "edited.safetensors", **changes)
    with pytest.raises(WeightsError) as info:
        load_safetensors(path)
    message = str(info.value)
    assert str(path) in message
    for text in expected:
        assert text in message, (text, message)


def test_safetensors_without_metadata_is_rejected(small_file, tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file(load_file(small_file), path)
    with pytest.raises(WeightsError, match="format"):
        load_safetensors(path)


@pytest.mark.parametrize("cut", ["middle", "header", "tiny", "empty", "random"])
def test_corrupt_safetensors_raise(small_file, tmp_path, cut):
    data = small_file.read_bytes()
    body = {
        "middle": data[: len(data) // 2],
        "header": data[:40],
        "tiny": data[:5],
        "empty": b"",
        "random": random.Random(1).randbytes(2048),
    }[cut]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(body)
    with pytest.raises(WeightsError) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)
    with pytest.raises(WeightsError):
        load_weights(path)


@pytest.mark.parametrize("header", [b"[1]", b'{"__metadata__": ["a"]}'], ids=["list", "meta"])
def test_malformed_safetensors_header_is_a_weights_error(tmp_path, header):
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(WeightsError):
        load_safetensors(path)


def test_missing_safetensors_path_is_named(tmp_path):
    path = tmp_path / "absent" / "weights.safetensors"
    for load in (load_safetensors, load_weights):
        with pytest.raises(WeightsError) as info:
            load(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize(("stored", "expected"), [("64", 64), (None, 256)])
def test_safetensors_working_size_comes_from_metadata(small_file, tmp_path, stored, expected):
    path = _rewrite_metadata(small_file, tmp_path / "w.safetensors", working_size=stored)
    assert load_weights(path).working_size == expected


@pytest.mark.parametrize("stored", ["100", "16", "abc", ""])
def test_bad_working_size_metadata_is_refused(small_file, tmp_path, stored):
    path = _rewrite_metadata(small_file, tmp_path / "w.safetensors", working_size=stored)
    before = path.read_bytes()
    with pytest.raises(WeightsError, match=r"working_size: expected a multiple of 8") as info:
        load_weights(path)
    assert str(path) in str(info.value) and repr(stored) in str(info.value)
    assert path.read_bytes() == before
