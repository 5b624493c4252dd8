"""Helpers of the CLI tests: small gray images, running ``python -m instacolor``, its output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: Options that keep a CLI run to a few seconds: untrained compact weights at size 64.
FAST = [
    "--weights", "instacolor-untrained-w16", "--working-size", "64", "--threads", "1",
    "--no-progress",
]  # fmt: skip


def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment of the CLI: caches under ``tmp_path``, every download refused at once."""
    values = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    values.update(
        INSTACOLOR_CACHE=str(tmp_path / "cache"),
        TORCH_HOME=str(tmp_path / "torch"),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",  # the test machine's cores are shared
    )
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        values[var] = "http://127.0.0.1:9"
    return values


def run_cli(env, *args, preexec_fn=None) -> subprocess.CompletedProcess:
    """Run ``python -m instacolor ARGS`` in a subprocess, capturing its text output."""
    return subprocess.run(
        [sys.executable, "-m", "instacolor", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=preexec_fn,
    )


def gray_ramp(h=48, w=64, seed=0) -> np.ndarray:
    """A ``(h, w)`` uint8 diagonal ramp, different for each ``seed``."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 2 + seed * 17) % 256).astype(np.uint8)


def write_png(path: Path, gray: np.ndarray) -> Path:
    """Save ``gray`` as a PNG at ``path`` (making its folder); ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path)
    return path


def read_manifest(outdir: Path) -> list[dict]:
    """The records of ``outdir/manifest.jsonl``, blank lines left out."""
    lines = (outdir / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``folder`` (links left out), by path."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def by_input_name(records: list[dict]) -> dict[str, dict]:
    """Manifest records by the file name of their input."""
    return {Path(r["input"]).name: r for r in records}
