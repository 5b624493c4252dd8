"""tools/train.py as a subprocess: the split, the loss and schedule flags, and --export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from instacolor import Colorizer

ROOT = Path(__file__).resolve().parents[1]


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


def test_unknown_loss_is_refused_by_the_command_line(folder, tmp_path):
    out = tmp_path / "r"
    run = _train("--stage", "1", "--data", str(folder), "--out", str(out), "--loss", "l1")
    assert run.returncode == 2 and "--loss: invalid choice: 'l1'" in run.stderr
    assert not out.exists()
