"""instacolor against the reference InstColorization networks, on identical weights.

The reference networks are built from the public repository's ``models/networks.py``
(github.com/ericsujw/InstColorization), imported at run time from the path given with
``--reference`` (the repository root or the file itself); nothing of it is copied here.

    git clone https://github.com/ericsujw/InstColorization /tmp/InstColorization
    .venv/bin/python tools/bench_reference.py --reference /tmp/InstColorization

One seeded random ``InstColorNet(64)`` (BatchNorm statistics and affine parameters
randomised too, so that folding them is exercised) is loaded, state dict for state dict
and strictly, into the reference's ``InstanceGenerator`` and ``FusionGenerator``. One
synthetic 256x256 gray image with 8 boxes goes through ``prepare_inputs``; instacolor
runs ``TorchRuntime.run`` on it, the reference ``netG`` on the crops and ``netGF`` on
the image (as its ``FusionModel.forward``), both under ``torch.no_grad`` with 2 threads
in this one process. After one warm-up each, the two alternate ``--repeats`` times
(A, B, A, B) and the minima are compared. Prints times, the ratio and max / mean
``|delta ab|`` in Lab units, for each instacolor configuration asked for. Not a test.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import random_boxes, synthetic_gray  # tools/bench.py, beside this file

from instacolor.color import AB_NORM
from instacolor.models.inputs import prepare_inputs
from instacolor.models.network import InstColorNet
from instacolor.runtime.torch_runtime import TorchRuntime
from instacolor.structures import Instances

SIZE = 256


def load_reference(path: Path):
    """Import the reference ``models/networks.py`` from a repository root or the file."""
    file = path / "models" / "networks.py" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"--reference: expected the InstColorization repository, no {file}")
    spec = importlib.util.spec_from_file_location("instcolorization_networks", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise_batchnorm(net: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters (in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def reference_networks(networks, net: InstColorNet):
    """The reference's instance and fusion generators holding ``net``'s weights."""
    kwargs = {"norm_layer": nn.BatchNorm2d, "use_tanh": True, "classification": False}
    instance = networks.InstanceGenerator(4, 2, **kwargs)
    fusion = networks.FusionGenerator(4, 2, **kwargs)
    instance.load_state_dict(net.instance.state_dict(), strict=True)
    fusion.load_state_dict(net.fusion.state_dict(), strict=True)
    return instance.eval(), fusion.eval()


def reference_run(instance, fusion, inputs, mask_value: float) -> torch.Tensor:
    """The reference ``FusionModel.forward`` on ``inputs``: ab ``(1, 2, S, S)`` in [-1, 1]."""
    crops = torch.from_numpy(inputs.crops)
    light = torch.from_numpy(inputs.l)
    boxes = [[[int(v) for v in row] for row in scale] for scale in inputs.placements]
    with torch.no_grad():
        n = crops.shape[0]
        _, features = instance(
            crops, crops.new_zeros(n, 2, SIZE, SIZE), crops.new_full((n, 1, SIZE, SIZE), mask_value)
        )
        hint, mask = light.new_zeros(1, 2, SIZE, SIZE), light.new_full(light.shape, mask_value)
        return fusion(light, hint, mask, features, boxes)


def parse_options(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=", 1)
        out[key] = bool(int(value)) if value in ("0", "1") else value
    return out


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--reference", type=Path, required=True, help="InstColorization checkout")
    p.add_argument("--instances", type=int, default=8, help="boxes (8)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    p.add_argument("--repeats", type=int, default=2, help="timed A/B alternations (2)")
    p.add_argument(
        "--ours",
        action="append",
        default=None,
        help="TorchRuntime options of one instacolor configuration as k=v,k=v "
        "(repeatable; default: the runtime's defaults)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    networks = load_reference(args.reference)
    torch.manual_seed(0)
    net = InstColorNet(64).eval()
    randomise_batchnorm(net)
    ref_instance, ref_fusion = reference_networks(networks, net)

    light = synthetic_gray(SIZE, SIZE).astype(np.float32) * (100.0 / 255.0)
    boxes = random_boxes(args.instances, SIZE, SIZE).astype(np.float32)
    inst = Instances(boxes=boxes, image_size=(SIZE, SIZE)) if args.instances else None
    inputs = prepare_inputs(light, inst, None, SIZE, mask_value=net.mask_value)

    configs = [parse_options(c) for c in (args.ours or [""])]
    # each runtime gets its own copy of the same weights (it may fold or cast them)
    runtimes = [TorchRuntime(copy.deepcopy(net), **c) for c in configs]

    def reference():
        return reference_run(ref_instance, ref_fusion, inputs, net.mask_value)

    sides = [("reference", reference)] + [
        (f"instacolor {c}", lambda r=r: r.run(inputs)) for c, r in zip(configs, runtimes)
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    outputs = {}
    for name, fn in sides:  # warm-up
        outputs[name] = fn()
    for _ in range(args.repeats):
        for name, fn in sides:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ref_ab = outputs["reference"].float() * AB_NORM
    print(
        f"torch {torch.__version__}, {args.threads} threads, width 64, {SIZE}x{SIZE}, "
        f"{args.instances} boxes, {args.repeats} timed runs each after 1 warm-up (minimum)\n"
    )
    print("| network | min s | runs s | reference / this | max abs delta ab | mean abs delta ab |")
    print("|---|---:|---:|---:|---:|---:|")
    t_ref = min(times["reference"])
    for name, _ in sides:
        t = min(times[name])
        runs = ", ".join(f"{v:.2f}" for v in times[name])
        if name == "reference":
            print(f"| {name} | {t:.3f} | {runs} | 1.00 | 0 | 0 |")
            continue
        out = outputs[name]
        ab = torch.from_numpy(out.ab).float() * AB_NORM
        delta = (ab - ref_ab).abs()
        print(
            f"| {name} | {t:.3f} | {runs} | {t_ref / t:.2f} | {float(delta.max()):.2e} "
            f"| {float(delta.mean()):.2e} |"
        )
    print(f"\nreference ab: mean |ab| {float(ref_ab.abs().mean()):.2f} Lab units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
