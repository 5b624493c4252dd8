"""Benchmark archival batches through the real ``instacolor colorize`` CLI; prints Markdown.

Inputs are synthetic gray "photographs" (gradients, soft blobs, a few hard-edged shapes,
Gaussian noise) written to a temporary folder, never downloaded. Each scenario runs the
CLI once as a subprocess (``python -m instacolor colorize ... --weights default
--detector none --workers 1 --threads 2 --no-progress``) and reports its wall time
(imports and model load included) and the peak resident memory of the CLI process, read
from :func:`os.wait4` (``ru_maxrss`` of that child and anything it waited for). Not a test.

Scenarios:

* **a**: 200 images of 1155x866 (1 MP), 8-bit gray JPEG (quality 92).
* **b**: 5 images of 6000x4000 (24 MP), 16-bit gray TIFF (uncompressed).
* **c**: 1 image of 12000x8334 (100 MP), 16-bit gray TIFF (uncompressed): its peak RSS
  must stay under 4 GiB (``--limit-mib``); the script exits 1 otherwise.

    .venv/bin/python tools/bench.py batch > /tmp/bench_batch.md
    .venv/bin/python tools/bench.py batch --quick          # 20 x 1 MP, 2 x 24 MP, 1 x 25 MP
    .venv/bin/python tools/bench.py batch --only c
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, Scenario, load_avg, write_inputs

MIB = 1 << 20

FULL = {
    "a": Scenario("a", 200, 1155, 866, 8, "jpeg"),
    "b": Scenario("b", 5, 6000, 4000, 16, "tiff"),
    "c": Scenario("c", 1, 12000, 8334, 16, "tiff"),
}
QUICK = {
    "a": Scenario("a", 20, 1155, 866, 8, "jpeg"),
    "b": Scenario("b", 2, 6000, 4000, 16, "tiff"),
    "c": Scenario("c", 1, 6000, 4167, 16, "tiff"),
}


def run_cli(inputs: Path, outdir: Path, threads: int) -> dict:
    """Run the CLI on ``inputs``; wall time, exit status and peak RSS of the process."""
    cmd = [sys.executable, "-m", "instacolor", "colorize", str(inputs), "-o", str(outdir)]
    cmd += ["--weights", "default", "--detector", "none", "--workers", "1"]
    cmd += ["--threads", str(threads), "--no-progress", "--working-size", "256"]  # as measured
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else ""
    return {
        "cmd": cmd,
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "stderr_tail": stderr.strip().splitlines()[-3:],
    }


def manifest_counts(outdir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in (outdir / "manifest.jsonl").read_text().splitlines():
        status = json.loads(line)["status"]
        counts[status] = counts.get(status, 0) + 1
    return counts


def manifest_timings(outdir: Path) -> dict[str, float]:
    """Sums of the per-image read / colorize / write seconds in the manifest."""
    sums: dict[str, float] = {}
    for line in (outdir / "manifest.jsonl").read_text().splitlines():
        for key, value in (json.loads(line).get("timings") or {}).items():
            sums[key] = sums.get(key, 0.0) + value
    return sums


def git_rev() -> str:
    cmd = ["git", "rev-parse", "--short", "HEAD"]
    rev = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{rev}{' (+ uncommitted changes)' if dirty else ''}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py batch``."""
    p.add_argument("--only", choices=sorted(FULL), action="append", help="run only these")
    p.add_argument("--quick", action="store_true", help="smaller batches (see above)")
    p.add_argument("--threads", type=int, default=2, help="--threads of the CLI (2)")
    p.add_argument("--limit-mib", type=float, default=4096, help="peak RSS bound of c (4096)")
    p.add_argument("--tmp", help="parent of the temporary folder (default $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")


def run(args: argparse.Namespace) -> int:
    """Run the scenarios; 0 when every one succeeded (and c stayed under its bound)."""
    table = QUICK if args.quick else FULL
    keys = sorted(set(args.only or table))
    tmp = Path(tempfile.mkdtemp(prefix="instacolor-bench-batch-", dir=args.tmp))
    free = shutil.disk_usage(tmp).free / 2**30
    print("# Archival batch benchmark\n")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, git {git_rev()}")
    print(f"- {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"- temp folder {tmp} ({free:.0f} GiB free)\n")
    rows, failed = [], False
    try:
        for key in keys:
            s = table[key]
            t0 = time.perf_counter()
            inputs = write_inputs(s, tmp / key / "in")
            gen_s = time.perf_counter() - t0
            in_mib = sum(x.stat().st_size for x in inputs) / MIB
            before = load_avg()
            res = run_cli(tmp / key / "in", tmp / key / "out", args.threads)
            after = load_avg()
            counts = manifest_counts(tmp / key / "out") if res["rc"] in (0, 1) else {}
            sums = manifest_timings(tmp / key / "out") if counts else {}
            done = counts.get("done", 0)
            ok = res["rc"] == 0 and done == s.count
            if key == "c" and res["peak_rss_mib"] > args.limit_mib:
                ok = False
            failed |= not ok
            print(f"## {s.label}\n")
            print(f"- inputs: {s.count} files, {in_mib:.0f} MiB, synthesised in {gen_s:.1f} s")
            print(f"- command: `{' '.join(res['cmd'])}`")
            print(f"- exit {res['rc']}, manifest {counts}")
            print(f"- load average (1/5/15 min) before: {before}; after: {after}")
            print(f"- CPU user {res['user_s']:.1f} s, sys {res['sys_s']:.1f} s")
            print(f"- per-image sums (s): {', '.join(f'{k} {v:.1f}' for k, v in sums.items())}")
            if not ok:
                print(f"- **NOT OK**: {res['stderr_tail']}")
            print()
            rows.append((s, res, ok))
            shutil.rmtree(tmp / key, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("| scenario | images | total pixels | wall s | images/min | peak RSS MiB | ok |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for s, res, ok in rows:
        pixels = s.count * s.width * s.height
        per_min = 60 * s.count / res["wall_s"]
        print(
            f"| {s.label} | {s.count} | {pixels / 1e6:.0f} M | {res['wall_s']:.1f} | "
            f"{per_min:.1f} | {res['peak_rss_mib']:.0f} | {'yes' if ok else 'NO'} |"
        )
    return 1 if failed else 0
