"""``instacolor colorize --hints FILE`` and ``NAME.hints.json`` sidecars, run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.color import rgb_to_lab
from instacolor.hints import Hints

FAST = ["--working-size", "64", "--threads", "1", "--no-progress"]


def _env(tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    values.update(INSTACOLOR_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    return values


def _cli(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instacolor", "colorize", *map(str, args), *FAST],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:64]
    paths = []
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        gray = (60 + (x + y * 2 + seed * 9) % 120).astype(np.uint8)
        paths.append(folder / f"{name}.png")
        Image.fromarray(gray).save(paths[-1])
    return paths


def _records(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {Path(r["input"]).name: r for r in map(json.loads, lines)}


def _ab_at(path: Path, y: int, x: int) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0
    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))[1:, y, x].numpy()


@pytest.mark.slow
def test_sidecars_and_json_lines_apply_and_a_bad_hint_file_fails_alone(tmp_path):
    _inputs(tmp_path / "in")
    sidecar = {"points": [[10, 12, "#2050d0", 2]]}
    (tmp_path / "in" / "a.hints.json").write_text(json.dumps(sidecar))
    (tmp_path / "in" / "c.hints.json").write_text('{"points": [[5, 5, "#12345g"]]}')
    lines = tmp_path / "hints.jsonl"
    line_b = {"input": "in/b.png", "points": [[40, 30, [200, 60, 40]]]}
    lines.write_text(json.dumps(line_b) + "\n\n")
    run = _cli(tmp_path, tmp_path / "in", "-o", tmp_path / "out", "--hints", lines)
    assert run.returncode == 1, run.stderr  # one input failed, the others were done
    records = _records(tmp_path / "out")
    assert records["a.png"]["status"] == records["b.png"]["status"] == "done"
    assert records["a.png"]["hints"] == 1 and records["b.png"]["hints"] == 1
    assert records["a.png"]["hints_sha256"] == Hints(points=[(10, 12, "#2050d0", 2)]).sha256()
    assert records["b.png"]["hints_sha256"] == Hints(points=[(40, 30, (200, 60, 40))]).sha256()
    failed = records["c.png"]
    assert failed["status"] == "failed" and failed["hints"] is None
    assert "c.hints.json" in failed["error"] and "expected a hex colour" in failed["error"]
    assert "\n" not in failed["error"]
    assert not (tmp_path / "out" / "c.png").exists()
    # the hinted pixels take their colour (at the pixel's own L: within the sRGB gamut there,
    # and through the working-size propagation and guided upsampling)
    for name, (y, x), rgb in (
        ("a.png", (12, 10), (0x20, 0x50, 0xD0)),
        ("b.png", (30, 40), (200, 60, 40)),
    ):
        want = rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1) / 255)[1:, 0, 0]
        got = _ab_at(tmp_path / "out" / name, y, x)
        assert np.linalg.norm(got - want.numpy()) < 0.35 * np.linalg.norm(want.numpy())


@pytest.mark.slow
def test_a_hint_outside_the_image_fails_that_input_and_a_broken_file_stops_the_batch(tmp_path):
    a, b, _ = _inputs(tmp_path / "in")
    lines = tmp_path / "hints.jsonl"
    lines.write_text(json.dumps({"input": str(a), "points": [[64, 10, "#ff0000"]]}) + "\n")
    run = _cli(tmp_path, a, b, "-o", tmp_path / "out", "--hints", lines)
    records = _records(tmp_path / "out")
    assert run.returncode == 1 and records["b.png"]["status"] == "done"
    assert records["b.png"]["hints"] is None and records["b.png"]["hints_sha256"] is None
    assert (
        records["a.png"]["status"] == "failed"
        and "expected x in [0, 64)" in records["a.png"]["error"]
    )
    lines.write_text('{"input": "in/a.png", "points": []}\nnot json\n')
    run = _cli(tmp_path, a, "-o", tmp_path / "out2", "--hints", lines)
    assert run.returncode == 2 and "line 2: expected a JSON object" in run.stderr
    run = _cli(tmp_path, a, "-o", tmp_path / "out3", "--hints", tmp_path / "missing.jsonl")
    assert run.returncode == 2 and "expected a readable JSON-lines file" in run.stderr


@pytest.mark.slow
def test_a_piped_hints_file_is_read_and_a_special_sidecar_fails_its_input(tmp_path):
    a, b, _ = _inputs(tmp_path / "in")
    fifo = tmp_path / "hints.jsonl"
    os.mkfifo(fifo)  # as --hints <(...) gives it: a pipe with a writer
    line = json.dumps({"input": str(a), "points": [[10, 10, "#ff0000"]]}) + "\n"
    writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'w').write({line!r})"])
    run = _cli(tmp_path, a, "-o", tmp_path / "out", "--hints", fifo)
    writer.wait(60)
    assert run.returncode == 0, run.stderr
    assert _records(tmp_path / "out")["a.png"]["hints"] == 1
    run = _cli(tmp_path, a, "-o", tmp_path / "out2", "--hints", tmp_path / "in")
    assert run.returncode == 2 and "not a regular file (a folder)" in run.stderr, run.stderr
    assert not (tmp_path / "out2").exists()
    os.mkfifo(tmp_path / "in" / "a.hints.json")  # nobody writes it: never waited on
    run = _cli(tmp_path, a, b, "-o", tmp_path / "out3")
    records = _records(tmp_path / "out3")
    assert run.returncode == 1 and records["b.png"]["status"] == "done"
    assert records["a.png"]["status"] == "failed" and "a FIFO" in records["a.png"]["error"]
    assert not (tmp_path / "out3" / "a.png").exists()
