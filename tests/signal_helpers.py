"""Helpers of the signal tests: inputs whose outputs take a while to write, a timed signal."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.cli_helpers import gray_ramp, write_png

#: Small inputs, done in a moment.
SMALL = ["a0.png", "a1.png", "a2.png"]
#: Large inputs: 16-bit noise, whose outputs take a while to encode and write.
LARGE = ["b.png", "c.png"]


def write_inputs(src: Path) -> None:
    """Write the ``SMALL`` gray ramps and the ``LARGE`` 16-bit noise images into ``src``."""
    for k, name in enumerate(SMALL):
        write_png(src / name, gray_ramp(seed=k))
    rng = np.random.default_rng(0)
    for name in LARGE:
        noise = rng.integers(0, 65536, (1600, 1600), dtype=np.uint16)
        Image.fromarray(noise).save(src / name, compress_level=1)


def temp_files(folder: Path) -> list[str]:
    """Names of the ``.tmp`` files in ``folder`` (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return [entry.name for entry in os.scandir(folder) if entry.name.endswith(".tmp")]


def stop_while_writing(proc: subprocess.Popen, out: Path, name: str, kill) -> list[str]:
    """Send the signal as soon as ``name``'s temporary output file exists; its name."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        seen = [t for t in temp_files(out) if t.startswith(f".{name}.")]
        if seen:
            kill()
            return seen
        time.sleep(0.002)
    return []
