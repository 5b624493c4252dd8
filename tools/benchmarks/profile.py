"""Per-operator CPU profile of one network run and of the reconstruction; prints Markdown.

Builds a seeded random ``InstColorNet(width)`` (timings do not depend on the values),
prepares one synthetic gray image with N fixed boxes through ``prepare_inputs`` and
profiles ``TorchRuntime.run`` with ``torch.profiler`` (after one warm-up run); then
profiles ``reconstruct`` of a 1 MP image. Not a test.

    .venv/bin/python tools/bench.py profile                 # w16@128 and w64@256, N 0 and 8
    .venv/bin/python tools/bench.py profile --configs 64:256:8 --rows 12
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import random_boxes, synthetic_gray

IMAGE_HW = (800, 1280)  # 1 MP, as the pipeline benchmark


def network_inputs(width_px: int, height_px: int, n: int, working_size: int):
    """``(NetworkInputs, L plane)`` of the synthetic image with its first ``n`` boxes."""
    from instacolor.models.inputs import prepare_inputs
    from instacolor.structures import Instances

    light = synthetic_gray(height_px, width_px).astype(np.float32) * (100.0 / 255.0)
    boxes = random_boxes(n, height_px, width_px).astype(np.float32)
    inst = Instances(boxes=boxes, image_size=(height_px, width_px)) if n else None
    return prepare_inputs(light, inst, None, working_size), light


def operator_table(prof, rows: int) -> str:
    """Top ``rows`` operators by self CPU time as a Markdown table."""
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    lines = ["| operator | calls | self CPU ms | % |", "|---|---:|---:|---:|"]
    for e in events[:rows]:
        ms, pct = e.self_cpu_time_total / 1e3, 100 * e.self_cpu_time_total / total
        lines.append(f"| `{e.key}` | {e.count} | {ms:.1f} | {pct:.1f} |")
    lines.append(f"| (all {len(events)} operators) | | {total / 1e3:.1f} | 100 |")
    return "\n".join(lines)


def profile_network(width: int, size: int, n: int, rows: int, runtime_options: dict) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from instacolor.models.network import InstColorNet
    from instacolor.runtime.torch_runtime import TorchRuntime

    torch.manual_seed(0)
    runtime = TorchRuntime(InstColorNet(width).eval(), **runtime_options)
    inputs, _ = network_inputs(IMAGE_HW[1], IMAGE_HW[0], n, size)
    runtime.run(inputs)  # warm-up (oneDNN primitive creation, allocator)
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runtime.run(inputs)
    wall = time.perf_counter() - t
    head = f"### width {width}, working size {size}, N = {n}: {wall:.3f} s (profiled run)\n"
    return head + "\n" + operator_table(prof, rows)


def profile_reconstruct(rows: int) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from instacolor.reconstruct import reconstruct

    h, w = IMAGE_HW
    light = synthetic_gray(h, w).astype(np.float32) * (100.0 / 255.0)
    gen = torch.Generator().manual_seed(0)
    ab_low = torch.randn(2, 256, 256, generator=gen) * 30
    l_low = torch.nn.functional.interpolate(
        torch.from_numpy(light)[None, None], size=(256, 256), mode="area"
    )[0, 0]
    reconstruct(ab_low, l_low, light, out_dtype=np.uint8)
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        reconstruct(ab_low, l_low, light, out_dtype=np.uint8)
    wall = time.perf_counter() - t
    head = f"### reconstruct, {w}x{h} (1 MP) from 256x256 ab, uint8: {wall:.3f} s\n"
    return head + "\n" + operator_table(prof, rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py profile``."""
    p.add_argument(
        "--configs",
        default="16:128:0,16:128:8,64:256:0,64:256:8",
        help="comma-separated WIDTH:WORKING_SIZE:N (default w16@128 and w64@256, N 0 and 8)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    p.add_argument("--rows", type=int, default=10, help="operators per table (10)")
    p.add_argument("--no-reconstruct", action="store_true", help="skip the 1 MP reconstruction")
    p.add_argument(
        "--runtime",
        default="",
        help="TorchRuntime keyword options as k=v,k=v (e.g. fold=0,channels_last=1)",
    )


def run(args: argparse.Namespace) -> int:
    """Profile each configuration (and the reconstruction); prints the tables."""
    import torch

    torch.set_num_threads(args.threads)
    options = {}
    for item in filter(None, args.runtime.split(",")):
        key, value = item.split("=", 1)
        options[key] = value if not value.isdigit() else bool(int(value))
    print(f"torch {torch.__version__}, {args.threads} threads, runtime options {options}\n")
    for config in args.configs.split(","):
        width, size, n = (int(v) for v in config.split(":"))
        print(profile_network(width, size, n, args.rows, options) + "\n", flush=True)
    if not args.no_reconstruct:
        print(profile_reconstruct(args.rows))
    return 0
