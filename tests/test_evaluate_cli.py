"""tools/evaluate.py as users run it: a folder, a COCO folder, LPIPS present or not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.errors import InputError
from instacolor.models.network import InstColorNet
from instacolor.perceptual import alexnet_features
from instacolor.train.budget import export_weights

ROOT = Path(__file__).resolve().parents[1]


def _photo(seed: int, size=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x], -1) * 200 + 20
    return np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def coco(tmp_path):
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for i in range(2):
        name = f"{i:012d}.jpg"
        Image.fromarray(_photo(i)).save(root / "train2017" / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "height": 48, "width": 64})
        x0, y0, x1, y1 = 8 + 4 * i, 6, 40, 30
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 18,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": float((x1 - x0) * (y1 - y0)),
                "iscrowd": 0,
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            }
        )
    data = {"images": images, "annotations": anns, "categories": [{"id": 18, "name": "dog"}]}
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def alexnet_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in alexnet_features().state_dict().items()}, path)
    return path


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "TORCH_HOME": str(tmp_path / "torch_home"),  # empty: no official AlexNet
        "INSTACOLOR_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    cmd = [sys.executable, str(ROOT / "tools" / "evaluate.py"), "--threads", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def _rows(text: str, title: str) -> dict[str, list[float]]:
    block = text.split(title, 1)[1].split("###", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|") and "---" not in ln]
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, map(float, cells[1:])))
    return rows


@pytest.mark.slow
def test_coco_and_folder_with_lpips(coco, alexnet_file, tmp_path):
    out = _run(
        "--weights",
        "instacolor-untrained-w16",
        "--data",
        str(coco / "train2017"),
        "--coco",
        str(coco),
        "--holdout-every",
        "1",
        "--lpips-alexnet",
        str(alexnet_file),
        tmp_path=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    folder = _rows(out.stdout, "256x256, 2 images")
    assert folder["ground truth"]["lpips"] == 0.0 and folder["ground truth"]["psnr"] == np.inf
    assert folder["gray baseline (ab=0)"]["lpips"] > 0
    assert folder["gray baseline (ab=0)"]["colorfulness"] == 0.0
    full = _rows(out.stdout, "coco128, 2 images (every 1th), full resolution")
    assert set(full) == {
        "gray baseline (ab=0)",
        "full image only",
        "semantic, no instances",
        "instance fusion",
        "fusion + semantic",
    }
    assert all({"lpips", "bleeding", "psnr", "mask_psnr"} <= set(r) for r in full.values())
    assert full["full image only"]["psnr"] != full["instance fusion"]["psnr"]  # boxes were used


@pytest.mark.slow
def test_without_lpips_weights_it_says_what_is_missing(coco, tmp_path):
    out = _run(
        "--weights", "instacolor-untrained-w16", "--data", str(coco / "train2017"),
        tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "LPIPS not computed" in out.stdout and "alexnet-owt-7be5be79.pth" in out.stdout
    assert "lpips" not in _rows(out.stdout, "256x256, 2 images")["model"]


@pytest.mark.slow
def test_bad_options_exit_2_and_write_nothing(coco, tmp_path):
    grid = tmp_path / "grid.jpg"
    for bad in (["--every", "0"], ["--saturation", "9"]):
        out = _run("--data", str(coco / "train2017"), "--grid", str(grid), *bad, tmp_path=tmp_path)
        assert out.returncode == 2 and "expected" in out.stderr
    assert not grid.exists()


def _tune(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "tune_inference.py"), "--threads", "1", *args]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_tune_inference_scores_the_coco_training_scenes_on_a_grid(coco, tmp_path):
    common = ["--weights", "instacolor-untrained-w16", "--coco", str(coco), "--holdout-every", "2"]
    out = _tune(*common, "--sizes", "32", "48", "--saturations", "1", "2", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    # two scenes, every 2nd held out: only the other one is scored
    assert "coco training scenes, 1 images" in out.stdout
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [r.split("|")[1:3] for r in rows] == [
        [" 32 ", " 1 "], [" 32 ", " 2 "], [" 48 ", " 1 "], [" 48 ", " 2 "]
    ]  # fmt: skip
    assert "best on coco training scenes: working size" in out.stdout
    for bad in (["--sizes", "30"], ["--saturations", "5"], ["--holdout-every", "1"]):
        out = _tune(*common, *bad, tmp_path=tmp_path)
        assert out.returncode == 2 and "expected" in out.stderr, bad


@pytest.mark.slow
def test_tune_inference_decoding_specs_with_a_mix(coco, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    from tune_inference import parse_decoding

    assert parse_decoding("annealed-mean:0.38:0.75") == ("annealed-mean", 0.38, 0.75)
    assert parse_decoding("annealed-mean:0.6") == ("annealed-mean", 0.6, None)
    assert parse_decoding("annealed-mean") == ("annealed-mean", None, None)
    assert parse_decoding("regression") == ("regression", None, None)
    for bad in ("annealed-mean:0.38:1.5", "annealed-mean:0.38:x", "annealed-mean:0.38:0.5:1",
                "annealed-mean:0", "regression:0.5", "mean:0.38"):  # fmt: skip
        with pytest.raises(InputError, match=r"--decodings: expected .*received '"):
            parse_decoding(bad)
    torch.manual_seed(0)  # random networks whose file declares a trained class head
    weights = export_weights(InstColorNet(4), tmp_path / "head.safetensors", stages=3,
                             working_size=32, class_head=True, decode="annealed-mean",
                             temperature=0.38, trained_from="test")  # fmt: skip
    common = ["--weights", str(weights), "--coco", str(coco), "--holdout-every", "2",
              "--sizes", "32"]  # fmt: skip
    out = _tune(*common, "--decodings", "regression", "annealed-mean:0.38:0.75",
                "annealed-mean:0.38", tmp_path=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [ln.split("|")[3:5] for ln in out.stdout.splitlines() if ln.startswith("| 32 ")]
    assert rows == [
        [" regression ", " - "], [" annealed-mean:0.38:0.75 ", " 0.75 "],
        [" annealed-mean:0.38 ", " 1 "],
    ]  # fmt: skip
    assert "default decoding by the rule on coco training scenes: " in out.stdout
    out = _tune(*common, "--decodings", "annealed-mean:0.38:2", tmp_path=tmp_path)
    assert out.returncode == 2 and "--decodings: expected regression" in out.stderr


@pytest.mark.slow
def test_a_wrong_lpips_file_exits_2_with_the_reason(coco, tmp_path):
    bad = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    out = _run("--data", str(coco / "train2017"), "--lpips-alexnet", str(bad), tmp_path=tmp_path)
    assert out.returncode == 2 and "missing keys" in out.stderr
    assert bad.is_file()


def _curve(text: str, title: str) -> dict[int, dict[str, float]]:
    block = text.split(title, 1)[1].split("###", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|") and "---" not in ln]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[int(cells[0])] = dict(zip(header[1:], map(float, cells[1:])))
    return rows


@pytest.mark.slow
def test_oracle_hint_curve_instance_colours_and_calibration_line(coco, tmp_path):
    out = _run(
        "--weights", "instacolor-untrained-w16", "--working-size", "32", "--no-lpips",
        "--data", str(coco / "train2017"), "--coco", str(coco), "--holdout-every", "1",
        "--hints", "2,0", "--hint-modes", "propagation,channels",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "confidence: not available (weights 'instacolor-untrained-w16'" in out.stdout
    for title in ("oracle hints, train2017, 256x256, 2 images", "oracle hints, coco128 held-out"):
        curve = _curve(out.stdout, title)
        assert sorted(curve) == [0, 2]
        assert curve[0]["propagation gain"] == curve[0]["channels gain"] == 0.0
        assert curve[2]["propagation gain"] > 0.5  # two true colours on smooth photos
        assert curve[0]["gray baseline"] == curve[2]["gray baseline"]
    colours = _rows(out.stdout, "one colour per instance")
    assert colours["fusion + instance colours"]["psnr"] > colours["instance fusion"]["psnr"]


def test_oracle_hints_are_seeded_nested_3x3_means():
    sys.path.insert(0, str(ROOT / "tools"))
    from evaluate_hints import _ab, oracle_hints

    truth = _photo(7)
    five, ten = oracle_hints(truth, 5, (0, 3)), oracle_hints(truth, 10, (0, 3))
    assert ten.points[:5] == five.points and oracle_hints(truth, 5, (0, 3)) == five
    assert oracle_hints(truth, 5, (0, 4)) != five
    ab = _ab(truth)
    for p in ten.points:
        x, y = int(p.x), int(p.y)
        assert 1 <= x < truth.shape[1] - 1 and 1 <= y < truth.shape[0] - 1 and p.radius == 1
        a, b = ab[:, y - 1 : y + 2, x - 1 : x + 2].reshape(2, -1).mean(1)
        assert abs(p.color.a - a) < 1e-5 and abs(p.color.b - b) < 1e-5


@pytest.mark.slow
def test_decode_options_reach_the_colorizer(coco, tmp_path):
    out = _run(
        "--weights", "instacolor-untrained-w16", "--data", str(coco / "train2017"),
        "--decode", "annealed-mean", "--no-lpips", tmp_path=tmp_path,
    )  # fmt: skip
    assert (
        out.returncode == 2 and "expected weights with a trained classification head" in out.stderr
    )
    out = _run(
        "--weights", "instacolor-untrained-w16", "--working-size", "32", "--no-lpips",
        "--data", str(coco / "train2017"), "--hints", "-1", tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and "expected K[,K...] integers >= 0" in out.stderr
    out = _run(
        "--weights", "instacolor-untrained-w16", "--data", str(coco / "train2017"),
        "--mix", "2", "--no-lpips", tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and "mix: expected a number from 0 to 1, received 2" in out.stderr
