"""Synthetic inputs of the CPU benchmarks: a seeded grayscale scene and boxes on it.

``tools/bench.py``, ``tools/bench_onnx.py``, ``tools/bench_reference.py`` and
``tools/profile_inference.py`` colorize the same deterministic image and boxes, so their
timings are comparable. Pure NumPy; imports nothing of instacolor.

    >>> synthetic_gray(4, 6).shape, random_boxes(3, 40, 60).shape
    ((4, 6), (3, 4))
"""

from __future__ import annotations

import numpy as np

SEED = 0


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
