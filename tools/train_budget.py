"""Train all three stages on one accelerator within a time budget (model card: "GPU recipe").

    # once: pack the data (photos and COCO scenes, a few tens of MiB to copy to the GPU machine)
    python tools/train_budget.py --pack-to .gpudata --data "$INSTACOLOR_DATA/train" \
        --coco "$INSTACOLOR_DATA/coco128"
    # on the machine with a GPU (tools/gpu_recipe.sh runs this under timeout 540)
    python3 tools/train_budget.py --pack .gpudata --out /tmp/gpu-run --device cuda --budget-s 440
    # seconds on a CPU (the test suite's run): build a pack from folders, train, export
    python tools/train_budget.py --data DIR --coco DIR --out runs/tiny --device cpu --tiny

The photos are decoded once into a uint8 tensor on the device and cropped, resized,
flipped and converted to Lab there; stages 1-3 run in bf16 autocast (CUDA) and stop at
their share of ``--budget-s`` (counted from the tool's start). Under ``--out``:
``log.jsonl`` (loss, images/s, validation per stage), ``summary.json``, ``stageN/latest.pt``
and ``instacolor-w{W}-gpu.safetensors`` (rewritten at every checkpoint: full-image network
only until stage 3 runs, then all three).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the budget counts the imports too

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402


def _stand_ins(names=("imagecodecs", "pycocotools", "pycocotools.mask")) -> list[str]:
    """Stand-ins for codecs a pack never needs, where they are missing (the device image).

    ``import instacolor`` imports them for archival I/O and COCO masks; training from a
    pack uses neither. A stand-in raises ModuleNotFoundError on first use.
    """
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            module = types.ModuleType(name)

            def absent(attr: str, name=name):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                raise ModuleNotFoundError(f"{name} is not installed here; build packs elsewhere")

            module.__getattr__ = absent
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, module)
            missing.append(name)
    return missing


STAND_INS = _stand_ins()

import torch  # noqa: E402

from instacolor.structures import Decoding  # noqa: E402
from instacolor.train.budget import (  # noqa: E402
    export_weights,
    flops_per_sample,
    image_batches,
    photo_prior,
    scene_batches,
    scenes_on,
    train_for,
)
from instacolor.train.budget_validate import (  # noqa: E402
    DEFAULT_TEMPERATURES,
    choose_decoding,
    validate_images,
    validate_scenes,
)
from instacolor.train.loop import TrainConfig  # noqa: E402
from instacolor.train.pack import build_pack, load_pack, pack_encoder  # noqa: E402
from instacolor.weights import sha256_file  # noqa: E402

TINY = {
    "width": 4,
    "size": 32,
    "batch": 4,
    "scene_batch": 2,
    "budget_s": 10.0,
    "reserve_s": 2.0,
    "max_images": 48,
    "max_val": 8,
    "max_scenes": 4,
    "log_every": 1,
    "checkpoint_s": 1.0,
    "prior_images": 48,
    "warmup": 2,
}
DEFAULTS = {
    "width": 20,
    "size": 128,
    "batch": 256,
    "scene_batch": 8,
    "budget_s": 440.0,
    "reserve_s": 25.0,
    "max_images": None,
    "max_val": None,
    "max_scenes": None,
    "log_every": 25,
    "checkpoint_s": 60.0,
    "prior_images": 2000,
    "warmup": 100,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pack", type=Path, help="train from this pack folder (--pack-to wrote it)")
    p.add_argument("--pack-to", type=Path, help="write the pack of --data/--coco here and stop")
    p.add_argument("--data", type=Path, help="folder of colour photos")
    p.add_argument("--coco", type=Path, help="COCO root (annotations/ and its images)")
    p.add_argument("--pack-mib", type=float, default=32.0, help="MiB of packed training photos")
    p.add_argument("--store-size", type=int, default=144, help="side of the packed photos")
    p.add_argument("--quality", type=int, default=80, help="WebP quality of the packed photos")
    p.add_argument("--out", type=Path, default=Path("runs/gpu"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="width 4, size 32, a few images, seconds")
    for key in ("width", "size", "batch", "scene_batch"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int)
    p.add_argument("--log-every", type=int, help="steps between log records (25)")
    p.add_argument("--checkpoint-s", type=float, help="seconds between checkpoints (60)")
    p.add_argument("--max-images", type=int, help="train on the first N packed photos (all)")
    p.add_argument("--budget-s", type=float, help="wall seconds from start to the last export")
    p.add_argument("--reserve-s", type=float, help="seconds kept for validation and export")
    p.add_argument("--fractions", default="0.6,0.25,0.15", help="budget shares of stages 1,2,3")
    p.add_argument("--lr", type=float, default=1e-3, help="stages 1-2 (Adam, batch --batch)")
    p.add_argument("--lr3", type=float, default=1e-4, help="stage 3")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--warmup", type=int, help="warm-up steps of stages 1-2 (100)")
    p.add_argument("--class-weight", type=float, default=0.5, help="0: regression only")
    p.add_argument("--class-rebalance", type=float, default=0.5, help="lambda of the 529 bins")
    p.add_argument("--background-logit", type=float, default=0.0, help="stage-3 fusion init")
    p.add_argument("--decode", choices=("auto", "regression", "annealed-mean"), default="auto")
    p.add_argument("--temperature", type=float, default=0.38, help="with --decode annealed-mean")
    p.add_argument("--mix", type=float, help="with --decode annealed-mean: blend weight, 0-1 (1)")
    p.add_argument("--min-colorfulness", type=float, default=0.6, help="--decode auto's bar")
    guided = "generators guided by the pretrained encoder (v6); with --pack-to the pack carries "
    guided += "its weights, and runs from such a pack train guided"
    p.add_argument("--guided", action="store_true", help=guided)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args(argv)
    preset = TINY if args.tiny else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    try:
        shares = [float(v) for v in args.fractions.split(",")]
    except ValueError:
        shares = []
    if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
        p.error(f"--fractions: expected three shares >= 0 like 0.6,0.25,0.15, got {args.fractions}")
    args.shares = shares
    if args.pack is None and (args.data is None or args.coco is None):
        p.error("expected --pack FOLDER, or --data and --coco (with --pack-to to only pack)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device on this machine; use --device cpu")
    if args.width < 1 or args.size < 32 or args.size % 8 or args.batch < 1:
        p.error(
            f"expected --width >= 1, --size a multiple of 8 >= 32, --batch >= 1, got "
            f"{args.width}, {args.size}, {args.batch}"
        )
    if args.decode == "annealed-mean" and args.class_weight <= 0:
        p.error("--decode annealed-mean needs --class-weight > 0 (the class head must train)")
    if args.mix is not None and (args.decode != "annealed-mean" or not 0 <= args.mix <= 1):
        p.error(
            f"--mix: expected 0 to 1 with --decode annealed-mean, received {args.mix} with "
            f"--decode {args.decode} (auto chooses among unblended decodings)"
        )
    return args


class Run:
    """One run's log, summary and weights under ``--out``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out = args, args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.out / "log.jsonl", "w")  # noqa: SIM115 - closed in close()
        self.weights = self.out / f"instacolor-w{args.width}-gpu.safetensors"
        self.summary: dict = {"stand_ins": STAND_INS, "stages": []}
        self.decoding = {"decode": "regression", "temperature": args.temperature}
        self.deadline = STARTED + args.budget_s

    def log(self, record: dict) -> None:
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
        print(json.dumps(shown), flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - STARTED

    def write_summary(self) -> None:
        self.summary["elapsed_s"] = self.elapsed()
        tmp = self.out / "summary.json.tmp"
        tmp.write_text(json.dumps(self.summary, indent=1) + "\n")
        tmp.replace(self.out / "summary.json")

    def export(self, net, stages: int, steps: dict) -> None:
        a = self.args
        trained = ", ".join(f"stage {s} {n} steps" for s, n in steps.items())
        origin = (
            f"tools/train_budget.py on {self.summary.get('device_name', a.device)}: "
            f"{trained}; pack {self.summary.get('pack', {}).get('train_packed')} photos"
        )
        chosen, mix = self.decoding, self.decoding.get("mix")
        temperature = chosen["temperature"] or a.temperature
        decoding = Decoding(chosen["decode"], temperature, 1.0 if mix is None else mix)
        export_weights(net, self.weights, stages=stages, working_size=a.size,
                       class_head=a.class_weight > 0, decoding=decoding,
                       trained_from=origin)  # fmt: skip

    def close(self) -> None:
        self.log_file.close()


def _pack(args: argparse.Namespace, folder: Path) -> dict:
    return build_pack(
        args.data,
        args.coco,
        folder,
        train_mib=args.pack_mib,
        max_images=args.max_images,
        store_size=args.store_size,
        quality=args.quality,
        seed=args.seed,
        encoder=args.guided,
    )


def _seconds_for(run: Run, stage: int, args) -> float:
    left = run.deadline - time.perf_counter() - args.reserve_s
    share = args.shares[stage - 1] / max(sum(args.shares[stage - 1 :]), 1e-9)
    return max(0.0, left * share)


def _run_stage(run: Run, config: TrainConfig, next_batch, pack, val_scenes, steps) -> str:
    """Train, validate and export one stage; returns its checkpoint (the next stage's init)."""
    args, stage, classify = run.args, config.stage, config.class_weight > 0
    flops = flops_per_sample(config, _first(next_batch(0)), 1)
    seconds = _seconds_for(run, stage, args)
    run.log(
        {"stage": stage, "event": "start", "budget_s": seconds, "gflop_per_sample": flops / 1e9}
    )
    last: dict = {}

    def on_checkpoint(net, step):
        if stage < 3:  # the held-out photos, at every checkpoint: over-fitting shows
            gen = net.full if stage == 1 else net.instance
            name = "full" if stage == 1 else "instance"
            last.update(
                validate_images(
                    gen,
                    pack.val_light,
                    pack.val_ab,
                    mask_value=net.mask_value,
                    classify=classify,
                    hook_for=lambda chunk: net.generator_hook(name, chunk),
                )
            )
            run.log({"stage": stage, "step": step, "event": "validate", **last})
        if stage != 2:  # stage 2 leaves the exported networks unchanged
            run.export(net, stage, {**steps, stage: step})

    net, totals = train_for(
        config,
        next_batch,
        seconds=seconds,
        samples=config.batch_size,
        log=run.log,
        schedule=args.schedule,
        warmup=args.warmup if stage < 3 else 0,
        log_every=args.log_every,
        checkpoint_s=args.checkpoint_s,
        on_checkpoint=on_checkpoint,
    )
    steps[stage] = totals["steps"]
    # stages 1-2: the final checkpoint's validation; stage 3: the held-out scenes, once
    record = dict(last) if stage < 3 else validate_scenes(net, val_scenes, classify=classify)
    if stage == 1 and classify and args.decode == "auto":
        run.decoding = choose_decoding(record, DEFAULT_TEMPERATURES, args.min_colorfulness)
    elif stage == 1 and args.decode == "annealed-mean":
        run.decoding = {"decode": "annealed-mean", "temperature": args.temperature}
        if args.mix is not None:
            run.decoding["mix"] = args.mix
    run.summary["decoding"] = run.decoding
    if stage != 2:  # again: the decoding chosen after stage 1 goes into the metadata
        run.export(net, stage, steps)
    totals.update(
        gflop_per_sample=flops / 1e9,
        tflops=flops * totals["images_per_s"] / 1e12,
        validation=record,
    )
    run.log({"stage": stage, "step": totals["steps"], "event": "end", **record})
    run.summary["stages"].append(totals)
    run.summary["weights"] = {
        "path": str(run.weights),
        "bytes": run.weights.stat().st_size,
        "sha256": sha256_file(run.weights),
        "networks": "all three" if stage == 3 else "full-image only",
    }
    run.write_summary()
    return totals["checkpoint"]


def train(args: argparse.Namespace) -> None:
    """Load the pack (building it first from --data/--coco), then stages 1, 2 and 3."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run = Run(args)
    folder = args.pack or args.out / "pack"
    if args.pack is None:
        _pack(args, folder)
    limits = {k: getattr(args, k) for k in ("max_images", "max_val", "max_scenes")}
    pack = load_pack(folder, args.size, device, **limits)
    if pack_encoder(folder, pack.manifest) is not None:
        args.guided = True  # a pack that carries the encoder was built for guided training
    scenes = {
        split: scenes_on(paths, args.size, pack.boxes, pack.semantic, device)
        for split, paths in (("train", pack.coco_train), ("val", pack.coco_val))
    }
    loaded = {"loaded_photos": len(pack.images), "val": len(pack.val_light)}
    loaded.update(coco_train=len(scenes["train"]), coco_val=len(scenes["val"]))
    run.summary.update(
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        options={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str))},
        pack={**pack.manifest, **loaded, "decode_s": pack.decode_s},
        load_s=time.perf_counter() - STARTED,
    )
    rebalance = args.class_weight > 0 and args.class_rebalance > 0
    prior = photo_prior(pack.images, args.size, args.prior_images) if rebalance else None
    cuda = device.type == "cuda"
    steps: dict[int, int] = {}
    init = None
    for stage in (1, 2, 3):
        config = TrainConfig(
            stage=stage,
            out_dir=str(args.out / f"stage{stage}"),
            width=args.width,
            size=args.size,
            batch_size=args.batch if stage < 3 else min(args.scene_batch, len(scenes["train"])),
            lr=args.lr if stage < 3 else args.lr3,
            seed=args.seed,
            device=args.device,
            amp=cuda,
            channels_last=cuda,
            init=init,
            background_logit=args.background_logit,
            class_weight=args.class_weight,
            class_rebalance=args.class_rebalance,
            class_prior=prior,
            guided=args.guided,
        )
        if stage < 3:
            next_batch = image_batches(
                pack.images, args.size, args.batch, stage=stage, seed=args.seed
            )
        else:
            next_batch = scene_batches(scenes["train"], args.scene_batch, seed=args.seed)
        init = _run_stage(run, config, next_batch, pack, scenes["val"], steps)
    run.close()
    print(f"wrote {run.weights} and {args.out / 'summary.json'} in {run.elapsed():.1f} s")


def _first(batch: dict) -> dict:
    """The batch's first image (stages 1-2) or scene (stage 3), to count FLOPs per sample."""
    return {k: v[:1] for k, v in batch.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pack_to is not None:
        manifest = _pack(args, args.pack_to)
        total = sum(f.stat().st_size for f in args.pack_to.rglob("*") if f.is_file())
        print(
            f"wrote {args.pack_to}: {manifest['train_packed']} of {manifest['train_split']} "
            f"training photos, {manifest['val']} held out, {manifest['coco_train']} + "
            f"{manifest['coco_val']} held-out scenes, {total / 2**20:.1f} MiB"
        )
        return
    train(args)


if __name__ == "__main__":
    main()
