"""instacolor against the reference InstColorization networks, on identical weights.

The reference networks are built from the public repository's ``models/networks.py``
(github.com/ericsujw/InstColorization), imported at run time from the path given with
``--reference`` (the repository root or the file itself); nothing of it is copied here.

    git clone https://github.com/ericsujw/InstColorization /tmp/InstColorization
    .venv/bin/python tools/bench.py reference --reference /tmp/InstColorization

One seeded random ``InstColorNet(64)`` (BatchNorm statistics and affine parameters
randomised too, so that folding them is exercised) is loaded, state dict for state dict
and strictly, into the reference's ``InstanceGenerator`` and ``FusionGenerator``. One
synthetic 256x256 gray image with 8 boxes goes through ``prepare_inputs``; instacolor
runs ``TorchRuntime.run`` on it, the reference ``netG`` on the crops and ``netGF`` on
the image (as its ``FusionModel.forward``), both under ``torch.no_grad`` with 2 threads,
each side in its own process (so that a process-wide setting of one, such as
instacolor's malloc setting, does not change the other): load, ``--warmups`` runs
(2: the steady state of a batch; the second run can still page-fault where the first
left the heap fragmented), one timed run; the sides alternate ``--repeats`` times
(A, B, A, B) and the minima are compared. Prints times, CPU time, the ratio and
max / mean ``|delta ab|`` in Lab units for each instacolor configuration asked for.
Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .common import entry_command, random_boxes, synthetic_gray

if TYPE_CHECKING:  # torch and instacolor are imported where used: --help stays fast
    import torch
    from torch import nn

    from instacolor.models.network import InstColorNet

SIZE = 256
#: The TorchRuntime options make_runtime (so Colorizer) uses on a CPU.
DEFAULT_OPTIONS = "fold_batchnorm=1,channels_last=1,fuse_relu=1,keep_freed_memory=1"


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
    import torch
    from torch import nn

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
    from torch import nn

    kwargs = {"norm_layer": nn.BatchNorm2d, "use_tanh": True, "classification": False}
    instance = networks.InstanceGenerator(4, 2, **kwargs)
    fusion = networks.FusionGenerator(4, 2, **kwargs)
    instance.load_state_dict(net.instance.state_dict(), strict=True)
    fusion.load_state_dict(net.fusion.state_dict(), strict=True)
    return instance.eval(), fusion.eval()


def reference_run(instance, fusion, inputs, mask_value: float) -> torch.Tensor:
    """The reference ``FusionModel.forward`` on ``inputs``: ab ``(1, 2, S, S)`` in [-1, 1]."""
    import torch

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


def run_side(args: argparse.Namespace, side: int, out: Path) -> dict:
    """Child: build side ``side`` (0: the reference, k: ``--ours`` number k), warm it up,
    time one run; ab goes to ``out`` (``.npy``), times are returned."""
    import torch

    from instacolor.color import AB_NORM
    from instacolor.models.inputs import prepare_inputs
    from instacolor.models.network import InstColorNet
    from instacolor.runtime.torch_runtime import TorchRuntime
    from instacolor.structures import Instances

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = InstColorNet(64).eval()
    randomise_batchnorm(net)
    light = synthetic_gray(SIZE, SIZE).astype(np.float32) * (100.0 / 255.0)
    boxes = random_boxes(args.instances, SIZE, SIZE).astype(np.float32)
    inst = Instances(boxes=boxes, image_size=(SIZE, SIZE)) if args.instances else None
    inputs = prepare_inputs(light, inst, None, SIZE, mask_value=net.mask_value)
    if side == 0:
        ref_instance, ref_fusion = reference_networks(load_reference(args.reference), net)

        def fn() -> np.ndarray:
            return reference_run(ref_instance, ref_fusion, inputs, net.mask_value).numpy()
    else:
        runtime = TorchRuntime(net, **parse_options(args.ours[side - 1]))

        def fn() -> np.ndarray:
            return runtime.run(inputs).ab

    for _ in range(args.warmups):
        fn()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    ab = fn()
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    np.save(out, ab.astype(np.float32) * AB_NORM)
    return {
        "wall": wall,
        "user": after.ru_utime - usage.ru_utime,
        "sys": after.ru_stime - usage.ru_stime,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py reference``."""
    p.add_argument("--reference", type=Path, required=True, help="InstColorization checkout")
    p.add_argument("--instances", type=int, default=8, help="boxes (8)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    p.add_argument("--repeats", type=int, default=2, help="alternations of all sides (2)")
    p.add_argument("--warmups", type=int, default=2, help="untimed runs of each side first (2)")
    p.add_argument(
        "--ours",
        action="append",
        default=None,
        help="TorchRuntime options of one instacolor configuration as k=v,k=v "
        "(repeatable; default: what make_runtime uses on CPU, and the same with bf16=1)",
    )
    p.add_argument("--side", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the alternating sides (or, with ``--side``, one side's child); exit status."""
    import torch

    args.ours = args.ours or [DEFAULT_OPTIONS, DEFAULT_OPTIONS + ",bf16=1"]
    if args.side is not None:
        print(json.dumps(run_side(args, args.side, args.out)))
        return 0
    load_reference(args.reference)  # the clear error first
    names = ["reference"] + [f"instacolor {o or '(all options off)'}" for o in args.ours]
    runs: list[list[dict]] = [[] for _ in names]
    passthrough = ["--reference", str(args.reference), "--instances", str(args.instances)]
    passthrough += ["--threads", str(args.threads), "--warmups", str(args.warmups)]
    passthrough += [f"--ours={o}" for o in args.ours]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for side in range(len(names)):
                out = Path(tmp) / f"side{side}.npy"
                cmd = [*entry_command("reference"), *passthrough, "--side", str(side)]
                cmd += ["--out", str(out)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode:
                    sys.stderr.write(proc.stderr)
                    return proc.returncode
                runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        abs_ = [np.load(Path(tmp) / f"side{k}.npy") for k in range(len(names))]
    print(
        f"torch {torch.__version__}, {args.threads} threads, width 64, {SIZE}x{SIZE}, "
        f"{args.instances} boxes; each side in its own process (load, {args.warmups} warm-up "
        f"runs, 1 timed run), sides alternating, {args.repeats} rounds; minimum wall time\n"
    )
    print(
        "| network | min s | runs s | CPU s (user + sys) | reference / this "
        "| max abs delta ab | mean abs delta ab |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    t_ref = min(r["wall"] for r in runs[0])
    for name, side_runs, ab in zip(names, runs, abs_, strict=True):
        best = min(side_runs, key=lambda r: r["wall"])
        walls = ", ".join(f"{r['wall']:.2f}" for r in side_runs)
        cpu = f"{best['user']:.1f} + {best['sys']:.1f}"
        delta = np.abs(ab - abs_[0])
        print(
            f"| {name} | {best['wall']:.3f} | {walls} | {cpu} | {t_ref / best['wall']:.2f} "
            f"| {delta.max():.2e} | {delta.mean():.2e} |"
        )
    print(f"\nreference ab: mean |ab| {np.abs(abs_[0]).mean():.2f} Lab units")
    return 0
