"""Throughput and peak memory of ``instacolor video`` (end to end: decode, colorize, encode).

For each size, writes an N-frame gray H.264 clip (a slow pan over a textured scene) to a
temporary folder, then in a fresh process loads the colorizer and times
:func:`instacolor.video.colorize_video` on it (stabilised by default). Prints frames per
second of wall time, frames per CPU-second of the process (what the run costs when the
machine is shared) and the process's peak resident memory.

Usage:
    python tools/bench.py video [--frames 24] [--sizes 640x360,1920x1080] [--threads 2]
        [--no-stabilize]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import entry_command


def _scene(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    big = np.zeros((height, width * 2), np.float32)
    yy, xx = np.mgrid[0:height, 0 : width * 2]
    for _ in range(40):
        cx, cy, r = rng.uniform(0, width * 2), rng.uniform(0, height), rng.uniform(20, height / 3)
        big[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(30, 230)
    big += 12 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    return np.clip(big, 0, 255).astype(np.uint8)


def write_clip(path: Path, width: int, height: int, frames: int) -> None:
    import av

    scene = _scene(width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            x0 = int(i * width / (2 * frames))
            gray = np.ascontiguousarray(scene[:, x0 : x0 + width])
            frame = av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def child(clip: Path, out: Path, threads: int, stabilize: bool) -> None:
    import torch

    from instacolor import Colorizer
    from instacolor.video import colorize_video

    torch.set_num_threads(threads)
    colorizer = Colorizer()
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = colorize_video(clip, out, colorizer=colorizer, stabilize=stabilize)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "frames": report.frames, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "fps_wall": round(report.frames / wall, 2), "fps_per_cpu_s": round(report.frames / cpu, 2),
        "peak_rss_mib": round(peak),
    }))  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py video``."""
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--sizes", default="640x360,1920x1080")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-stabilize", action="store_true")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Time each size in a fresh child (or, with ``--child``, be that child)."""
    if args.child:
        child(*args.child, args.threads, not args.no_stabilize)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            clip, out = Path(folder) / f"in{size}.mp4", Path(folder) / f"out{size}.mp4"
            write_clip(clip, width, height, args.frames)
            command = [*entry_command("video"), "--child", str(clip), str(out),
                       "--threads", str(args.threads)]  # fmt: skip
            if args.no_stabilize:
                command.append("--no-stabilize")
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            print(size, "stabilised" if not args.no_stabilize else "per-frame",
                  result.stdout.strip(), flush=True)  # fmt: skip

    return 0
