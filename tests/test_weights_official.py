"""Tests of loading official PyTorch checkpoints: InstColorization folders (and how broken
ones fail) and siggraph17 files.

Everything runs against real modules and real files in ``tmp_path``; nothing is fetched from
the internet. The width-64 networks (34.2M parameters per generator) are built and saved
once per module.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from instacolor.errors import InstacolorError, WeightsError
from instacolor.models.fusion import FusionGenerator
from instacolor.models.generator import ColorGenerator
from instacolor.models.network import InstColorNet
from instacolor.weights import get_entry, load_weights, sha256_file
from instacolor.weights.formats import load_official_folder
from tests.weight_files import assert_state_equal, randomize_buffers, serve_siggraph8

# The reference file -> sub-network mapping, written out here so that a library-side
# swap (e.g. G <-> GComp) is caught: both are ColorGenerators with different weights.
FILE_TO_PART = {
    "latest_net_GComp.pth": "full",
    "latest_net_G.pth": "instance",
    "latest_net_GF.pth": "fusion",
}
GENERATOR_PARAMS_W64 = 34_187_027


# --------------------------------------------------------------------------- helpers


def _official_nets(width: int, seed: int) -> dict[str, torch.nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = {
            "latest_net_GComp.pth": ColorGenerator(width),
            "latest_net_G.pth": ColorGenerator(width),
            "latest_net_GF.pth": FusionGenerator(width),
        }
    for i, net in enumerate(nets.values()):
        randomize_buffers(net, seed + i)
    return nets


def _write_official(folder: Path, states: dict[str, dict], prefix: str = "") -> Path:
    folder.mkdir(parents=True)
    for name, state in states.items():
        torch.save({prefix + k: v for k, v in state.items()}, folder / name)
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def _load_net(loader: str, folder: Path) -> InstColorNet:
    if loader == "load_official_folder":
        return load_official_folder(folder)
    loaded = load_weights(folder)
    assert loaded.trained is True
    assert loaded.name == str(folder)
    assert loaded.sha256 == sha256_file(folder / "latest_net_GF.pth")
    return loaded.net


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def official64(tmp_path_factory):
    """Width-64 reference-format checkpoint folders: plain and ``module.``-prefixed."""
    nets = _official_nets(64, seed=64)
    states = {name: net.state_dict() for name, net in nets.items()}
    root = tmp_path_factory.mktemp("official64")
    return SimpleNamespace(
        nets=nets,
        states=states,
        plain=_write_official(root / "plain", states),
        module=_write_official(root / "module", states, prefix="module."),
    )


@pytest.fixture(scope="module")
def official8(tmp_path_factory):
    """A width-8 checkpoint folder in the reference format (cheap to copy and break)."""
    nets = _official_nets(8, seed=8)
    states = {name: net.state_dict() for name, net in nets.items()}
    folder = _write_official(tmp_path_factory.mktemp("official8") / "ckpt", states)
    return SimpleNamespace(states=states, folder=folder)


@pytest.fixture
def served_siggraph8(http_root):
    """A width-8 siggraph17-format file on the local server, with its digest."""
    return serve_siggraph8(http_root)


# --------------------------------------------------------------------------- 1. official folders


def test_generator_param_count_at_width_64(official64):
    generator = official64.nets["latest_net_GComp.pth"]
    assert isinstance(generator, ColorGenerator) and generator.width == 64
    assert sum(p.numel() for p in generator.parameters()) == GENERATOR_PARAMS_W64


def test_fusion_state_dict_uses_reference_key_names(official64):
    gf = official64.states["latest_net_GF.pth"]
    assert gf["weight_layer.simple_instance_conv.0.weight"].shape == (16, 64, 3, 3)
    assert gf["weight_layer10_2.simple_bg_conv.4.bias"].shape == (1,)
    assert gf["weight_layerout.simple_instance_conv.0.weight"].shape == (16, 2, 3, 3)
    assert gf["weight_layerout.simple_bg_conv.4.weight"].shape == (1, 16, 3, 3)
    assert sum(k.startswith("weight_layerout.") for k in gf) == 12
    assert gf["model10.1.weight"].shape == (128, 128, 3, 3)
    assert gf["model1.4.running_mean"].shape == (64,)
    assert gf["model1.4.num_batches_tracked"].dtype == torch.int64
    # the fusion network is a generator plus weight layers: every generator key is there
    generator_keys = set(official64.states["latest_net_GComp.pth"])
    assert generator_keys < set(gf)
    assert all(k.startswith("weight_layer") for k in set(gf) - generator_keys)


def test_module_prefixed_files_really_are_prefixed(official64):
    state = torch.load(official64.module / "latest_net_G.pth", weights_only=True)
    assert state and all(k.startswith("module.") for k in state)


@pytest.mark.parametrize("loader", ["load_official_folder", "load_weights"])
@pytest.mark.parametrize("layout", ["plain", "module"])
def test_official_folder_loads_every_tensor(official64, layout, loader):
    net = _load_net(loader, getattr(official64, layout))
    assert isinstance(net, InstColorNet)
    assert net.width == 64 and net.with_instances is True and net.mask_value == -0.5
    assert not net.training
    for name, part in FILE_TO_PART.items():
        assert_state_equal(getattr(net, part).state_dict(), official64.states[name])


def test_registered_official_entry_loads_from_the_cache(official64, cache):
    entry = get_entry("instcolorization-coco-ffs")
    folder = cache / entry.name
    folder.mkdir(parents=True)
    for name in FILE_TO_PART:
        (folder / name).symlink_to(official64.plain / name)
    loaded = load_weights(entry.name)
    assert loaded.name == entry.name and loaded.trained is True
    assert loaded.sha256 == sha256_file(official64.plain / "latest_net_GF.pth")
    for name, part in FILE_TO_PART.items():
        assert_state_equal(getattr(loaded.net, part).state_dict(), official64.states[name])


# --------------------------------------------------------------------------- 2. errors


def _edit_state(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    result = edit(state)
    torch.save(state if result is None else result, path)


def _drop(key: str):
    def edit(state: dict) -> None:
        del state[key]

    return edit


def _put(key: str, value: torch.Tensor):
    def edit(state: dict) -> None:
        state[key] = value

    return edit


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(4096))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN_FOLDERS = {
    "random-bytes-GF": (
        "latest_net_GF.pth",
        _random_bytes,
        ["latest_net_GF.pth", "could not be read"],
    ),
    "truncated-GComp": (
        "latest_net_GComp.pth",
        _truncate,
        ["latest_net_GComp.pth", "could not be read"],
    ),
    "extra-key-GComp": (
        "latest_net_GComp.pth",
        lambda p: _edit_state(p, _put("model11.0.weight", torch.zeros(3))),
        ["latest_net_GComp.pth", "unexpected", "model11.0.weight"],
    ),
    "missing-key-G": (
        "latest_net_G.pth",
        lambda p: _edit_state(p, _drop("model10.1.bias")),
        ["latest_net_G.pth", "missing", "model10.1.bias"],
    ),
    "missing-weight-layer-GF": (
        "latest_net_GF.pth",
        lambda p: _edit_state(p, _drop("weight_layer5.simple_bg_conv.2.weight")),
        ["latest_net_GF.pth", "missing", "weight_layer5.simple_bg_conv.2.weight"],
    ),
    "wrong-shape-GF": (
        "latest_net_GF.pth",
        lambda p: _edit_state(p, _put("model_out.0.weight", torch.zeros(2, 16, 3, 3))),
        ["latest_net_GF.pth", "shape", "model_out.0.weight", "(2, 16, 3, 3)"],
    ),
    "list-of-tensors-G": (
        "latest_net_G.pth",
        lambda p: _edit_state(p, lambda s: list(s.values())),
        ["latest_net_G.pth", "expected a state dict", "list"],
    ),
    "fusion-file-as-G": (
        "latest_net_G.pth",
        lambda p: shutil.copyfile(p.with_name("latest_net_GF.pth"), p),
        ["latest_net_G.pth", "unexpected", "weight_layer"],
    ),
    "no-conv1-GComp": (
        "latest_net_GComp.pth",
        lambda p: _edit_state(p, _drop("model1.0.weight")),
        ["model1.0.weight"],
    ),
}


@pytest.mark.parametrize("loader", ["load_official_folder", "load_weights"])
@pytest.mark.parametrize("case", sorted(BROKEN_FOLDERS))
def test_broken_folder_raises_and_leaves_files_alone(official8, tmp_path, case, loader):
    folder = shutil.copytree(official8.folder, tmp_path / "ckpt")
    name, breaker, expected = BROKEN_FOLDERS[case]
    breaker(folder / name)
    before = _snapshot(folder)
    with pytest.raises(WeightsError) as info:
        _load_net(loader, folder)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, InstacolorError)
    message = str(info.value)
    for text in expected:
        assert text in message, (text, message)
    assert _snapshot(folder) == before


@pytest.mark.parametrize("loader", ["load_official_folder", "load_weights"])
@pytest.mark.parametrize("missing", sorted(FILE_TO_PART))
def test_folder_missing_a_file_names_it(official8, tmp_path, missing, loader):
    folder = shutil.copytree(official8.folder, tmp_path / "ckpt")
    (folder / missing).unlink()
    before = _snapshot(folder)
    with pytest.raises(WeightsError) as info:
        _load_net(loader, folder)
    # the message lists the expected files first, then what is missing
    named = str(info.value).rsplit("missing", 1)[1]
    assert missing in named
    for other in set(FILE_TO_PART) - {missing}:
        assert other not in named
    assert _snapshot(folder) == before


def test_mixed_widths_raise(official64, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("latest_net_G.pth", "latest_net_GF.pth"):
        (folder / name).symlink_to(official64.plain / name)
    torch.save(ColorGenerator(32).state_dict(), folder / "latest_net_GComp.pth")
    before = _snapshot(folder)
    with pytest.raises(WeightsError, match="different widths") as info:
        load_official_folder(folder)
    assert "32" in str(info.value) and "64" in str(info.value)
    with pytest.raises(WeightsError, match="different widths"):
        load_weights(folder)
    assert _snapshot(folder) == before


# --------------------------------------------------------------------------- 3. siggraph17


def test_siggraph17_file_loads_as_full_only_network(official64, tmp_path):
    state = official64.states["latest_net_GComp.pth"]
    path = tmp_path / "siggraph17-0123abcd.pth"
    torch.save(state, path)
    loaded = load_weights(path)
    net = loaded.net
    assert net.with_instances is False and net.instance is None and net.fusion is None
    assert net.mask_value == 0.0 and net.width == 64 and not net.training
    assert_state_equal(net.full.state_dict(), state)
    assert loaded.sha256 == sha256_file(path) and loaded.name == str(path)
    assert loaded.trained is True


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "pt-suffix"])
def test_siggraph17_variants_load(served_siggraph8, tmp_path, wrap):
    state = served_siggraph8.state
    path = tmp_path / ("sig.pt" if wrap == "pt-suffix" else "sig.pth")
    payload = {
        "module": {f"module.{k}": v for k, v in state.items()},
        "state_dict": {"state_dict": state, "epoch": 3},
    }.get(wrap, state)
    torch.save(payload, path)
    net = load_weights(path).net
    assert net.with_instances is False and net.mask_value == 0.0 and net.width == 8
    assert_state_equal(net.full.state_dict(), state)


def test_fusion_file_is_not_a_siggraph17_generator(official8, tmp_path):
    path = tmp_path / "siggraph17-fake.pth"
    shutil.copyfile(official8.folder / "latest_net_GF.pth", path)
    with pytest.raises(WeightsError, match="unexpected") as info:
        load_weights(path)
    assert "weight_layer" in str(info.value)


def test_missing_pth_path_is_named(tmp_path):
    path = tmp_path / "nowhere" / "siggraph17-0000.pth"
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    assert str(path) in str(info.value)
