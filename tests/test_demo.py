"""tools/demo.py as users run it: a subprocess on the shipped samples and on a new image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tools" / "demo.py"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMO), "--weights", "instacolor-untrained-w16", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _offline(tmp_path: Path) -> dict:
    refused = "http://127.0.0.1:9"
    return {
        "TORCH_HOME": str(tmp_path / "torch"),
        "https_proxy": refused,
        "HTTPS_PROXY": refused,
        "no_proxy": "",
        "NO_PROXY": "",
    }


@pytest.mark.slow
def test_demo_on_the_samples_writes_one_figure(tmp_path):
    out = tmp_path / "demo.png"
    run = _run("--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "ground-truth COCO annotations" in run.stdout
    for stage in ("read", "detect", "network", "reconstruct", "total", "figure"):
        assert f"  {stage} " in run.stdout
    figure = Image.open(out)
    assert figure.height == 2 * 300 and figure.width > 4 * 300  # one row per sample


@pytest.mark.slow
def test_demo_without_detector_weights_fails_clearly_or_falls_back_loudly(tmp_path):
    photo = tmp_path / "scan.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)).save(photo)
    before = photo.read_bytes()
    failed = _run("--image", str(photo), "--out", str(tmp_path / "a.png"), env=_offline(tmp_path))
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "maskrcnn_resnet50_fpn_coco" in failed.stderr and "download" in failed.stderr
    assert not (tmp_path / "a.png").exists()
    fallback = _run(
        "--image", str(photo), "--fallback", "--out", str(tmp_path / "b.png"),
        env=_offline(tmp_path),
    )  # fmt: skip
    assert fallback.returncode == 0, fallback.stderr
    assert "WARNING" in fallback.stdout and "FULL-IMAGE ONLY" in fallback.stdout
    assert (tmp_path / "b.png").is_file() and photo.read_bytes() == before
