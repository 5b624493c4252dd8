"""What several benchmarks share: paths, machine load readings and synthetic inputs.

* :func:`synthetic_gray` and :func:`random_boxes`: the seeded grayscale scene and boxes that
  ``pipeline``, ``onnx``, ``reference`` and ``profile`` colorize, so their timings are
  comparable.
* :class:`Scenario` and :func:`write_inputs`: the synthetic gray "photographs" (gradients,
  soft blobs, hard-edged shapes, noise) that ``batch`` and ``ray`` write to disk.
* :func:`cpu_busy_s`, :func:`stamp`, :func:`other_cores`, :func:`load_avg`: how busy the
  machine was while a benchmark ran.

Pure NumPy, PIL and tifffile; imports nothing of instacolor.

    >>> synthetic_gray(4, 6).shape, random_boxes(3, 40, 60).shape
    ((4, 6), (3, 4))
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The repository root (``tools/benchmarks/common.py`` is two folders below it).
ROOT = Path(__file__).resolve().parents[2]
#: The benchmarks' entry point, ``tools/bench.py``.
ENTRY = ROOT / "tools" / "bench.py"
SEED = 0
BAND_ROWS = 1024  # rows synthesised at a time, so big inputs stay cheap for this process


def entry_command(subcommand: str) -> list[str]:
    """``[python, tools/bench.py, subcommand]``: how a benchmark starts a child of itself."""
    return [sys.executable, str(ENTRY), subcommand]


def synthetic_gray(h: int, w: int, seed: int = SEED) -> np.ndarray:
    """Smooth gradients, six soft blobs and Gaussian noise (sigma 6) as uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.linspace(0, 1, h, dtype=np.float32)[:, None], np.linspace(0, 1, w, dtype=np.float32)
    v = 0.35 * x + 0.25 * y + 0.1 * np.sin(12 * x + 7 * y)
    for cx, cy in rng.uniform(0, 1, (6, 2)).astype(np.float32):
        v += 0.15 * np.exp(-40 * (y - cy) ** 2) * np.exp(-40 * (x - cx) ** 2)
    v = v * 200 + 20 + rng.standard_normal((h, w), dtype=np.float32) * 6
    return np.clip(v, 0, 255).astype(np.uint8)


def random_boxes(n: int, h: int, w: int, seed: int = SEED) -> np.ndarray:
    """First ``n`` of 32+ fixed XYXY boxes inside the image, sides 5-60 % of the image."""
    rng = np.random.default_rng(seed + 1)
    m = max(n, 32)
    bw = (rng.uniform(0.05, 0.6, m) * w).astype(int)
    bh = (rng.uniform(0.05, 0.6, m) * h).astype(int)
    x0 = (rng.uniform(0, 1, m) * (w - bw)).astype(int)
    y0 = (rng.uniform(0, 1, m) * (h - bh)).astype(int)
    return np.stack([x0, y0, x0 + bw, y0 + bh], axis=1)[:n]


def cpu_busy_s() -> float:
    """Seconds of busy CPU time of the whole machine (all cores), from /proc/stat."""
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def other_cores(since: tuple[float, float, float] | None = None) -> float:
    """Cores used by other processes since ``since`` (a :func:`stamp`), or over 1 s."""
    if since is None:
        since = stamp()
        time.sleep(1.0)
    b0, c0, t0 = since
    return max(0.0, (cpu_busy_s() - b0 - (own_cpu_s() - c0)) / (time.perf_counter() - t0))


def stamp() -> tuple[float, float, float]:
    """(machine busy s, own CPU s, wall clock) now: the start of an :func:`other_cores` span."""
    return cpu_busy_s(), own_cpu_s(), time.perf_counter()


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages, as in /proc/loadavg."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass(frozen=True)
class Scenario:
    """One batch: ``count`` images of ``width`` x ``height`` at ``depth`` bits in ``fmt``."""

    key: str
    count: int
    width: int
    height: int
    depth: int
    fmt: str  # "jpeg" or "tiff"

    @property
    def label(self) -> str:
        mp = self.width * self.height / 1e6
        kind = "JPEG" if self.fmt == "jpeg" else "TIFF"
        return f"{self.key}: {self.width}x{self.height} ({mp:.0f} MP) {self.depth}-bit {kind}"


def synthetic_band(h: int, w: int, r0: int, r1: int, seed: int) -> np.ndarray:
    """Rows ``r0:r1`` of a gray ``(h, w)`` image as float32 in ``[0, 1]``.

    Smooth gradients, a low-frequency wave, six soft blobs, three hard-edged shapes
    (a disc, a rectangle, a bar) and Gaussian noise (sigma 0.025); deterministic per seed.
    """
    shape_rng = np.random.default_rng(seed)
    blobs = shape_rng.uniform(0, 1, (6, 2)).astype(np.float32)
    disc, rect = shape_rng.uniform(0.2, 0.8, 2), shape_rng.uniform(0.1, 0.6, 2)
    y = (np.arange(r0, r1, dtype=np.float32) / max(h - 1, 1))[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    v = 0.3 * x + 0.25 * y + 0.08 * np.sin(11 * x + 6 * y + seed)
    for cx, cy in blobs:
        v = v + 0.15 * np.exp(-40 * (y - cy) ** 2) * np.exp(-40 * (x - cx) ** 2)
    v = v + 0.2 * (((x - disc[0]) ** 2 + (y - disc[1]) ** 2) < 0.02)
    v = v - 0.15 * ((abs(x - rect[0] - 0.1) < 0.1) & (abs(y - rect[1] - 0.15) < 0.15))
    v = v + 0.1 * (abs(y - 0.85) < 0.01)
    noise = np.random.default_rng([seed, r0]).standard_normal((r1 - r0, w), dtype=np.float32)
    return np.clip(0.1 + 0.8 * v + 0.025 * noise, 0, 1)


def synthetic(h: int, w: int, depth: int, seed: int) -> np.ndarray:
    """A full ``(h, w)`` gray image, uint8 or uint16, built band by band."""
    dtype, top = (np.uint8, 255) if depth == 8 else (np.uint16, 65535)
    out = np.empty((h, w), dtype)
    for r0 in range(0, h, BAND_ROWS):
        r1 = min(h, r0 + BAND_ROWS)
        out[r0:r1] = np.round(synthetic_band(h, w, r0, r1, seed) * top).astype(dtype)
    return out


def write_inputs(s: Scenario, folder: Path) -> list[Path]:
    """Write the scenario's images into ``folder``; the first is synthesised, the rest vary."""
    import tifffile
    from PIL import Image

    folder.mkdir(parents=True)
    paths = []
    base = synthetic(s.height, s.width, s.depth, SEED) if s.count > 8 else None
    for i in range(s.count):
        if base is None:
            img = synthetic(s.height, s.width, s.depth, SEED + i)
        else:  # many small images: shift and flip one synthesis (cheap, still distinct)
            img = np.roll(base, 37 * i, axis=1)
            img = img[::-1] if i % 2 else img
        if s.fmt == "jpeg":
            path = folder / f"img{i:04d}.jpg"
            Image.fromarray(np.ascontiguousarray(img)).save(path, quality=92)
        else:
            path = folder / f"img{i:04d}.tif"
            tifffile.imwrite(path, img, photometric="minisblack")
        paths.append(path)
    return paths
