"""Benchmark Ray Data batches (:func:`instacolor.batch.ray.run_ray`) with 1 and 2 actors.

Writes ``--count`` synthetic gray 640x480 8-bit JPEGs (the smooth gradients, soft blobs
and hard-edged shapes of the ``batch`` benchmark, deterministic) to a temporary folder,
starts one local Ray instance (``num_cpus`` = the most actors x ``--threads``; its start-up
is timed and printed apart), then colorizes the folder with 1 and then 2 actors, each with
``--threads`` torch threads, ``weights="default"``, working size 256 and no detector,
into a fresh output folder each time. Per run: the wall time from the call to the last
record (actor start-up, imports and model load included), the time to the first record,
images/min and seconds per image over the whole run and in the steady state (first to
last record). Prints Markdown. Not a test.

    .venv/bin/python tools/bench.py ray > /tmp/bench_ray.md            # 100 images
    .venv/bin/python tools/bench.py ray --count 20                     # a quick check
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .common import Scenario, cpu_busy_s, load_avg, write_inputs

if TYPE_CHECKING:
    from instacolor.batch.manifest import Record
    from instacolor.batch.worker import Settings


def run_once(settings: Settings, src: Path, out: Path, workers: int, chunk: int) -> dict:
    """Colorize ``src`` into ``out`` on ``workers`` actors; timings and status counts."""
    from instacolor.batch.jobs import discover
    from instacolor.batch.ray import run_ray

    jobs, _ = discover([str(src)], None, out, None)
    stamps: list[float] = []
    statuses: dict[str, int] = {}

    def on_record(record: Record) -> None:
        stamps.append(time.perf_counter())
        statuses[record.status] = statuses.get(record.status, 0) + 1

    t0, busy0 = time.perf_counter(), cpu_busy_s()
    run_ray(settings, jobs, workers=workers, chunk=chunk, on_record=on_record)
    busy = (cpu_busy_s() - busy0) / (time.perf_counter() - t0)
    n = len(stamps)
    wall = stamps[-1] - t0
    steady = stamps[-1] - stamps[0]
    return {
        "workers": workers,
        "chunk": chunk,
        "busy": busy,
        "images": n,
        "statuses": statuses,
        "wall": wall,
        "first": stamps[0] - t0,
        "per_min": 60 * n / wall,
        "per_image": wall / n,
        "steady_per_min": 60 * (n - 1) / steady if n > 1 and steady > 0 else float("nan"),
        "steady_per_image": steady / (n - 1) if n > 1 else float("nan"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py ray``."""
    parser.add_argument("--count", type=int, default=100, help="number of images (100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per actor (1)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="actors (1 2)")
    parser.add_argument("--chunk", type=int, default=1, help="images per actor task (1)")


def run(args: argparse.Namespace) -> int:
    """Time the batch on each number of actors; 0 when every image was done."""
    import ray

    from instacolor.batch.worker import Settings

    warnings.simplefilter("ignore")
    settings = Settings(
        weights="default",
        device="cpu",
        working_size=256,
        detector=None,
        max_pixels=None,
        force=False,
        overwrite=False,
        format=None,
        threads=args.threads,
    )
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        src = Path(tmp) / "in"
        write_inputs(Scenario("ray", args.count, 640, 480, 8, "jpeg"), src)
        cpus = max(args.workers) * args.threads
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
        startup = time.perf_counter() - t0
        try:
            results = [
                run_once(settings, src, Path(tmp) / f"out{w}", w, args.chunk) for w in args.workers
            ]
        finally:
            ray.shutdown()

    print("## Ray Data batches (issue 6)\n")
    print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average after the runs {load_avg()}")  # fmt: skip
    print(f"- Ray {ray.__version__}, local instance with {cpus} CPUs, started in {startup:.1f} s")
    print(f"- {args.count} images 640x480 8-bit JPEG, weights default, working size 256, "
          f"{args.threads} torch thread(s) per actor, no detector\n")  # fmt: skip
    print("| actors | chunk | images | wall s | first record s | img/min | s/img | "
          "steady img/min | steady s/img | machine cores busy | statuses |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        status = ", ".join(f"{v} {k}" for k, v in sorted(r["statuses"].items()))
        print(
            f"| {r['workers']} | {r['chunk']} | {r['images']} | {r['wall']:.1f} | "
            f"{r['first']:.1f} | {r['per_min']:.1f} | {r['per_image']:.3f} | "
            f"{r['steady_per_min']:.1f} | {r['steady_per_image']:.3f} | {r['busy']:.2f} | "
            f"{status} |"
        )
    ok = all(r["statuses"] == {"done": args.count} for r in results)
    return 0 if ok else 1
