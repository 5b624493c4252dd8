"""The onnxruntime backend against torch: the same NetworkInputs through both runtimes,
Colorizer / colorize / the CLI with backend='onnxruntime' (hint channels too), and how
the backend's export is cached and a bad or missing backend refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from instacolor import Colorizer
from instacolor.errors import InputError
from instacolor.runtime import TorchRuntime
from instacolor.runtime.export import MANIFEST_NAME, export_cached, export_onnx
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.structures import NetworkInputs
from instacolor.weights import load_weights, sha256_file
from tests.onnx_exports import (
    IMAGE,
    S,
    cache_at,
    export_random_net,
    random_boxes,
    random_inputs,
    random_net,
)


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    """A random width-8 network and its export."""
    return export_random_net(tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    loaded = load_weights("default")
    return loaded.net, export_onnx(
        loaded, tmp_path_factory.mktemp("shipped") / "onnx", working_size=S
    )


@pytest.mark.parametrize("n", [0, 1, 8])
@pytest.mark.parametrize("semantic", [False, True])
@pytest.mark.parametrize("which", ["random", "shipped"])
def test_onnxruntime_matches_torch(request, which, n, semantic):
    """The same NetworkInputs through both runtimes: ab and weight maps within 1e-4."""
    net, folder = request.getfixturevalue(f"{which}_export")
    ort_runtime = OnnxRuntime(folder, threads=1)
    size = S if n != 1 else 2 * S  # another size than the export's example: dynamic axes
    inputs = random_inputs(size, n, seed=n, labels=semantic)
    expected = TorchRuntime(net).run(inputs)
    out = ort_runtime.run(inputs)
    assert out.ab.shape == expected.ab.shape == (1, 2, size, size)
    assert np.abs(out.ab - expected.ab).max() < 1e-4
    assert len(out.weights) == len(expected.weights) == (13 if n else 0)
    for got, want in zip(out.weights, expected.weights):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    if semantic and which == "random":  # the labels really reach the graph
        plain = ort_runtime.run(replace(inputs, labels=None))
        assert np.abs(plain.ab - out.ab).max() > 1e-3


def test_official_width64_folder_exports_and_matches(tmp_path):
    net = random_net(64, seed=3)
    folder = tmp_path / "official"
    folder.mkdir()
    for file, part in (
        ("latest_net_GComp.pth", "full"),
        ("latest_net_G.pth", "instance"),
        ("latest_net_GF.pth", "fusion"),
    ):
        torch.save(getattr(net, part).state_dict(), folder / file)
    loaded = load_weights(folder)
    out = export_onnx(loaded, tmp_path / "onnx", working_size=32)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    # official weights have no semantic block: labels change nothing, no semantic graphs
    assert manifest["semantic"] is False and manifest["width"] == 64
    assert manifest["weights_sha256"] == sha256_file(folder / "latest_net_GF.pth")
    inputs = replace(random_inputs(32, 2, seed=5), labels=np.zeros((1, 32, 32), np.int64))
    expected = TorchRuntime(loaded.net).run(replace(inputs, labels=None))
    got = OnnxRuntime(out, threads=2).run(inputs)
    assert np.abs(got.ab - expected.ab).max() < 1e-4


@pytest.fixture(scope="module")
def ort_cache(tmp_path_factory):
    """The weights cache of this module (exports are cached there)."""
    with cache_at(tmp_path_factory.mktemp("cache")) as root:
        yield root


@pytest.fixture(scope="module")
def backends(ort_cache):
    return Colorizer(working_size=S), Colorizer(working_size=S, backend="onnxruntime")


@pytest.mark.parametrize("n", [0, 1, 8])
def test_colorizer_backends_agree(backends, n):
    torch_c, ort_c = backends
    assert "backend='onnxruntime'" in repr(ort_c)
    image = (np.random.default_rng(n).random(IMAGE) * 255).astype(np.uint8)
    boxes = random_boxes(n, seed=10 + n) if n else None
    a = torch_c.colorize_full(image, instances=boxes)
    b = ort_c.colorize_full(image, instances=boxes)
    assert np.abs(a.ab - b.ab).max() < 1e-4  # Lab units
    assert np.abs(a.image.astype(int) - b.image).max() <= 1
    assert a.weight_maps.keys() == b.weight_maps.keys()
    for name in a.weight_maps:
        assert np.abs(a.weight_maps[name] - b.weight_maps[name]).max() < 1e-4
    assert b.model == a.model and b.weights_sha256 == a.weights_sha256


def test_export_is_cached_per_weights(backends, ort_cache):
    first = backends[1].runtime.folder  # exported when the colorizer was built
    assert first.parent == ort_cache / "onnx"
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert export_cached(load_weights("default")) == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps


def test_bad_backend_is_an_input_error():
    with pytest.raises(InputError, match=r"backend: expected one of \('torch', 'onnxruntime'\)"):
        Colorizer(backend="tensorrt")


@pytest.mark.slow
def test_missing_onnxruntime_is_a_clear_error(tmp_path):
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from instacolor import Colorizer\n"
        "from instacolor.errors import MissingDependencyError\n"
        "try:\n    Colorizer(backend='onnxruntime')\n"
        "except MissingDependencyError as e:\n    print('MDE', e)\n"
    )
    env = {**os.environ, "INSTACOLOR_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MDE backend='onnxruntime' needs the onnxruntime package")
    assert 'pip install "instacolor[onnx]"' in out.stdout
    assert not (tmp_path / "onnx").exists()  # nothing was exported


@pytest.mark.slow
def test_cli_backend_onnxruntime_matches_torch(tmp_path):
    from PIL import Image

    source = tmp_path / "in"
    source.mkdir()
    y, x = np.mgrid[0:60, 0:80]
    Image.fromarray(((x * 3 + y * 2) % 256).astype(np.uint8)).save(source / "a.png")
    env = {**os.environ, "INSTACOLOR_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    images = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "instacolor",
                "colorize",
                str(source),
                "-o",
                str(out),
                "--backend",
                backend,
                "--working-size",
                "64",
                "--threads",
                "1",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        record = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
        assert record["status"] == "done"
        images[backend] = np.asarray(Image.open(out / "a.png")).astype(int)
    assert np.abs(images["torch"] - images["onnxruntime"]).max() <= 1
    assert (tmp_path / "cache" / "onnx").is_dir()  # exported once, into the cache


def test_colorize_function_takes_the_backend(backends):
    from instacolor import colorize_full

    image = (np.random.default_rng(7).random((40, 56)) * 255).astype(np.uint8)
    a = colorize_full(image)
    b = colorize_full(image, backend="onnxruntime")
    assert np.abs(a.ab - b.ab).max() < 1e-4 and np.abs(a.ab).max() > 0.1


def _with_hints(inputs: NetworkInputs, seed: int) -> NetworkInputs:
    """``inputs`` with random hint channels: ab patches and the mask on there, -0.5 elsewhere."""
    rng = np.random.default_rng(seed)
    s, n = inputs.working_size, inputs.instance_count

    def channels(count: int) -> np.ndarray:
        out = np.zeros((count, 3, s, s), np.float32)
        out[:, 2] = -0.5
        for k in range(count):
            for _ in range(5):
                y, x, p = *rng.integers(0, s - 4, 2), int(rng.integers(1, 4))
                out[k, :2, y : y + p, x : x + p] = rng.uniform(-0.6, 0.6, (2, 1, 1))
                out[k, 2, y : y + p, x : x + p] = 0.5
        return out

    return replace(inputs, hints=channels(1), crop_hints=channels(n) if n else None)


@pytest.mark.parametrize("n", [0, 3])
@pytest.mark.parametrize("semantic", [False, True])
def test_onnxruntime_matches_torch_with_hints(random_export, n, semantic):
    """Hint channels reach the exported graphs (full, instance, fusion) as they reach torch."""
    net, folder = random_export
    runtime = OnnxRuntime(folder, threads=1)
    inputs = _with_hints(random_inputs(S, n, seed=20 + n, labels=semantic), seed=n)
    expected = TorchRuntime(net).run(inputs)
    out = runtime.run(inputs)
    assert np.abs(out.ab - expected.ab).max() < 1e-4
    for got, want in zip(out.weights, expected.weights, strict=True):
        assert np.abs(got - want).max() < 1e-4
    automatic = runtime.run(replace(inputs, hints=None, crop_hints=None))
    assert np.abs(automatic.ab - out.ab).max() > 1e-3  # the hints changed the prediction
    if n:  # the crops' hints alone change the fused result too
        only_crops = replace(inputs, hints=inputs.hints * 0 + np.float32([[[0]], [[0]], [[-0.5]]]))
        a, b = runtime.run(only_crops), TorchRuntime(net).run(only_crops)
        assert np.abs(a.ab - b.ab).max() < 1e-4 and np.abs(a.ab - automatic.ab).max() > 1e-4


def test_colorizer_backends_agree_with_hint_channels(ort_cache):
    from instacolor import Hints

    hints = Hints(
        points=[(20, 30, "#c03020", 3), (200, 100, (20, 90, 200))], instance_colors={0: "#2a4"}
    )
    image = (np.random.default_rng(5).random(IMAGE) * 255).astype(np.uint8)
    boxes = random_boxes(2, seed=3)
    kwargs = {"working_size": S, "hint_channels": True}
    a = Colorizer(**kwargs).colorize_full(image, instances=boxes, hints=hints)
    b = Colorizer(**kwargs, backend="onnxruntime").colorize_full(
        image, instances=boxes, hints=hints
    )
    assert np.abs(a.ab - b.ab).max() < 1e-4
