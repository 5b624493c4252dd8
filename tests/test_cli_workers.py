"""``instacolor colorize --workers N`` when a worker process dies (killed for memory, crashed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import FAST, read_manifest

DIED = "the worker process died while colorizing this image"


def _workers(pid: int) -> list[int]:
    """The pool's worker processes among ``pid``'s children (not the resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in children.read_text().split() if children.exists() else []:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


@pytest.mark.slow
def test_a_killed_worker_fails_its_images_the_batch_goes_on_and_resume_finishes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # ~2 MP each: slow enough to be caught in the middle of the batch
        gray = np.clip(rng.normal(128, 40, (1200, 1600)), 0, 255).astype(np.uint8)
        Image.fromarray(gray).save(src / f"img{i:02d}.png", compress_level=1)
    out = tmp_path / "out"
    env = {**os.environ, "INSTACOLOR_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "instacolor", "colorize", str(src), "-o", str(out),
            "--workers", "2", *FAST]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = out / "manifest.jsonl"
    killed = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and killed is None:
        workers = _workers(proc.pid)
        if workers and manifest.is_file() and manifest.read_text().count("\n") >= 1:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=300)
    assert killed is not None, "the batch ended before a worker could be killed"
    records = read_manifest(out)
    assert sorted(Path(r["input"]).name for r in records) == sorted(p.name for p in src.iterdir())
    statuses = Counter(r["status"] for r in records)
    died = [r for r in records if r["status"] == "failed"]
    assert died and all(r["error"].startswith(DIED) for r in died), died
    assert statuses["done"] + len(died) == 12
    assert proc.returncode == 1 and b"FAILED" in stderr
    assert not list(out.rglob("*.tmp"))
    for record in records:  # what was done is complete, what died left no output
        assert (out / Path(record["input"]).name).exists() == (record["status"] == "done")

    resumed = subprocess.run(
        [*args, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    last = read_manifest(out)[len(records) :]
    assert Counter(r["status"] for r in last) == {
        "done": len(died),
        "skipped-complete": statuses["done"],
    }
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in src.iterdir())
