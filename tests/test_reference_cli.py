"""``instacolor colorize --reference PATH``, run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instacolor.hints import read_references, references_sha256

FAST = ["--working-size", "64", "--threads", "1", "--no-progress"]


def _cli(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(INSTACOLOR_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "instacolor", "colorize", *map(str, args), *FAST],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


def _photo() -> np.ndarray:
    """A 96x128 colour photo stand-in: textured halves of two colours."""
    y, x = np.mgrid[0:96, 0:128]
    tex = 0.55 + 0.35 * np.sin(x / 3.0) * np.where(x < 64, 1.0, np.sin(y / 4.0))
    hue = np.where((x < 64)[..., None], [1.0, 0.35, 0.3], [0.3, 0.5, 1.0])
    return (np.clip(tex, 0, 1)[..., None] * hue * 255).astype(np.uint8)


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(_photo()).convert("L").save(folder / "a.png")
    return folder


@pytest.mark.slow
def test_a_reference_colours_the_batch(tmp_path, scans):
    reference = tmp_path / "ref.jpg"
    Image.fromarray(_photo()[:, ::-1]).save(reference, quality=95)
    plain = _cli(tmp_path, scans, "-o", tmp_path / "plain")
    guided = _cli(tmp_path, scans, "-o", tmp_path / "guided", "--reference", reference)
    assert plain.returncode == 0 and guided.returncode == 0, guided.stderr
    a = np.asarray(Image.open(tmp_path / "plain" / "a.png").convert("RGB"), np.float64)
    b = np.asarray(Image.open(tmp_path / "guided" / "a.png").convert("RGB"), np.float64)
    truth = _photo().astype(np.float64)
    assert np.abs(b - truth).mean() < np.abs(a - truth).mean() - 5.0
    # the records (and the outputs' provenance) name the reference by its digest
    record = json.loads((tmp_path / "guided" / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["references_sha256"] == references_sha256(read_references(reference))
    plain_record = json.loads((tmp_path / "plain" / "manifest.jsonl").read_text().splitlines()[-1])
    assert plain_record["references_sha256"] is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gray", "broken", "missing"])
def test_a_bad_reference_stops_the_batch_before_anything_is_written(tmp_path, scans, kind):
    reference = tmp_path / "ref.png"
    if kind == "gray":
        Image.fromarray(_photo()).convert("L").convert("RGB").save(reference)
    elif kind == "broken":
        reference.write_bytes(b"\x89PNG but not really")
    before = reference.read_bytes() if reference.exists() else None
    out = tmp_path / "out"
    result = _cli(tmp_path, scans, "-o", out, "--reference", reference)
    assert result.returncode == 2
    expected = {"gray": "no colour to take", "broken": "could not decode", "missing": "not exist"}
    assert expected[kind] in result.stderr
    assert not out.exists() or not any(out.iterdir())
    assert (reference.read_bytes() if reference.exists() else None) == before
