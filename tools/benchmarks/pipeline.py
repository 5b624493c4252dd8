"""Benchmark one colorization through the public API on CPU; prints a Markdown report.

Every (width, size, instances) configuration runs in a fresh subprocess (``--one``) so
its peak memory is its own. Per configuration: 1 warm-up, then ``--repeats`` timed runs
(1 run when the warm-up took longer than ``--slow`` seconds). Not a test.

    .venv/bin/python tools/bench.py pipeline > /tmp/bench.md
    .venv/bin/python tools/bench.py pipeline --quick

Before/after: ``--before DIR`` also runs every configuration with the instacolor
package in ``DIR`` (e.g. ``git archive OLD instacolor | tar -x -C DIR``), alternating
before and after children (``--pairs`` times) and keeping each side's minimum (CPU s:
the process's user + system time during the colorization, steadier than wall time on a
shared machine).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .common import (
    ROOT,
    SEED,
    entry_command,
    other_cores,
    own_cpu_s,
    random_boxes,
    stamp,
    synthetic_gray,
)

SIZES = {"1mp": (800, 1280), "24mp": (4000, 6000)}  # (H, W)
STAGES = ("prepare", "network", "reconstruct")
DEFAULT_WIDTH = 16  # width of weights="default" (instacolor-untrained-w16)


def rss_mib(field: str = "VmRSS") -> float:
    """A ``/proc/self/status`` memory field in MiB (VmRSS now, VmHWM peak)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(x.split()[1]) / 1024 for x in lines if x.startswith(field + ":"))


def weights_file(width: int, cache: Path) -> Path:
    """Seeded random ``InstColorNet(width)`` written once as float32 safetensors."""
    import torch

    from instacolor.models.network import InstColorNet
    from instacolor.weights import save_safetensors

    path = cache / f"instcolor-random-w{width}-seed{SEED}.safetensors"
    if not path.is_file():
        torch.manual_seed(SEED)
        net = InstColorNet(width).eval()
        save_safetensors(net, path, name=f"bench-random-w{width}", dtype=torch.float32)
    return path


def working_size_of(args: argparse.Namespace, width: int) -> int:
    """``--working-size`` if given, else the width's entry of ``--working-sizes``."""
    if args.working_size:
        return args.working_size
    sizes = dict(csv(item.replace(":", ","), int) for item in args.working_sizes.split(","))
    return sizes.get(width, 256)


def run_one(args: argparse.Namespace) -> dict:
    """Child: one configuration; returns timings and memory as a dict."""
    import torch

    torch.set_num_threads(args.threads)
    from instacolor import Colorizer
    from instacolor.errors import UntrainedWeightsWarning

    width, size, n = int(args.one[0]), args.one[1], int(args.one[2])
    weights = "default" if width == DEFAULT_WIDTH else weights_file(width, args.cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        colorizer = Colorizer(weights, working_size=working_size_of(args, width))
    assert colorizer.net.width == width, (colorizer.net.width, width)
    h, w = SIZES[size]
    image = synthetic_gray(h, w)
    boxes = random_boxes(n, h, w)
    rss_load = rss_mib()
    # Reset the high-water mark (VmHWM, and ru_maxrss with it) so the peak is the runs' own.
    Path("/proc/self/clear_refs").write_text("5")

    def once() -> tuple[float, dict]:
        t, cpu = time.perf_counter(), own_cpu_s()
        res = colorizer.colorize_full(image, instances=boxes if n else None)
        return time.perf_counter() - t, {**res.timings, "cpu": own_cpu_s() - cpu}

    since = stamp()
    warm, _ = once()
    repeats = 1 if warm > args.slow else args.repeats
    runs = [once() for _ in range(repeats)]
    return {
        "width": width,
        "size": size,
        "n": n,
        "hw": [h, w],
        "warmup_s": warm,
        "runs": len(runs),
        "total": statistics.median(r[0] for r in runs),
        **{s: statistics.median(r[1][s] for r in runs) for s in (*STAGES, "cpu")},
        "rss_load_mib": rss_load,
        "peak_mib": rss_mib("VmHWM"),
        "other_cores": other_cores(since),
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(cmd: list[str], args: argparse.Namespace) -> dict | str:
    """Run one configuration child, waiting for a quiet machine; rerun it (up to
    ``--retries`` times) when other processes took > 0.25 core; keep the quietest."""
    best: dict | None = None
    for _ in range(args.retries + 1):
        deadline = time.monotonic() + args.wait_idle
        while time.monotonic() < deadline and other_cores() > 0.3:
            pass
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            return f"rc {proc.returncode}"
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or r["other_cores"] < best["other_cores"]:
            best = r
        if best["other_cores"] <= 0.25:
            break
    return best


def child_command(args: argparse.Namespace, width: int, size: str, n: int) -> list[str]:
    """The ``--one`` child command of one configuration."""
    return [
        *entry_command("pipeline"),
        *("--one", str(width), size, str(n)),
        *("--repeats", str(args.repeats), "--threads", str(args.threads)),
        *("--working-size", str(working_size_of(args, width)), "--slow", str(args.slow)),
        *("--cache", str(args.cache)),
    ]


def compare(args: argparse.Namespace, widths, sizes, counts) -> list[dict]:
    """Before/after table: children alternate between ``--before``'s package and this one."""
    print(
        "| width | S | size | N | total s before | after | speed-up | network s before "
        "| after | reconstruct s before | after | CPU s before | after | peak - load MiB before "
        "| after |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    before_env = dict(os.environ)
    before_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(args.before.resolve()), os.environ.get("PYTHONPATH")])
    )
    results = []
    for width in widths:
        for size in sizes:
            for n in counts:
                runs: dict[str, list[dict]] = {"before": [], "after": []}
                for _ in range(args.pairs):
                    for side, env in (("before", before_env), ("after", None)):
                        cmd = child_command(args, width, size, n)
                        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                        if proc.returncode:
                            sys.stderr.write(proc.stderr)
                            continue
                        runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                if not (runs["before"] and runs["after"]):
                    print(f"| {width} | | {size} | {n} | FAILED | | | | | | | | |", flush=True)
                    continue
                b, a = (min(runs[k], key=lambda r: r["total"]) for k in ("before", "after"))
                results.append({**a, "before": b})
                cells = [f"{b['total']:.3f}", f"{a['total']:.3f}", f"{b['total'] / a['total']:.2f}"]
                for key in ("network", "reconstruct", "cpu"):
                    cells += [f"{b[key]:.3f}", f"{a[key]:.3f}"]
                for r in (b, a):
                    cells.append(f"{r['peak_mib'] - r['rss_load_mib']:.0f}")
                s = working_size_of(args, width)
                print(f"| {width} | {s} | {size} | {n} | " + " | ".join(cells) + " |", flush=True)
    return results


def linear_fit(ns: list[int], ts: list[float]) -> tuple[float, float, float]:
    """Least squares ``t = a * n + b``; returns (a, b, R^2)."""
    x, y = np.asarray(ns, float), np.asarray(ts, float)
    a, b = np.polyfit(x, y, 1)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - (a * x + b)) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(a), float(b), r2


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def git_rev() -> str:
    cmd = ["git", "describe", "--always", "--dirty"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def source_digest() -> str:
    """sha256 (12 hex) of the installed instacolor sources, to detect edits during a run."""
    import instacolor

    root, digest = Path(instacolor.__file__).parent, hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def csv(text: str, kind=str) -> list:
    return [kind(t) for t in text.split(",") if t.strip()]


def size_list(text: str) -> str:
    """``--sizes`` checked against :data:`SIZES` (an argparse type: a bad name exits 2)."""
    if bad := [s for s in csv(text) if s not in SIZES]:
        raise argparse.ArgumentTypeError(f"unknown {bad}; expected {list(SIZES)}")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py pipeline``."""
    p.add_argument(
        "--widths",
        default="16,64",
        help="generator widths; 16 = Colorizer() default weights, others = seeded "
        "random InstColorNet(width) loaded from safetensors (default 16,64)",
    )
    p.add_argument(
        "--sizes",
        default="1mp,24mp",
        type=size_list,
        help=f"of {','.join(SIZES)} (default 1mp,24mp)",
    )
    p.add_argument("--instances", default="0,1,8,32", help="box counts (default 0,1,8,32)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after 1 warm-up (3)")
    p.add_argument("--slow", type=float, default=20.0, help="warm-up s above which 1 run (20)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    p.add_argument("--working-size", type=int, default=0, help="one working size for all widths")
    p.add_argument(
        "--working-sizes",
        default="16:128,64:256",
        help="working size per width as WIDTH:SIZE,... (default 16:128,64:256; others 256)",
    )
    p.add_argument("--before", type=Path, help="folder holding an older instacolor package")
    p.add_argument("--pairs", type=int, default=1, help="before/after alternations (1)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="before each configuration, wait up to this many seconds for other "
        "processes to use < 0.3 core (120; 0 = never wait)",
    )
    p.add_argument("--retries", type=int, default=2, help="reruns when disturbed (2)")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instacolor-bench",
        help="where the random width-64 weights file is written once",
    )
    p.add_argument("--quick", action="store_true", help="smoke check: w16, 1mp, N 0,1,8, 1 run")
    p.add_argument("--one", nargs=3, metavar=("WIDTH", "SIZE", "N"), help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or, with ``--one``, one configuration's child); exit status."""
    if args.one:
        print(json.dumps(run_one(args)))
        return 0
    if args.quick:
        args.widths, args.sizes, args.instances, args.repeats = "16", "1mp", "0,1,8", 1
    widths, sizes, counts = csv(args.widths, int), csv(args.sizes), csv(args.instances, int)

    import torch

    import instacolor

    for width in widths:  # build the random weights once, outside the timed children
        if width != DEFAULT_WIDTH:
            weights_file(width, args.cache)
    start = time.perf_counter()
    print("# instacolor CPU benchmark\n")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    digest = source_digest()
    print(
        f"- instacolor {instacolor.__version__} (git {git_rev()}, sources {digest}), "
        f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    )
    print(
        f"- CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores available; "
        f"torch threads: {args.threads}"
    )
    print(
        f"- working size {args.working_size or args.working_sizes}; {args.repeats} timed runs "
        "after 1 warm-up "
        f"(1 run when the warm-up exceeds {args.slow:g} s); uint8 grayscale input"
    )
    print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    if args.before:
        results = compare(args, widths, sizes, counts)
        print("\n## Time vs number of instances, after (least squares, min total s)\n")
        print("| width | size | s per instance | intercept s | R^2 |\n|---:|---|---:|---:|---:|")
        for width in widths:
            for size in sizes:
                pts = sorted(
                    (r["n"], r["total"])
                    for r in results
                    if (r["width"], r["size"]) == (width, size)
                )
                if len({q[0] for q in pts}) >= 2:
                    a, b, r2 = linear_fit(*zip(*pts))
                    print(f"| {width} | {size} | {a:.4f} | {b:.3f} | {r2:.4f} |")
        print(f"\nBenchmark wall time: {time.perf_counter() - start:.0f} s")
        return 0
    print(
        "| width | size | N | runs | total s | prepare s | network s | reconstruct s "
        "| RSS after load MiB | peak RSS MiB | peak - load MiB | other load |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for width in widths:
        for size in sizes:
            for n in counts:
                cmd = child_command(args, width, size, n)
                r = measure(cmd, args)
                if isinstance(r, str):
                    print(f"| {width} | {size} | {n} | FAILED ({r}) | | | | | | | | |", flush=True)
                    continue
                results.append(r)
                peak, (h, w) = r["peak_mib"], r["hw"]
                print(
                    f"| {width} | {size} ({w}x{h}) | {n} | {r['runs']} | {r['total']:.3f} "
                    f"| {r['prepare']:.3f} | {r['network']:.3f} | {r['reconstruct']:.3f} "
                    f"| {r['rss_load_mib']:.0f} | {peak:.0f} "
                    f"| {peak - r['rss_load_mib']:.0f} | {r['other_cores']:.2f} |",
                    flush=True,
                )
    print(
        "\nPeak RSS is the process high-water mark (VmHWM) reset after model load and "
        "image synthesis, so it covers the warm-up and timed colorizations only. "
        "Other load: cores busy with other processes during those runs (0 = quiet machine).\n"
    )
    print("## Time vs number of instances (least squares, median total s)\n")
    print("| width | size | fit over N | s per instance | intercept s | R^2 |")
    print("|---:|---|---|---:|---:|---:|")
    for width in widths:
        for size in sizes:
            rows = sorted(
                (r["n"], r["total"]) for r in results if r["width"] == width and r["size"] == size
            )
            for label, pts in (("all", rows), ("N >= 1", [q for q in rows if q[0] >= 1])):
                if len({q[0] for q in pts}) < 2:
                    continue
                a, b, r2 = linear_fit(*zip(*pts))
                ns = ",".join(str(q[0]) for q in pts)
                print(f"| {width} | {size} | {label} ({ns}) | {a:.4f} | {b:.3f} | {r2:.4f} |")
    print(f"\nBenchmark wall time: {time.perf_counter() - start:.0f} s")
    if source_digest() != digest:
        print(
            f"\n**WARNING: instacolor sources changed during the run** ({digest} -> "
            f"{source_digest()}): rows may mix code versions; run again."
        )
    return 0
