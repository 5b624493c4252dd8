"""``instacolor export``: the networks as ONNX graphs, checked, optionally compared with torch.

    instacolor export --weights default --out exported/default --verify
    instacolor export --weights path/to/checkpoints/coco_finetuned_mask_256_ffs \
        --out exported/official --verify

Writes ``full.onnx``, ``instance.onnx``, ``fusion.onnx`` (and the ``_semantic`` variants
when the weights condition on semantic maps) plus ``instacolor-onnx.json``; inputs and
outputs are documented in :mod:`instacolor.runtime.export`. ``--verify`` runs onnxruntime
and torch on the same random inputs with 0, 1 and 8 instances, prints the largest
differences (network units) and exits 1 when one reaches 1e-4.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

__all__ = ["PARITY_TOLERANCE", "add_export_parser", "run_export"]

#: The largest onnxruntime - torch difference ``--verify`` accepts (network units).
PARITY_TOLERANCE = 1e-4


def add_export_parser(commands) -> argparse.ArgumentParser:
    """Add ``instacolor export`` to the subcommands of the ``instacolor`` parser."""
    from instacolor.cli.arguments import positive
    from instacolor.runtime.export import ONNX_OPSET

    p = commands.add_parser(
        "export",
        help="export the networks to ONNX (for --backend onnxruntime and other runtimes)",
        description="Export the networks to ONNX graphs, check them, and (--verify) compare "
        "onnxruntime with torch on random inputs.",
    )
    p.add_argument("--weights", default="default", help="name, .safetensors or folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--opset", type=positive, default=ONNX_OPSET, help="ONNX opset")
    p.add_argument(
        "--working-size", type=positive, default=64, help="example and --verify input size"
    )
    p.add_argument("--verify", action="store_true", help="compare onnxruntime with torch")
    p.add_argument("--threads", type=positive, help="torch and onnxruntime CPU threads")
    return p


def run_export(args: argparse.Namespace) -> int:
    """Run ``instacolor export`` with parsed ``args``; 0 when done, 1 when --verify fails.

    Errors (unknown weights, a folder that cannot be written, a missing onnx package)
    propagate as :class:`~instacolor.errors.InstacolorError` to the command.
    """
    import torch

    from instacolor.errors import UntrainedWeightsWarning
    from instacolor.runtime.export import EXPORTER, MANIFEST_NAME, export_onnx
    from instacolor.weights import load_weights

    if args.threads:
        torch.set_num_threads(args.threads)
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
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    print(f"exported {loaded.name} (width {manifest['width']}) in {time.perf_counter() - t0:.1f} s")
    print(f"exporter: {EXPORTER}, opset {manifest['opset']}")
    for entry in manifest["graphs"].values():
        mib = (folder / entry["file"]).stat().st_size / 2**20
        inputs, outputs = entry["inputs"], entry["outputs"]
        print(
            f"  {entry['file']:22s} {mib:7.1f} MiB  {', '.join(inputs[:3])}"
            f"{', ...' if len(inputs) > 3 else ''} -> {', '.join(outputs[:2])}"
            f"{', ...' if len(outputs) > 2 else ''}"
        )
    print("onnx.checker: ok (full_check, every graph)")
    if not args.verify:
        return 0
    from instacolor.runtime.parity import onnx_parity

    found = onnx_parity(loaded.net.float().cpu(), folder, args.working_size, args.threads or 1)
    for parity in found:
        print(
            f"parity {parity.instances} instances: max |ab diff| {parity.ab:.2e}, "
            f"max |weight diff| {parity.weights:.2e}"
        )
    worst = max(p.worst for p in found)
    if worst >= PARITY_TOLERANCE:
        print(
            f"instacolor: error: onnxruntime differs from torch by {worst:.2e} (>= 1e-4)",
            file=sys.stderr,
        )
        return 1
    return 0
