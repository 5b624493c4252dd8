"""LPIPS: parity with the lpips package on shared random weights, and every missing file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor.errors import InputError, WeightsError
from instacolor.perceptual import (
    LINEAR_WEIGHTS,
    Lpips,
    alexnet_features,
    alexnet_weights_path,
    lpips_unavailable,
)

lpips = pytest.importorskip("lpips")


@pytest.fixture
def weight_files(tmp_path):
    """A random torchvision AlexNet state dict and random non-negative linear layers."""
    torch.manual_seed(3)
    trunk = alexnet_features()
    alex = tmp_path / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, alex)
    channels = (64, 192, 384, 256, 256)
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(channels)}
    linear = tmp_path / "alex_lin.pth"
    torch.save(lins, linear)
    return alex, linear


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path / "cache"))
    return home


def _images(seed: int, shape=(64, 48, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.normal(0, 25, shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    return a, b


def _reference(alex, linear, a, b) -> float:
    """The lpips package's LPIPS with the same weights loaded into its modules."""
    model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    features = torch.load(alex)
    slices = {1: range(0, 2), 2: range(2, 5), 3: range(5, 8), 4: range(8, 10), 5: range(10, 12)}
    state = {}
    for s, indices in slices.items():
        for i in indices:
            for name in ("weight", "bias"):
                key = f"features.{i}.{name}"
                if key in features:
                    state[f"net.slice{s}.{i}.{name}"] = features[key]
    state.update(torch.load(linear))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # its constants are buffers; ``lins.k`` are the same modules as ``link``
    assert not unexpected and all(k.startswith(("scaling_layer", "lins.")) for k in missing)
    to = lambda im: lpips.im2tensor(im)  # noqa: E731 - [-1, 1], (1, 3, H, W)
    with torch.no_grad():
        return float(model(to(a), to(b)))


@pytest.mark.parametrize("seed", [0, 1])
def test_lpips_matches_the_lpips_package_on_the_same_weights(weight_files, seed):
    alex, linear = weight_files
    a, b = _images(seed)
    metric = Lpips(alexnet=alex, linear=linear)
    ours = metric(a, b)
    assert ours == pytest.approx(_reference(alex, linear, a, b), rel=1e-5, abs=1e-7)
    assert ours > 0
    assert metric(a, a) == 0.0
    assert metric(b, a) == pytest.approx(ours, rel=1e-6)


def test_more_distortion_is_farther(weight_files):
    alex, linear = weight_files
    metric = Lpips(alexnet=alex, linear=linear)
    rng = np.random.default_rng(5)
    clean = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    noise = rng.normal(0, 1, clean.shape)
    dists = [
        metric(np.clip(clean + s * noise, 0, 255).astype(np.uint8), clean) for s in (5, 20, 60)
    ]
    assert dists[0] < dists[1] < dists[2]


def test_missing_official_alexnet_offline_names_the_path_and_url(torch_home, weight_files):
    _, linear = weight_files
    assert lpips_unavailable() is not None and str(alexnet_weights_path()) in lpips_unavailable()
    with pytest.raises(WeightsError) as err:
        Lpips(linear=linear, download=False)
    assert str(alexnet_weights_path()) in str(err.value)
    assert "download.pytorch.org" in str(err.value)
    assert not alexnet_weights_path().exists()  # nothing half-written


def test_official_alexnet_with_the_wrong_hash_is_refused_and_kept(torch_home, weight_files):
    alex, linear = weight_files
    path = alexnet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(alex.read_bytes())
    assert lpips_unavailable() is None  # present: evaluate.py will try, and say why it fails
    with pytest.raises(WeightsError, match="7be5be79"):
        Lpips(linear=linear, download=False)
    assert path.read_bytes() == alex.read_bytes()


def test_the_packaged_linear_layers_are_the_official_ones(weight_files):
    alex, _ = weight_files
    metric = Lpips(alexnet=alex, download=False)  # linear: the lpips package's, sha256-checked
    assert [tuple(w.shape) for w in metric.linear] == [
        (1, c, 1, 1) for c in (64, 192, 384, 256, 256)
    ]
    assert min(float(w.min()) for w in metric.linear) >= 0
    assert LINEAR_WEIGHTS.url.endswith("v0.1/alex.pth")


def test_wrong_files_raise_weights_errors(weight_files, tmp_path):
    alex, linear = weight_files
    bad_linear = tmp_path / "bad.pth"
    torch.save({"lin0.model.1.weight": torch.rand(1, 3, 1, 1)}, bad_linear)
    with pytest.raises(WeightsError, match="linear layers"):
        Lpips(alexnet=alex, linear=bad_linear)
    with pytest.raises(WeightsError, match="missing keys"):
        Lpips(alexnet=linear, linear=linear)  # not an AlexNet
    with pytest.raises(WeightsError, match="not found"):
        Lpips(alexnet=tmp_path / "none.pth", linear=linear)


@pytest.mark.parametrize(
    "pred",
    [
        np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        np.zeros((8, 8, 3), np.uint8),
    ],
)
def test_bad_images_raise_input_errors(weight_files, pred):
    alex, linear = weight_files
    metric = Lpips(alexnet=alex, linear=linear)
    with pytest.raises(InputError, match="uint8"):
        metric(pred, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="same shape"):
        metric(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 32, 3), np.uint8))
