"""``instacolor train`` (and its tools/train.py alias) as a subprocess: the split, the loss and
schedule flags, guided training from the encoder cache, mosaics, and --export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from instacolor import Colorizer, Decoding

ROOT = Path(__file__).resolve().parents[1]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Twelve 48x40 colour images."""
    out = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for i in range(12):
        img = np.empty((40, 48, 3), np.uint8)
        img[:] = rng.integers(40, 215, 3)
        img[10:30, 8:30] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(out / f"p{i:02d}.png")
    return out


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_train_validates_on_a_split_of_the_rest_and_exports_its_size(folder, tmp_path):
    run = _train(
        "--stage", "1", "--data", str(folder), "--out", str(tmp_path / "run"),
        "--width", "4", "--size", "32", "--batch", "2", "--steps", "4", "--threads", "1",
        "--workers", "0", "--holdout-every", "4", "--val-every", "3",
        "--checkpoint-every", "2", "--validate-every", "4",
        "--loss", "l2", "--lr-schedule", "cosine",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # 12 images: 3 held out (never read), 9 left, of which 3 validate and 6 train
    assert "6 training images, 3 held out, validating on 3 of the others" in run.stdout
    lines = (tmp_path / "run/stage1/log.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "psnr" in json.dumps(log[-1])
    ckpt = tmp_path / "run/stage1/latest.pt"

    target = tmp_path / "w.safetensors"
    run = _train("--export", str(ckpt), "--to", str(target), "--width", "4")
    assert run.returncode == 0, run.stderr
    with safe_open(str(target), framework="pt") as f:
        assert f.metadata()["working_size"] == "32"
    assert Colorizer(target).working_size == 32


@pytest.mark.slow
def test_unknown_loss_is_refused_by_the_command_line(folder, tmp_path):
    out = tmp_path / "r"
    run = _train("--stage", "1", "--data", str(folder), "--out", str(out), "--loss", "l1")
    assert run.returncode == 2 and "--loss: invalid choice: 'l1'" in run.stderr
    assert not out.exists()


@pytest.mark.slow
def test_lr_zero_is_kept_and_a_negative_one_refused(folder, tmp_path):
    init = tmp_path / "a"
    common = ["--stage", "1", "--data", str(folder), "--width", "4", "--size", "32", "--batch",
              "2", "--threads", "1", "--workers", "0", "--holdout-every", "4"]  # fmt: skip
    assert _train(*common, "--out", str(init), "--steps", "2").returncode == 0
    first = init / "stage1" / "latest.pt"
    run = _train(*common, "--out", str(tmp_path / "b"), "--steps", "2", "--lr", "0",
                 "--init", str(first))  # fmt: skip
    assert run.returncode == 0, run.stderr
    before = torch.load(first, weights_only=False)["net"]
    after = torch.load(tmp_path / "b" / "stage1" / "latest.pt", weights_only=False)["net"]
    params = [k for k in before if k.startswith("full.") and not k.endswith(BUFFERS)]
    assert params and all(torch.equal(before[k], after[k]) for k in params)
    # BatchNorm statistics of a training stage still follow the data
    stat = "full.model1.4.running_mean"
    assert not torch.equal(before[stat], after[stat])
    run = _train(*common, "--out", str(tmp_path / "c"), "--lr", "-1")
    assert run.returncode == 2 and "--lr: expected 0 or more" in run.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_validate_scores_checkpoints_and_weights_like_the_training_log(folder, tmp_path):
    out = tmp_path / "run"
    run = _train(
        "--stage", "1", "--data", str(folder), "--out", str(out), "--width", "4",
        "--size", "32", "--batch", "2", "--steps", "2", "--threads", "1", "--workers", "0",
        "--holdout-every", "4", "--validate-every", "2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ckpt = out / "stage1" / "latest.pt"
    logged = json.loads((out / "stage1" / "log.jsonl").read_text().splitlines()[-1])
    tool = [sys.executable, str(ROOT / "tools" / "validate.py")]
    args = ["--data", str(folder), "--holdout-every", "4", "--size", "32", "--width", "4"]
    res = subprocess.run([*tool, str(ckpt), *args], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith(f"| {ckpt}"))
    assert row.split("|")[2].strip() == f"{logged['val_psnr']:.3f}"  # the log's number
    res = subprocess.run([*tool, str(tmp_path / "nope.pt"), *args], capture_output=True, text=True)
    assert res.returncode == 2 and "expected existing files" in res.stderr


@pytest.mark.slow
def test_class_head_trains_exports_and_decodes_by_annealed_mean(folder, tmp_path):
    run = _train(
        "--stage", "1", "--data", str(folder), "--out", str(tmp_path / "run"),
        "--width", "4", "--size", "32", "--batch", "4", "--steps", "6", "--threads", "1",
        "--workers", "0", "--holdout-every", "4", "--validate-every", "6", "--lr", "3e-3",
        "--class-weight", "1", "--class-rebalance", "0.5", "--cpu-bf16", "--channels-last",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    log = [json.loads(x) for x in (tmp_path / "run/stage1/log.jsonl").read_text().splitlines()]
    assert {"val_T0.38_psnr", "val_T1_colorfulness"} <= set(log[-1])
    saved = torch.load(tmp_path / "run/stage1/latest.pt", weights_only=False)["config"]
    assert len(saved["class_prior"]) == 529 and abs(sum(saved["class_prior"]) - 1) < 1e-4
    target = tmp_path / "head.safetensors"
    ckpt = str(tmp_path / "run/stage1/latest.pt")
    run = _train("--export", ckpt, "--to", str(target), "--width", "4",
                 "--decode", "annealed-mean:0.5")  # fmt: skip
    assert run.returncode == 0, run.stderr
    with safe_open(str(target), framework="pt") as f:
        meta = f.metadata()
    assert (meta["class_head"], meta["decode"], meta["temperature"]) == (
        "trained",
        "annealed-mean",
        "0.5",
    )
    colorizer = Colorizer(target)
    assert (colorizer.decoding.mode, colorizer.decoding.temperature) == ("annealed-mean", 0.5)
    gray = (np.random.default_rng(0).random((30, 44)) * 255).astype(np.uint8)
    result = colorizer.colorize_full(gray)
    assert result.decoding.record() == {"decode": "annealed-mean", "temperature": 0.5, "mix": 1.0}
    conf = result.confidence
    assert conf.shape == (30, 44) and conf.dtype == np.float32
    assert conf.min() >= 0.0 and conf.max() <= 1.0
    regression = colorizer.colorize_full(gray, decode="regression")
    assert regression.confidence is not None and not np.array_equal(regression.ab, result.ab)
    # annealed-mean:T:MIX: the weights' default blend of annealed mean and regression
    mixed = tmp_path / "mixed.safetensors"
    run = _train("--export", ckpt, "--to", str(mixed), "--width", "4",
                 "--decode", "annealed-mean:0.38:0.75")  # fmt: skip
    assert run.returncode == 0, run.stderr
    with safe_open(str(mixed), framework="pt") as f:
        assert f.metadata()["mix"] == "0.75"
    blend = Colorizer(mixed).colorize_full(gray)
    assert (blend.decoding, result.decoding.mix) == (Decoding("annealed-mean", 0.38, 0.75), 1.0)
    run = _train("--export", ckpt, "--to", str(tmp_path / "bad.safetensors"), "--width", "4",
                 "--decode", "annealed-mean:0.38:2")  # fmt: skip
    assert run.returncode == 2 and "mix: expected a number from 0 to 1" in run.stderr
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.mark.slow
def test_annealed_mean_export_of_a_run_without_class_loss_is_refused(folder, tmp_path):
    run = _train(
        "--stage", "1", "--data", str(folder), "--out", str(tmp_path / "run"),
        "--width", "4", "--size", "32", "--batch", "2", "--steps", "1", "--threads", "1",
        "--workers", "0", "--validate-every", "5",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    target = tmp_path / "w.safetensors"
    run = _train("--export", str(tmp_path / "run/stage1/latest.pt"), "--to", str(target),
                 "--width", "4", "--decode", "annealed-mean")  # fmt: skip
    assert run.returncode == 2 and "expected a checkpoint trained with a class weight" in run.stderr
    assert not target.exists()


def _coco(folder: Path) -> Path:
    """A COCO folder of six 64x64 scenes with two annotated boxes (polygons) each."""
    rng = np.random.default_rng(5)
    (folder / "train2017").mkdir(parents=True)
    images, anns = [], []
    for i in range(6):
        img = np.empty((64, 64, 3), np.uint8)
        img[:] = rng.integers(40, 215, 3)
        img[8:30, 6:34] = rng.integers(0, 255, 3)
        img[36:60, 30:62] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(folder / "train2017" / f"{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": 64, "width": 64})
        for k, (x, y, w, h) in enumerate(((6, 8, 28, 22), (30, 36, 32, 24))):
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            anns.append({"id": 2 * i + k, "image_id": i, "category_id": 1 + k,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                         "segmentation": [poly]})  # fmt: skip
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    (folder / "annotations").mkdir()
    doc = {"images": images, "annotations": anns, "categories": cats}
    (folder / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.slow
def test_guided_stages_train_from_the_cache_and_mosaics_and_export(folder, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    common = ["--width", "4", "--size", "32", "--threads", "1", "--workers", "0",
              "--guided", "--class-weight", "0.5"]  # fmt: skip
    stage1 = ["train", "--stage", "1", "--data", str(folder), "--cache", str(cache),
              "--out", str(out), "--batch", "2", "--steps", "3", "--holdout-every", "4",
              "--validate-every", "3", "--checkpoint-every", "1", *common]  # fmt: skip
    run = _instacolor(*stage1)
    assert run.returncode == 0, run.stderr
    meta = json.loads((cache / "cache.json").read_text())
    assert meta["done"] == meta["count"] == 9  # 12 photos, every 4th held out
    saved = torch.load(out / "stage1/latest.pt", weights_only=False)
    assert saved["config"]["guided"] and any(k.startswith("guidance.full.") for k in saved["net"])
    moved = [k for k in saved["net"] if k.startswith("guidance.full.") and ".gamma." in k]
    assert any(saved["net"][k].abs().sum() > 0 for k in moved)  # the modulations learned
    # stage 3: coco scenes plus mosaics of the photos, fusion and instances from stage 1
    coco = _coco(tmp_path / "coco")
    stage3 = ["train", "--stage", "3", "--data", str(coco / "train2017"), "--coco", str(coco),
              "--out", str(out), "--init", str(out / "stage1/latest.pt"),
              "--fusion-from-full", "--instance-from-full",
              "--extra-data", str(folder), "--mosaics", "3", "--batch", "2", "--steps", "2",
              "--holdout-every", "3", "--validate-every", "2", *common]  # fmt: skip
    run = _instacolor(*stage3)
    assert run.returncode == 0, run.stderr
    assert "stage 3: 7 training images" in run.stdout  # 4 scenes + 3 mosaics
    target = tmp_path / "v.safetensors"
    run = _instacolor("train", "--export", str(out / "stage3/latest.pt"), "--to", str(target),
                      "--width", "4")  # fmt: skip
    assert run.returncode == 0, run.stderr
    with safe_open(str(target), framework="pt") as f:
        assert f.metadata()["encoder"] == "efficientnet-lite0"
    colorizer = Colorizer(target)
    gray = (np.random.default_rng(1).random((40, 52)) * 255).astype(np.uint8)
    assert colorizer.colorize(gray, instances=[[2, 2, 30, 30]]).shape == (40, 52, 3)


@pytest.mark.slow
def test_cache_and_mosaics_need_their_stage(folder, tmp_path):
    run = _instacolor("train", "--stage", "2", "--data", str(folder), "--cache",
                      str(tmp_path / "c"), "--guided", "--out", str(tmp_path / "r"))  # fmt: skip
    assert run.returncode == 2 and "--cache: expected with --guided and --stage 1" in run.stderr
    run = _instacolor("train", "--stage", "3", "--data", str(folder), "--mosaics", "4",
                      "--out", str(tmp_path / "r"))  # fmt: skip
    assert run.returncode == 2 and "--mosaics: expected with --stage 3 and --extra-data" in (
        run.stderr
    )
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def _instacolor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instacolor", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
