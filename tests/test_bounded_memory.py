"""Memory of ``instacolor colorize`` stays proportional to the pixels of one scan.

The networks run at the working size, so only the full-resolution steps (decode, L
plane, banded reconstruction, the RGB result and its encoding) grow with the scan. The
real CLI colorizes a tiny and a 36 MP 16-bit gray TIFF in two subprocesses; the extra
peak RSS of the large one (``ru_maxrss`` from :func:`os.wait4`) must stay under
:data:`BYTES_PER_PIXEL` a pixel. Measured at the time of writing: about 13 bytes a pixel
(the uint16 samples 2, float32 L 4, uint16 RGB 6, and one reconstruction band).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

#: Allowed peak RSS above the tiny run, per input pixel, for a 16-bit gray TIFF.
BYTES_PER_PIXEL = 20
LARGE = (6000, 6000)  # (H, W): 36 MP, a 72 MB input and a 216 MB output
ARGS = ["--weights", "instacolor-untrained-w16", "--working-size", "64", "--threads", "1"]


def _gray16(h: int, w: int) -> np.ndarray:
    """A smooth 16-bit gray gradient with a little noise, built row band by row band."""
    out = np.empty((h, w), np.uint16)
    x = np.linspace(0.25, 0.65, w, dtype=np.float32)
    rng = np.random.default_rng(0)
    for r0 in range(0, h, 1000):
        r1 = min(h, r0 + 1000)
        y = np.linspace(r0 / h, r1 / h, r1 - r0, dtype=np.float32)[:, None] * 0.1
        noise = rng.standard_normal((r1 - r0, w), dtype=np.float32) * 0.005
        out[r0:r1] = np.round((x + y + noise).clip(0, 1) * 65535).astype(np.uint16)
    return out


def _peak_rss_mib(folder: Path, outdir: Path, tmp_path: Path) -> float:
    """Run the CLI on ``folder``; the peak RSS of its process in MiB."""
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(INSTACOLOR_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        env[var] = "http://127.0.0.1:9"  # nothing is downloaded
    cmd = [sys.executable, "-m", "instacolor", "colorize", str(folder), "-o", str(outdir)]
    proc = subprocess.Popen(
        [*cmd, *ARGS, "--no-progress"], env=env, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, stderr
    records = [json.loads(line) for line in (outdir / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["done"], records
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
def test_peak_memory_grows_by_a_bounded_number_of_bytes_per_pixel(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    tifffile.imwrite(small / "tiny.tif", _gray16(48, 64), photometric="minisblack")
    tifffile.imwrite(large / "big.tif", _gray16(*LARGE), photometric="minisblack")
    base = _peak_rss_mib(small, tmp_path / "out-small", tmp_path)
    peak = _peak_rss_mib(large, tmp_path / "out-large", tmp_path)
    out = tmp_path / "out-large" / "big.tif"
    assert tifffile.TiffFile(out).pages[0].shape == (*LARGE, 3)
    pixels = LARGE[0] * LARGE[1]
    per_pixel = (peak - base) * 2**20 / pixels
    assert per_pixel <= BYTES_PER_PIXEL, (
        f"colorizing a {pixels / 1e6:.0f} MP 16-bit gray TIFF took {peak - base:.0f} MiB over "
        f"the {base:.0f} MiB of a tiny one: {per_pixel:.1f} bytes/pixel, expected at most "
        f"{BYTES_PER_PIXEL}; a full-resolution step is no longer banded or float32"
    )
