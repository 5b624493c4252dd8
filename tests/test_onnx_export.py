"""ONNX export: checked graphs and their manifest, changed files refused, a failing export,
the export tool, concurrent exports and the cache's format (real exports, real sessions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx

from instacolor.errors import ExportError, InputError, WeightsError
from instacolor.models.generator import FUSION_POINTS
from instacolor.models.network import InstColorNet
from instacolor.runtime import TorchRuntime
from instacolor.runtime.export import MANIFEST_NAME, ONNX_OPSET, export_cached, export_onnx
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.structures import NetworkInputs
from instacolor.weights import LoadedWeights, load_weights, sha256_file
from tests.onnx_exports import IMAGE, S, cache_at, export_random_net, random_inputs, random_net

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    """A random width-8 network and its export."""
    return export_random_net(tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="module")
def ort_cache(tmp_path_factory):
    """The weights cache of this module (exports are cached there)."""
    with cache_at(tmp_path_factory.mktemp("cache")) as root:
        yield root


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
    loaded = LoadedWeights(net=random_net(8), name="random-w8", sha256=None, trained=False)
    target = tmp_path / "onnx"
    with pytest.raises(ExportError, match=r"opset 7 .*failed .*use --opset 17"):
        export_onnx(loaded, target, working_size=32, opset=7)
    assert list(target.iterdir()) == []


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


def test_full_image_only_weights_export_the_full_graph_alone(tmp_path):
    net = InstColorNet(8, with_instances=False, mask_value=0.0).eval()  # siggraph17's layout
    loaded = LoadedWeights(net=net, name="siggraph17-like", sha256=None, trained=False)
    folder = export_onnx(loaded, tmp_path / "onnx", working_size=32)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert list(manifest["graphs"]) == ["full"] and manifest["with_instances"] is False
    assert manifest["mask_value"] == 0.0
    inputs = random_inputs(48, 2, seed=4)  # crops are ignored, as in torch
    out = OnnxRuntime(folder).run(inputs)
    with torch.no_grad():
        full = net.colorize(torch.from_numpy(inputs.l)).ab.numpy()
    assert np.abs(out.ab - full).max() < 1e-4 and out.weights == ()
    assert np.abs(TorchRuntime(net).run(inputs).ab - full).max() == 0


def test_an_export_of_an_older_format_is_exported_again(ort_cache):
    loaded = load_weights("default")
    folder = export_cached(loaded)
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": 1}))
    again = export_cached(loaded)
    assert json.loads((again / MANIFEST_NAME).read_text())["format"] == manifest["format"] == 2
