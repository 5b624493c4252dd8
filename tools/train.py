"""Train one stage of instacolor's networks; resumable, with a validation log.

    # stage 1: full-image network on a folder of colour photos
    python tools/train.py --stage 1 --data ../shared/data/train --out runs/w16 --steps 5000
    # stage 2: instance network on crops (COCO boxes where present, sampled boxes elsewhere)
    python tools/train.py --stage 2 --data ../shared/data/train \
        --coco ../shared/data/coco128 --init runs/w16/stage1/latest.pt --out runs/w16
    # stage 3: fusion on scenes with several boxes
    python tools/train.py --stage 3 --data ../shared/data/coco128/train2017 \
        --coco ../shared/data/coco128 --init runs/w16/stage2/latest.pt --out runs/w16
    # export the three stages as instacolor weights
    python tools/train.py --export runs/w16/stage3/latest.pt --to weights.safetensors

Every stage writes ``OUT/stageN/latest.pt`` (every ``--checkpoint-every`` steps) and
``OUT/stageN/log.jsonl`` (loss, images/s, and validation PSNR beside the gray baseline);
``--resume`` continues a stopped run exactly.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from instacolor.models.network import InstColorNet
from instacolor.train.data import (
    ColorImages,
    FusionScenes,
    InstanceCrops,
    WithHints,
    list_images,
    load_coco_boxes,
    load_coco_semantic,
)
from instacolor.train.gpu import export_weights
from instacolor.train.loop import TrainConfig, list_collate, load_stage, train_stage
from instacolor.train.validators import estimate_prior, make_fusion_validator, make_validator


def export(
    checkpoint: Path, target: Path, width: int, decode: str = "regression", temperature=0.38,
    mix: float | None = None,
) -> None:  # fmt: skip
    """Write a checkpoint as weights (``train.gpu.export_weights``); the class head counts as
    trained when its run's ``class_weight`` was > 0; ``mix`` goes into the metadata if given."""
    net = InstColorNet(width)
    stage = load_stage(checkpoint, net)
    if stage != 3:
        warnings.warn(f"{checkpoint} is a stage-{stage} checkpoint, not stage 3", stacklevel=1)
    config = torch.load(checkpoint, map_location="cpu", weights_only=False)["config"]
    class_head = config.get("class_weight", 0) > 0
    if decode != "regression" and not class_head:
        raise SystemExit(f"--decode {decode}: {checkpoint} was trained without --class-weight")
    export_weights(net, target, stages=3, working_size=config.get("size", 128),
                   class_head=class_head, decode=decode, temperature=temperature,
                   trained_from=str(checkpoint), mix=mix)  # fmt: skip
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, choices=(1, 2, 3))
    parser.add_argument("--data", type=Path, help="folder of colour images")
    parser.add_argument("--coco", type=Path, help="COCO folder with annotations/*.json")
    parser.add_argument("--out", type=Path, default=Path("runs/default"))
    parser.add_argument("--init", help="checkpoint of the previous stage")
    parser.add_argument(
        "--init-full",
        help="stage 3: full-image network from this (later stage-1) checkpoint instead",
    )
    parser.add_argument(
        "--fusion-from-full",
        action="store_true",
        help="stage 3: the fusion backbone starts as the full-image network (after "
        "--init-full), the weight generators as --init's",
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--lr",
        type=float,
        help="learning rate (default 5e-4, stage 3: 5e-5); 0 moves no parameter (e.g. to "
        "validate a stage-3 checkpoint; stages 1-2 still update BatchNorm statistics)",
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--validate-every", type=int, default=200)
    parser.add_argument(
        "--holdout-every",
        type=int,
        default=115,
        help="every Nth image (sorted by path) is held out for validation",
    )
    parser.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="validate on every Nth of the images left after the hold-out (and train on "
        "the others), so the held-out images are never looked at (0: validate on them)",
    )
    parser.add_argument(
        "--rebalance",
        type=float,
        default=0.0,
        help="class-rebalancing lambda (0: plain reference loss; Zhang et al. use 0.5)",
    )
    parser.add_argument(
        "--loss",
        choices=("huber", "l2"),
        default="huber",
        help="huber: the reference's (~L1, the conditional median); l2: the PSNR optimum",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="cosine: decay --lr to 0 over --steps",
    )
    parser.add_argument(
        "--background-logit",
        type=float,
        default=0.0,
        help="stage 3 from a stage-2 checkpoint: start the background (full-image) fusion "
        "logits this much higher, so fusion starts near the full-image network (0: reference)",
    )
    parser.add_argument(
        "--label-dropout",
        type=float,
        default=0.0,
        help="stage 3: fraction of scenes trained without their semantic map",
    )
    parser.add_argument(
        "--extra-data",
        type=Path,
        help="stage 3: a folder of more training scenes (sampled boxes, no semantic map), "
        "e.g. ../shared/data/train; its every 115th image (stage 1's held-out) is skipped",
    )
    parser.add_argument(
        "--extra-count", type=int, default=0, help="images drawn (seeded) from --extra-data"
    )
    parser.add_argument(
        "--hint-sample-p",
        type=float,
        default=1.0,
        help="random ground-truth hints in the hint channels (Zhang et al. 2017): stopping "
        "probability of the geometric number of points; 1 = none (default), 0.125 = theirs",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="repeat --data's training images (oversampling)"
    )
    parser.add_argument(
        "--class-weight",
        type=float,
        default=0.0,
        help="weight of the class head's soft-encoded cross-entropy (529 bins) beside the "
        "regression loss (0: regression only)",
    )
    parser.add_argument(
        "--class-rebalance",
        type=float,
        default=0.5,
        help="class-rebalancing lambda of the class head's loss (Zhang et al. 2016: 0.5)",
    )
    parser.add_argument(
        "--cpu-bf16", action="store_true", help="bfloat16 autocast on the CPU (AVX-512 BF16)"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="NHWC memory format (faster with bf16)"
    )
    parser.add_argument(
        "--decode",
        choices=("regression", "annealed-mean"),
        default="regression",
        help="with --export: the weights' default decoding",
    )
    parser.add_argument(
        "--temperature", type=float, default=0.38, help="with --export: default temperature"
    )
    parser.add_argument("--mix", type=float, help="with --export: default annealed-mean mix 0-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", type=Path, help="stage-3 checkpoint to export")
    parser.add_argument("--to", type=Path, help="safetensors file written by --export")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        target = args.to or Path("weights.safetensors")
        if args.mix is not None and not 0 <= args.mix <= 1:
            parser.error(f"--mix: expected a number from 0 to 1, received {args.mix}")
        export(args.export, target, args.width, args.decode, args.temperature, args.mix)
        return
    if args.stage is None or args.data is None:
        parser.error("--stage and --data are required (or --export)")
    if args.lr is not None and not args.lr >= 0:
        parser.error(f"--lr: expected 0 or more, received {args.lr}")
    if args.val_every == 1 or args.val_every < 0:
        parser.error(f"--val-every: expected 0 (off) or at least 2, received {args.val_every}")

    # the coco root's skip list too, so the split equals tools/evaluate.py's
    skip_lists = sorted(args.coco.glob("GRAYSCALE_OR_LOWCHROMA.txt")) if args.coco else []
    files = list_images(args.data, skip_lists)
    held_out = set(files[:: args.holdout_every])
    rest = [f for f in files if f not in held_out]
    if args.val_every:  # validate on part of the rest: the held-out images stay unseen
        validation = rest[:: args.val_every]
        rest = [f for i, f in enumerate(rest) if i % args.val_every]
    else:
        validation = sorted(held_out)
    train_files = rest * args.repeat
    if args.extra_data and args.extra_count:
        pool = [f for i, f in enumerate(list_images(args.extra_data)) if i % 115]
        pick = np.random.default_rng(args.seed).choice(len(pool), args.extra_count, replace=False)
        train_files += [pool[i] for i in sorted(pick)]
    boxes, semantic = {}, {}
    if args.coco:
        for ann in sorted((args.coco / "annotations").glob("instances_*.json")):
            boxes.update(load_coco_boxes(ann))
            if args.stage == 3:
                semantic.update(load_coco_semantic(ann))
    size = args.size
    if args.stage == 1:
        dataset = ColorImages(train_files, size, seed=args.seed)
    elif args.stage == 2:
        dataset = InstanceCrops(train_files, size, boxes=boxes, seed=args.seed)
    else:
        dataset = FusionScenes(
            train_files,
            size,
            boxes=boxes,
            semantic=semantic or None,
            seed=args.seed,
            label_dropout=args.label_dropout,
        )
    if args.hint_sample_p < 1:
        dataset = WithHints(dataset, args.hint_sample_p, seed=args.seed)
    prior = class_prior_ = None
    if args.rebalance > 0:
        prior = estimate_prior(train_files, size, seed=args.seed).tolist()
    if args.class_weight > 0 and args.class_rebalance > 0:
        class_prior_ = estimate_prior(train_files, size, seed=args.seed, bins="classes").tolist()
    config = TrainConfig(
        stage=args.stage,
        out_dir=str(args.out / f"stage{args.stage}"),
        width=args.width,
        size=size,
        batch_size=args.batch,
        lr=args.lr if args.lr is not None else (5e-4 if args.stage < 3 else 5e-5),
        steps=args.steps,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        amp=args.device.startswith("cuda"),
        init=args.init,
        init_full=args.init_full,
        fusion_from_full=args.fusion_from_full,
        rebalance=args.rebalance,
        prior=prior,
        loss=args.loss,
        lr_schedule=args.lr_schedule,
        background_logit=args.background_logit,
        class_weight=args.class_weight,
        class_rebalance=args.class_rebalance,
        class_prior=class_prior_,
        cpu_bf16=args.cpu_bf16,
        channels_last=args.channels_last,
    )
    print(
        f"stage {args.stage}: {len(train_files)} training images, {len(held_out)} held out, "
        f"validating on {len(validation)}" + (" of the others" if args.val_every else "")
    )
    if args.stage == 3:
        validate = make_fusion_validator(
            FusionScenes(validation, size, boxes=boxes, semantic=semantic or None)
        )
    else:
        validate = make_validator(validation, size, args.stage, args.class_weight > 0)
    train_stage(
        config,
        dataset,
        resume=args.resume,
        validate=validate,
        collate=list_collate if args.stage == 3 else None,
    )


if __name__ == "__main__":
    main()
