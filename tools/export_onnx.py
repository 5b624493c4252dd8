"""Export instacolor's networks to ONNX, check them, and compare onnxruntime with torch.

    # the shipped default weights
    python tools/export_onnx.py --weights default --out exported/default --verify
    # InstColorization's official checkpoint folder (three .pth files, width 64)
    python tools/export_onnx.py --weights path/to/checkpoints/coco_finetuned_mask_256_ffs \
        --out exported/official --verify

Writes ``full.onnx``, ``instance.onnx``, ``fusion.onnx`` (and the ``_semantic``
variants when the weights condition on semantic maps) plus ``instacolor-onnx.json``;
inputs and outputs are documented in :mod:`instacolor.runtime.export`. ``--verify`` runs
onnxruntime and torch on the same random inputs with 0, 1 and 8 instances and prints
the largest ab difference (network units).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from instacolor.errors import InstacolorError, UntrainedWeightsWarning
from instacolor.models.placement import placement_cells
from instacolor.runtime import TorchRuntime
from instacolor.runtime.export import EXPORTER, MANIFEST_NAME, ONNX_OPSET, export_onnx
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.structures import NetworkInputs
from instacolor.weights import load_weights

IMAGE = (480, 640)


def verify(net, folder: Path, size: int, threads: int) -> float:
    """Print the ab difference of onnxruntime and torch for 0, 1 and 8 instances."""
    ort_runtime, torch_runtime = OnnxRuntime(folder, threads=threads), TorchRuntime(net)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in (0, 1, 8) if net.with_instances else (0,):
        l_norm = torch.rand(1, 1, size, size, generator=gen) - 0.5
        crops = torch.rand(n, 1, size, size, generator=gen) - 0.5
        x0, y0 = rng.integers(0, 560, n), rng.integers(0, 400, n)
        boxes = np.stack([x0, y0, x0 + rng.integers(8, 80, n), y0 + rng.integers(8, 80, n)], 1)
        inputs = NetworkInputs(
            light=(l_norm[0, 0] * 100 + 50).numpy(),
            l=l_norm.numpy(),
            image_size=IMAGE,
            crops=crops.numpy() if n else None,
            placements=placement_cells(boxes, IMAGE, size) if n else None,
        )
        want, got = torch_runtime.run(inputs), ort_runtime.run(inputs)
        diff = float(np.abs(got.ab - want.ab).max())
        wdiff = max(
            (float(np.abs(a - b).max()) for a, b in zip(got.weights, want.weights)), default=0.0
        )
        worst = max(worst, diff, wdiff)
        print(f"parity {n} instances: max |ab diff| {diff:.2e}, max |weight diff| {wdiff:.2e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="default", help="name, .safetensors or folder")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET)
    parser.add_argument(
        "--working-size", type=int, default=64, help="example and --verify input size"
    )
    parser.add_argument("--verify", action="store_true", help="compare onnxruntime with torch")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            loaded = load_weights(args.weights)
        t0 = time.perf_counter()
        folder = export_onnx(
            loaded,
            args.out,
            working_size=args.working_size,
            opset=args.opset,
            progress=lambda g: print(f"exporting {g} ...", flush=True),
        )
    except InstacolorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    print(f"exported {loaded.name} (width {manifest['width']}) in {time.perf_counter() - t0:.1f} s")
    print(f"exporter: {EXPORTER}, opset {manifest['opset']}")
    for entry in manifest["graphs"].values():
        mib = (folder / entry["file"]).stat().st_size / 2**20
        print(
            f"  {entry['file']:22s} {mib:7.1f} MiB  {', '.join(entry['inputs'][:3])}"
            f"{', ...' if len(entry['inputs']) > 3 else ''} -> {', '.join(entry['outputs'][:2])}"
            f"{', ...' if len(entry['outputs']) > 2 else ''}"
        )
    print("onnx.checker: ok (full_check, every graph)")
    if args.verify:
        worst = verify(loaded.net.float().cpu(), folder, args.working_size, args.threads or 1)
        if worst >= 1e-4:
            print(
                f"error: onnxruntime differs from torch by {worst:.2e} (>= 1e-4)", file=sys.stderr
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
