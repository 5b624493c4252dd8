"""``python tools/bench.py SUBCOMMAND``, the benchmarks' one entry point, as a subprocess.

Only ``--help``, usage errors and one tiny real run (``hints`` on a 32x32 photo): the
benchmarks themselves measure the machine and are not run here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tools" / "bench.py"

#: every subcommand, with one option of it that the recorded commands in docs/ use
SUBCOMMANDS = {
    "pipeline": "--quick",
    "batch": "--only",
    "detect": "--sam",
    "hints": "--side",
    "onnx": "--repeats",
    "ray": "--workers",
    "reference": "--reference",
    "review": "--working-sizes",
    "review-load": "--previews",
    "video": "--frames",
    "profile": "--configs",
}


def _bench(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_help_lists_every_subcommand_on_one_line():
    proc = _bench("--help")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in SUBCOMMANDS:
        # "    video          instacolor video: frames per second and peak memory"
        rows = [line.split(maxsplit=1) for line in lines if line.startswith(f"    {name} ")]
        assert len(rows) == 1 and len(rows[0]) == 2 and rows[0][1].strip(), (name, proc.stdout)
    assert not list((ROOT / "tools").glob("bench_*.py"))
    assert not (ROOT / "tools" / "profile_inference.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_help_shows_its_options(name):
    proc = _bench(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: tools/bench.py {name} ")
    assert SUBCOMMANDS[name] in proc.stdout
    description = proc.stdout.split("\n\n", 1)[1].split("options:")[0]
    assert f"tools/bench.py {name}" in description  # its usage example


@pytest.mark.slow
def test_unknown_or_missing_subcommand_is_a_usage_error():
    proc = _bench("nosuch", "--frames", "2")
    assert proc.returncode == 2 and proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert "invalid choice: 'nosuch'" in last and "'review-load'" in last, proc.stderr
    proc = _bench()
    assert proc.returncode == 2
    assert "required: SUBCOMMAND" in proc.stderr.strip().splitlines()[-1], proc.stderr


@pytest.mark.slow
def test_a_bad_option_value_is_a_usage_error_before_any_work():
    proc = _bench("pipeline", "--sizes", "1mp,3mp")
    assert proc.returncode == 2 and proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert "--sizes" in last and "unknown ['3mp']" in last and "'24mp'" in last, proc.stderr


@pytest.mark.slow
def test_hints_on_a_tiny_photo_prints_its_timings(tmp_path):
    photo = tmp_path / "tiny photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photo)
    before = photo.read_bytes()
    proc = _bench("hints", str(photo), "--side", "32", "--hints", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "32x32, 1 hints, best of 3, torch threads 1"
    assert [line[:18] for line in lines[1:]] == [
        "working  no hints ",
        "working  1 hints  ",
        "full     no hints ",
        "full     1 hints  ",
    ]
    for line in lines[1:]:
        words = line[18:].split()
        stages = dict(zip(words[::2], map(float, words[1::2]), strict=True))
        assert {"prepare", "network", "reconstruct", "total"} <= set(stages)
        assert stages["total"] > 0
    assert photo.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [photo.name]
