"""The evaluation package and ``instacolor evaluate`` / ``instacolor tune`` as users run them.

Photos are small smooth gradients written in tmp_path; the weights are the registered
untrained ones (random, no download) or random networks exported to a file.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor import Colorizer, Decoding
from instacolor.cli.main import main
from instacolor.errors import InputError, UntrainedWeightsWarning
from instacolor.evaluation import (
    Setting,
    Sweep,
    ab_planes,
    calibration,
    coco_heldout,
    coco_training,
    evaluate_coco,
    evaluate_folder,
    hint_curve,
    image_files,
    masked_psnr,
    mean_table,
    oracle_hints,
)
from instacolor.models.network import InstColorNet
from instacolor.perceptual import alexnet_features
from instacolor.train.budget import export_weights

ROOT = Path(__file__).resolve().parents[1]
UNTRAINED = "instacolor-untrained-w16"


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
def colorizer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return Colorizer(UNTRAINED, working_size=32)


# ---------------------------------------------------------------- the package


@pytest.mark.slow  # SSIM and CIEDE2000 at 256x256 in numpy: tens of seconds
def test_folder_tables_score_model_gray_and_truth(coco, colorizer):
    files = image_files(coco / "train2017")
    small, full = evaluate_folder(colorizer, files)
    assert small.title == "256x256, 2 images" and full.title == "full resolution, 2 images"
    assert small.metrics == ("psnr", "ssim", "delta_e2000", "colorfulness")
    truth, gray = small.row("ground truth"), small.row("gray baseline (ab=0)")
    assert truth.means["psnr"] == math.inf and truth.means["delta_e2000"] == 0.0
    assert gray.means["colorfulness"] == 0.0 and gray.images == 2
    assert 5 < small.row("model").means["psnr"] < 60
    assert "| model | " in small.markdown() and small.markdown().startswith("### 256x256")
    with pytest.raises(InputError, match="expected one of"):
        small.row("nope")
    assert calibration(colorizer, files).unavailable.startswith("confidence: not available")


def test_image_files_refuse_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(InputError, match=r"expected a folder of colour images.*no such folder"):
        image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos")
    with pytest.raises(InputError, match=r"--data: expected image files \(.*found none"):
        image_files(tmp_path / "empty")
    for i in range(5):
        Image.fromarray(_photo(i, (12, 12))).save(tmp_path / f"{i}.png")
    assert [p.name for p in image_files(tmp_path, every=2, limit=2)] == ["0.png", "2.png"]


@pytest.mark.slow  # SSIM and CIEDE2000 at 256x256 in numpy: tens of seconds
def test_coco_split_and_five_modes(coco, colorizer):
    held = coco_heldout(coco, 2)
    assert [s.path.name for s in held] == ["000000000000.jpg"]
    assert held[0].annotations[0]["image_id"] == 1
    assert [p.name for p in coco_training(coco, 2)] == ["000000000001.jpg"]
    report = evaluate_coco(colorizer, coco, coco_heldout(coco, 1), every=1)
    assert report.full.title == "coco, 2 images (every 1th), full resolution"
    assert [r.name for r in report.full.rows][1:] == [
        "full image only", "semantic, no instances", "instance fusion", "fusion + semantic"
    ]  # fmt: skip
    assert {"bleeding", "mask_psnr"} <= set(report.full.metrics)
    full, fused = report.full.row("full image only"), report.full.row("instance fusion")
    assert full.means["psnr"] != fused.means["psnr"]  # the boxes were used
    assert report.own_box.instances == 2 and 0 < report.own_box.conv10_2 < 1


def test_bad_coco_annotations_are_refused(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(InputError, match="--coco: expected a COCO folder with annotations/"):
        coco_heldout(tmp_path, 4)


def test_oracle_hints_are_seeded_nested_3x3_means():
    truth = _photo(7)
    five, ten = oracle_hints(truth, 5, (0, 3)), oracle_hints(truth, 10, (0, 3))
    assert ten.points[:5] == five.points and oracle_hints(truth, 5, (0, 3)) == five
    assert oracle_hints(truth, 5, (0, 4)) != five
    ab = ab_planes(truth)
    for p in ten.points:
        x, y = int(p.x), int(p.y)
        assert 1 <= x < truth.shape[1] - 1 and 1 <= y < truth.shape[0] - 1 and p.radius == 1
        a, b = ab[:, y - 1 : y + 2, x - 1 : x + 2].reshape(2, -1).mean(1)
        assert abs(p.color.a - a) < 1e-5 and abs(p.color.b - b) < 1e-5


def test_hint_curve_gains_over_no_hints(colorizer):
    items = [(i, _photo(i)) for i in range(2)]
    curve = hint_curve({"propagation": colorizer}, items, [0, 2], "oracle hints, x")
    assert curve.title == "oracle hints, x, 256x256, 2 images" and curve.ks == (0, 2)
    assert curve.gain("propagation", 0) == 0.0 and curve.gain("propagation", 2) > 0.5
    assert "| 2 | " in curve.markdown() and "colourfulness at K=2: propagation" in curve.markdown()


def test_tables_leave_nan_out_of_means_and_masked_psnr():
    table = mean_table("t", {"a": [{"x": 1.0}, {"x": float("nan")}, {"x": 3.0}]})
    assert table.row("a").means["x"] == 2.0 and table.row("a").images == 3
    assert math.isnan(mean_table("t", {"a": [{"x": float("nan")}]}).rows[0].means["x"])
    truth = np.zeros((4, 4, 3), np.uint8)
    pred = truth.copy()
    pred[0, 0] = 255
    masks = np.zeros((1, 4, 4), bool)
    assert math.isnan(masked_psnr(pred, truth, None))
    assert math.isnan(masked_psnr(pred, truth, masks))
    masks[0, 2:, 2:] = True
    assert masked_psnr(pred, truth, masks) > 100  # the wrong pixel is outside the mask


def test_bad_decoding_specs_are_refused_by_tune(tmp_path, capsys):
    for bad in ("annealed-mean:0.38:1.5", "annealed-mean:0.38:x", "annealed-mean:0.38:0.5:1",
                "annealed-mean:0", "regression:0.5", "mean:0.38"):  # fmt: skip
        err = _refused(["tune", "--data", str(tmp_path), "--decodings", "regression", bad], capsys)
        assert "argument --decodings: " in err and "expected" in err, bad


def test_the_decoding_rule_takes_the_best_vivid_enough_setting():
    def setting(dec, value, ratio):
        return Setting(128, 1.0, dec, None, value, 10.0, ratio)

    rows = (setting("regression", 24.0, 0.4), setting("a:0.38", 23.0, 0.7),
            setting("a:1", 23.5, 0.61))  # fmt: skip
    sweep = Sweep("set", 3, 22.0, rows, min_colorfulness=0.6)
    assert sweep.best().decoding == "regression" and sweep.chosen().decoding == "a:1"
    assert Sweep("set", 3, 22.0, rows[:1]).chosen() is None


def test_only_the_command_line_imports_the_evaluation_package():
    from tests.layer_graph import import_graph

    def evaluation(name: str) -> bool:
        return name == "instacolor.evaluation" or name.startswith("instacolor.evaluation.")

    graph = import_graph()
    importers = {s for s, targets in graph.items() if any(map(evaluation, targets))}
    importers = {s for s in importers if not evaluation(s)}
    assert importers == {"instacolor.cli.evaluate"}


# ---------------------------------------------------------------- bad input, in process


def _refused(argv: list[str], capsys) -> str:
    """stderr of ``instacolor ARGV``, checking exit status 2."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        status = exit_.code
    assert status == 2
    return capsys.readouterr().err


def test_bad_inputs_exit_2_and_write_nothing(coco, tmp_path, capsys):
    photos = coco / "train2017"
    before = {p: p.read_bytes() for p in photos.iterdir()}
    out = [
        "--json", str(tmp_path / "o.json"), "--markdown", str(tmp_path / "o.md"),
        "--no-lpips", "--weights", UNTRAINED,
    ]  # fmt: skip
    grid = ["--grid", str(tmp_path / "g.png")]
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x00not safetensors\xff" * 8)
    cases = {
        "expected --data FOLDER and/or --coco FOLDER": ["evaluate", *out],
        "no such folder": ["evaluate", "--data", str(tmp_path / "missing"), *out, *grid],
        "found none": ["evaluate", "--data", str(tmp_path / "empty"), *out, *grid],
        "expected K[,K...] integers >= 0": ["evaluate", "--data", str(photos), "--hints", "-1"],
        "expected modes from": ["evaluate", "--data", str(photos), "--hint-modes", "magic"],
        "expected a safetensors file": [
            "evaluate", "--data", str(photos), *out, *grid, "--weights", str(corrupt)
        ],
        "expected a COCO folder": ["evaluate", "--coco", str(photos), *out],
        "one of the photos being scored": [
            "evaluate", "--data", str(photos), "--no-lpips", "--grid",
            str(photos / "000000000000.jpg"),
        ],
        "--grid: expected --data": ["evaluate", "--coco", str(coco), "--grid", "g.png"],
        "argument --decodings: mix: expected a number from 0 to 1": [
            "tune", "--data", str(photos), "--decodings", "annealed-mean:0.38:2", *out[:4]
        ],
        "expected an integer >= 2": ["tune", "--coco", str(coco), "--holdout-every", "1"],
        "trained classification head": [
            "evaluate", "--data", str(photos), "--decode", "annealed-mean", *out, *grid
        ],
    }  # fmt: skip
    for expected, argv in cases.items():
        assert expected in _refused(argv, capsys), argv
    assert corrupt.read_bytes().startswith(b"\x00not")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "coco", "empty"]
    assert {p: p.read_bytes() for p in photos.iterdir()} == before


# ---------------------------------------------------------------- the commands


@pytest.fixture
def alexnet_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in alexnet_features().state_dict().items()}, path)
    return path


def _run(*args: str, tmp_path: Path, tool: str | None = None) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "TORCH_HOME": str(tmp_path / "torch_home"),  # empty: no official AlexNet
        "INSTACOLOR_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    head = [str(ROOT / "tools" / tool)] if tool else ["-m", "instacolor"]
    cmd = [sys.executable, *head, *args, "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def _rows(text: str, title: str) -> dict[str, dict[str, float]]:
    block = text.split(title, 1)[1].split("###", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|") and "---" not in ln]
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, map(float, cells[1:])))
    return rows


@pytest.mark.slow
def test_evaluate_prints_and_writes_what_the_package_computes(coco, alexnet_file, tmp_path):
    report, markdown = tmp_path / "out" / "scores.json", tmp_path / "out" / "scores.md"
    out = _run(
        "evaluate", "--weights", UNTRAINED, "--working-size", "32",
        "--data", str(coco / "train2017"), "--coco", str(coco), "--holdout-every", "1",
        "--lpips-alexnet", str(alexnet_file), "--hints", "2,0", "--hint-modes",
        "propagation,channels", "--json", str(report), "--markdown", str(markdown),
        tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert markdown.read_text() == out.stdout
    folder = _rows(out.stdout, "256x256, 2 images")
    assert folder["ground truth"]["lpips"] == 0.0 and folder["ground truth"]["psnr"] == np.inf
    assert folder["gray baseline (ab=0)"]["lpips"] > 0
    full = _rows(out.stdout, "coco, 2 images (every 1th), full resolution")
    assert all({"lpips", "bleeding", "psnr", "mask_psnr"} <= set(r) for r in full.values())
    assert "confidence: not available (weights 'instacolor-untrained-w16'" in out.stdout
    for title in ("oracle hints, train2017, 256x256", "oracle hints, coco held-out, 256x256"):
        assert f"### {title}, 2 images" in out.stdout
    colours = _rows(out.stdout, "one colour per instance")
    assert colours["fusion + instance colours"]["psnr"] > colours["instance fusion"]["psnr"]
    data = json.loads(report.read_text())
    means = {r["name"]: r["means"] for r in data["data"]["256x256"]["rows"]}
    assert means["ground truth"]["psnr"] == "inf" and data["settings"]["lpips"] is True
    assert data["coco"]["held_out"]["own_box"]["instances"] == 2
    assert data["data"]["hints"]["psnr"]["propagation"].keys() == {"0", "2"}
    # the same numbers as the package computes in this process
    small, _ = evaluate_folder(
        Colorizer(UNTRAINED, working_size=32), image_files(coco / "train2017")
    )
    assert means["model"]["psnr"] == pytest.approx(small.row("model").means["psnr"], abs=1e-9)
    assert f"| model | {small.row('model').means['psnr']:.3f} |" in out.stdout


@pytest.mark.slow
def test_without_lpips_weights_it_says_what_is_missing(coco, tmp_path):
    out = _run("--weights", UNTRAINED, "--data", str(coco / "train2017"), "--limit", "1",
               tmp_path=tmp_path, tool="evaluate.py")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "LPIPS not computed" in out.stdout and "alexnet-owt-7be5be79.pth" in out.stdout
    assert "lpips" not in _rows(out.stdout, "256x256, 1 images")["model"]


@pytest.mark.slow
def test_a_wrong_lpips_file_or_missing_folder_exits_2_with_the_reason(coco, tmp_path):
    bad = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    out = _run("evaluate", "--data", str(coco / "train2017"), "--lpips-alexnet", str(bad),
               "--json", str(tmp_path / "o.json"), tmp_path=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "missing keys" in out.stderr and out.stdout == ""
    assert bad.is_file() and not (tmp_path / "o.json").exists()
    out = _run("evaluate", "--data", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert out.returncode == 2 and "instacolor: error: --data: expected a folder" in out.stderr


@pytest.mark.slow
def test_tune_scores_the_coco_training_scenes_on_a_grid(coco, tmp_path):
    common = ["--weights", UNTRAINED, "--coco", str(coco), "--holdout-every", "2"]
    report = tmp_path / "tune.json"
    out = _run("tune", *common, "--sizes", "32", "48", "--saturations", "1", "2",
               "--json", str(report), tmp_path=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    # two scenes, every 2nd held out: only the other one is scored
    assert "coco training scenes, 1 images" in out.stdout
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [r.split("|")[1:3] for r in rows] == [
        [" 32 ", " 1 "], [" 32 ", " 2 "], [" 48 ", " 1 "], [" 48 ", " 2 "]
    ]  # fmt: skip
    assert "best on coco training scenes: working size" in out.stdout
    (found,) = json.loads(report.read_text())["sets"]
    assert len(found["sweep"]["settings"]) == 4 and found["best"]["working_size"] in (32, 48)


@pytest.mark.slow
def test_tune_decodings_with_a_mix_through_the_old_tool_name(coco, tmp_path):
    torch.manual_seed(0)  # random networks whose file declares a trained class head
    weights = export_weights(InstColorNet(4), tmp_path / "head.safetensors", stages=3,
                             working_size=32, class_head=True,
                             decoding=Decoding("annealed-mean"), trained_from="test")  # fmt: skip
    out = _run("--weights", str(weights), "--coco", str(coco), "--holdout-every", "2",
               "--sizes", "32", "--decodings", "regression", "annealed-mean:0.38:0.75",
               "annealed-mean:0.38", tmp_path=tmp_path, tool="tune_inference.py")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [ln.split("|")[3:5] for ln in out.stdout.splitlines() if ln.startswith("| 32 ")]
    assert rows == [
        [" regression ", " - "], [" annealed-mean:0.38:0.75 ", " 0.75 "],
        [" annealed-mean:0.38 ", " 1 "],
    ]  # fmt: skip
    assert "default decoding by the rule on coco training scenes: " in out.stdout
