"""ONNX export and the onnxruntime backend: real exports, real sessions, parity with torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx

from instacolor import Colorizer
from instacolor.errors import ExportError, InputError, WeightsError
from instacolor.models.generator import FUSION_POINTS
from instacolor.models.network import InstColorNet
from instacolor.models.placement import placement_cells
from instacolor.runtime import TorchRuntime
from instacolor.runtime.export import MANIFEST_NAME, ONNX_OPSET, export_cached, export_onnx
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.structures import NetworkInputs
from instacolor.weights import LoadedWeights, load_weights, sha256_file

ROOT = Path(__file__).resolve().parents[1]
S = 64  # working size of these tests (the graphs take any multiple of 8)
IMAGE = (240, 320)


def _random_net(width: int, seed: int = 0) -> InstColorNet:
    """Every floating tensor random, BatchNorm statistics included; semantic block too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InstColorNet(width).eval()
        with torch.no_grad():
            for name, t in net.state_dict().items():
                if not t.is_floating_point():
                    continue
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape) + 0.5)
                elif ".gamma." in name or ".beta." in name:
                    t.copy_(torch.randn(t.shape) * 0.05)
    return net


def _boxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = IMAGE
    x0, y0 = rng.integers(0, w - 30, n), rng.integers(0, h - 30, n)
    x1 = np.minimum(x0 + rng.integers(2, 160, n), w)
    y1 = np.minimum(y0 + rng.integers(2, 120, n), h)
    return np.stack([x0, y0, x1, y1], 1)


def _inputs(size: int, n: int, seed: int, labels: bool = False) -> NetworkInputs:
    """Random NetworkInputs at ``size`` with ``n`` crops on :func:`_boxes`."""
    gen = torch.Generator().manual_seed(seed)
    l_norm = torch.rand(1, 1, size, size, generator=gen) - 0.5
    crops = torch.rand(n, 1, size, size, generator=gen) - 0.5
    label_map = torch.randint(0, 134, (1, size, size), generator=gen) if labels else None
    return NetworkInputs(
        light=(l_norm[0, 0] * 100 + 50).numpy(),
        l=l_norm.numpy(),
        image_size=IMAGE,
        crops=crops.numpy() if n else None,
        placements=placement_cells(_boxes(n, seed=seed), IMAGE, size) if n else None,
        labels=None if label_map is None else label_map.numpy(),
    )


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    net = _random_net(8)
    loaded = LoadedWeights(net=net, name="random-w8", sha256=None, trained=False)
    folder = export_onnx(loaded, tmp_path_factory.mktemp("random") / "onnx", working_size=S)
    return net, folder


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    loaded = load_weights("default")
    return loaded.net, export_onnx(
        loaded, tmp_path_factory.mktemp("shipped") / "onnx", working_size=S
    )


def test_export_writes_checked_graphs_and_a_manifest(random_export):
    _, folder = random_export
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["opset"] == ONNX_OPSET and manifest["width"] == 8
    assert manifest["semantic"] is True and manifest["with_instances"] is True
    assert set(manifest["graphs"]) == {
        "full",
        "full_semantic",
        "instance",
        "fusion",
        "fusion_semantic",
    }
    for entry in manifest["graphs"].values():
        model = onnx.load(str(folder / entry["file"]))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version == ONNX_OPSET
        assert [i.name for i in model.graph.input] == entry["inputs"]
        assert [o.name for o in model.graph.output] == entry["outputs"]
        assert sha256_file(folder / entry["file"]) == entry["sha256"]
    fusion = onnx.load(str(folder / "fusion.onnx"))
    dims = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in fusion.graph.input
    }
    assert dims["placements"] == [4, "instances", 6]
    assert dims["f_conv1_2"][0] == "instances" and dims["f_conv4_3"][2] == "height_conv4_3"
    assert not list(folder.glob(".*"))  # no partial files left


@pytest.mark.parametrize("n", [0, 1, 8])
@pytest.mark.parametrize("semantic", [False, True])
@pytest.mark.parametrize("which", ["random", "shipped"])
def test_onnxruntime_matches_torch(request, which, n, semantic):
    """The same NetworkInputs through both runtimes: ab and weight maps within 1e-4."""
    net, folder = request.getfixturevalue(f"{which}_export")
    ort_runtime = OnnxRuntime(folder, threads=1)
    size = S if n != 1 else 2 * S  # another size than the export's example: dynamic axes
    inputs = _inputs(size, n, seed=n, labels=semantic)
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
    net = _random_net(64, seed=3)
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
    inputs = replace(_inputs(32, 2, seed=5), labels=np.zeros((1, 32, 32), np.int64))
    expected = TorchRuntime(loaded.net).run(replace(inputs, labels=None))
    got = OnnxRuntime(out, threads=2).run(inputs)
    assert np.abs(got.ab - expected.ab).max() < 1e-4


@pytest.fixture(scope="module")
def ort_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("cache")
        patch.setenv("INSTACOLOR_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def backends(ort_cache):
    return Colorizer(working_size=S), Colorizer(working_size=S, backend="onnxruntime")


@pytest.mark.parametrize("n", [0, 1, 8])
def test_colorizer_backends_agree(backends, n):
    torch_c, ort_c = backends
    assert "backend='onnxruntime'" in repr(ort_c)
    image = (np.random.default_rng(n).random(IMAGE) * 255).astype(np.uint8)
    boxes = _boxes(n, seed=10 + n) if n else None
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


def test_changed_or_missing_files_are_refused(random_export, tmp_path):
    _, folder = random_export
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in folder.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    with open(copy / "fusion.onnx", "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"xyz")
    with pytest.raises(WeightsError, match=r"fusion graph .*export the weights again"):
        OnnxRuntime(copy)
    with pytest.raises(WeightsError, match="expected an ONNX export folder"):
        OnnxRuntime(tmp_path / "nowhere")
    OnnxRuntime(folder)  # the original still loads
    with pytest.raises(InputError, match=r"expected crops \(N, 1, 64, 64\) with placements"):
        NetworkInputs(  # inputs no runtime could take are refused where they are built
            light=np.zeros((S, S), np.float32),
            l=np.zeros((1, 1, S, S), np.float32),
            image_size=IMAGE,
            crops=np.zeros((2, 1, S, S), np.float32),
            placements=np.zeros((4, 3, 6), np.int64),
        )


def test_a_failing_export_says_why_and_leaves_nothing(tmp_path):
    loaded = LoadedWeights(net=_random_net(8), name="random-w8", sha256=None, trained=False)
    target = tmp_path / "onnx"
    with pytest.raises(ExportError, match=r"opset 7 .*failed .*use --opset 17"):
        export_onnx(loaded, target, working_size=32, opset=7)
    assert list(target.iterdir()) == []


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
def test_export_tool_writes_verifies_and_reports(tmp_path):
    out = tmp_path / "exported"
    with warnings.catch_warnings():
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "export_onnx.py"),
                "--weights",
                "default",
                "--out",
                str(out),
                "--verify",
                "--working-size",
                "64",
                "--threads",
                "1",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stderr
    assert "onnx.checker: ok" in run.stdout
    for n in (0, 1, 8):
        line = next(x for x in run.stdout.splitlines() if x.startswith(f"parity {n} instance"))
        assert float(line.split("max |ab diff|")[1].split(",")[0]) < 1e-4
    assert (out / MANIFEST_NAME).is_file()
    assert len(FUSION_POINTS) == 13


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


@pytest.mark.slow
def test_processes_exporting_at_once_share_one_complete_folder(tmp_path):
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from instacolor.runtime.export import export_cached\n"
        "from instacolor.weights import load_weights\n"
        "print(export_cached(load_weights('default')))\n"
    )
    env = {**os.environ, "INSTACOLOR_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    folders = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    (folder,) = folders
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [Path(folder).name]
    OnnxRuntime(folder)  # every file matches the manifest


def test_colorize_function_takes_the_backend(backends):
    from instacolor import colorize_full

    image = (np.random.default_rng(7).random((40, 56)) * 255).astype(np.uint8)
    a = colorize_full(image)
    b = colorize_full(image, backend="onnxruntime")
    assert np.abs(a.ab - b.ab).max() < 1e-4 and np.abs(a.ab).max() > 0.1


def test_full_image_only_weights_export_the_full_graph_alone(tmp_path):
    net = InstColorNet(8, with_instances=False, mask_value=0.0).eval()  # siggraph17's layout
    loaded = LoadedWeights(net=net, name="siggraph17-like", sha256=None, trained=False)
    folder = export_onnx(loaded, tmp_path / "onnx", working_size=32)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert list(manifest["graphs"]) == ["full"] and manifest["with_instances"] is False
    assert manifest["mask_value"] == 0.0
    inputs = _inputs(48, 2, seed=4)  # crops are ignored, as in torch
    out = OnnxRuntime(folder).run(inputs)
    with torch.no_grad():
        full = net.colorize(torch.from_numpy(inputs.l)).ab.numpy()
    assert np.abs(out.ab - full).max() < 1e-4 and out.weights == ()
    assert np.abs(TorchRuntime(net).run(inputs).ab - full).max() == 0


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
    inputs = _with_hints(_inputs(S, n, seed=20 + n, labels=semantic), seed=n)
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
    boxes = _boxes(2, seed=3)
    kwargs = {"working_size": S, "hint_channels": True}
    a = Colorizer(**kwargs).colorize_full(image, instances=boxes, hints=hints)
    b = Colorizer(**kwargs, backend="onnxruntime").colorize_full(
        image, instances=boxes, hints=hints
    )
    assert np.abs(a.ab - b.ab).max() < 1e-4


def test_an_export_of_an_older_format_is_exported_again(ort_cache):
    loaded = load_weights("default")
    folder = export_cached(loaded)
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": 1}))
    again = export_cached(loaded)
    assert json.loads((again / MANIFEST_NAME).read_text())["format"] == manifest["format"] == 2
