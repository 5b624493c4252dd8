"""``instacolor train``: train one stage of the networks, resumable, with a validation log.

    # stage 1: the full-image network on a folder of colour photos
    instacolor train --stage 1 --data PHOTOS --out runs/w16 --steps 5000
    # guided by the pretrained encoder (weights v6), its features cached once in CACHE
    instacolor train --stage 1 --guided --cache CACHE --data PHOTOS \
        --init default --out runs/v6 --steps 4500 --class-weight 0.5
    # stage 2: the instance network on crops (COCO boxes where present, else sampled)
    instacolor train --stage 2 --data PHOTOS --coco COCO --init runs/w16/stage1/latest.pt
    # stage 3: fusion on scenes with several boxes (plus mosaics of photos)
    instacolor train --stage 3 --data COCO/train2017 --coco COCO \
        --init runs/w16/stage2/latest.pt --out runs/w16 --extra-data PHOTOS --mosaics 300
    # export a checkpoint as instacolor weights
    instacolor train --export runs/w16/stage3/latest.pt --to weights.safetensors

Every stage writes ``OUT/stageN/latest.pt`` (every ``--checkpoint-every`` steps) and
``OUT/stageN/log.jsonl`` (loss, images/s, and validation PSNR beside the gray baseline);
``--resume`` continues a stopped run exactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from instacolor.cli.arguments import decoding
from instacolor.structures import Decoding

__all__ = ["add_train_parser", "run_train"]

_HOLDOUT_PHOTOS = 115  # stage 1's held-out photos: every 115th (sorted by path)


def add_train_parser(commands) -> argparse.ArgumentParser:
    """Add ``instacolor train`` to the subcommands of the ``instacolor`` parser."""
    p = commands.add_parser(
        "train",
        help="train one stage of the networks (resumable), or export a checkpoint",
        description=__doc__.splitlines()[0],
    )
    arg = p.add_argument
    arg("--stage", type=int, choices=(1, 2, 3))
    arg("--data", type=Path, help="folder of colour images")
    arg("--coco", type=Path, help="COCO folder with annotations/*.json")
    arg("--out", type=Path, default=Path("runs/default"))
    arg("--init", help="checkpoint of the previous stage, weights file, or 'default'")
    arg("--init-full", help="stage 3: full-image network from this (later stage-1) checkpoint")
    arg(
        "--fusion-from-full",
        action="store_true",
        help="stage 3: the fusion backbone starts as the full-image network",
    )
    arg(
        "--instance-from-full",
        action="store_true",
        help="stage 3: the instance network starts as the full-image network (no stage 2)",
    )
    arg(
        "--guided",
        action="store_true",
        help="generators guided by the frozen pretrained encoder (weights v6)",
    )
    arg(
        "--cache",
        type=Path,
        help="stages 1-2 with --guided: the encoder's features of fixed crops of the "
        "training photos, built here on first use (resumable), read every epoch",
    )
    arg(
        "--guidance-lr-scale",
        type=float,
        default=1.0,
        help="learning rate of the guidance blocks relative to --lr",
    )
    arg("--width", type=int, default=16)
    arg("--size", type=int, default=128)
    arg("--batch", type=int, default=16)
    arg(
        "--lr", type=float, help="learning rate (default 5e-4, stage 3: 5e-5); 0 moves no parameter"
    )
    arg("--steps", type=int, default=1000)
    arg("--checkpoint-every", type=int, default=200)
    arg("--validate-every", type=int, default=200)
    arg(
        "--holdout-every",
        type=int,
        default=_HOLDOUT_PHOTOS,
        help="every Nth image (sorted by path) is held out for validation",
    )
    arg(
        "--val-every",
        type=int,
        default=0,
        help="validate on every Nth of the images left after the hold-out (and train on the "
        "others), so the held-out images are never looked at (0: validate on them)",
    )
    arg(
        "--rebalance",
        type=float,
        default=0.0,
        help="class-rebalancing lambda of the regression (0: plain reference loss)",
    )
    arg(
        "--loss",
        choices=("huber", "l2"),
        default="huber",
        help="huber: the reference's (~L1, the conditional median); l2: the PSNR optimum",
    )
    arg(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="cosine: decay --lr to 0 over --steps",
    )
    arg(
        "--background-logit",
        type=float,
        default=0.0,
        help="stage 3 from stage 2: start the background fusion logits this much higher",
    )
    arg(
        "--label-dropout",
        type=float,
        default=0.0,
        help="stage 3: fraction of scenes trained without their semantic map",
    )
    arg(
        "--extra-data",
        type=Path,
        help="stage 3: a folder of photos for extra scenes (its every 115th photo, stage "
        "1's held-out, is skipped): --extra-count with sampled boxes, --mosaics as mosaics",
    )
    arg("--extra-count", type=int, default=0, help="photos drawn (seeded) from --extra-data")
    arg(
        "--mosaics",
        type=int,
        default=0,
        help="stage 3: mosaic scenes of 2x2 to 4x4 --extra-data photos per epoch, boxes on "
        "some tiles (crops see what the full view cannot)",
    )
    arg(
        "--hint-sample-p",
        type=float,
        default=1.0,
        help="random ground-truth hints: stopping probability of the geometric number of "
        "points; 1 = none (default), 0.125 = Zhang et al. 2017's",
    )
    arg("--repeat", type=int, default=1, help="repeat --data's training images")
    arg(
        "--class-weight",
        type=float,
        default=0.0,
        help="weight of the class head's soft-encoded cross-entropy (0: regression only)",
    )
    arg(
        "--class-rebalance",
        type=float,
        default=0.5,
        help="class-rebalancing lambda of the class head's loss (Zhang et al. 2016: 0.5)",
    )
    arg("--cpu-bf16", action="store_true", help="bfloat16 autocast on the CPU (AVX-512 BF16)")
    arg("--channels-last", action="store_true", help="NHWC memory format (faster with bf16)")
    arg(
        "--decode",
        type=decoding,
        default="regression",
        metavar="SPEC",
        help="with --export: the weights' default decoding (regression, annealed-mean, "
        "annealed-mean:T or annealed-mean:T:MIX)",
    )
    arg("--seed", type=int, default=0)
    arg("--workers", type=int, default=1)
    arg("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    arg("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    arg("--resume", action="store_true")
    arg("--export", type=Path, help="stage-3 checkpoint to export")
    arg("--to", type=Path, help="safetensors file written by --export")
    p.set_defaults(parser=p)
    return p


def _error(args, message: str) -> None:
    args.parser.error(message)  # exits with status 2


def run_train(args: argparse.Namespace) -> int:
    """Run ``instacolor train`` with parsed ``args``; returns the exit status."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        from instacolor.train.recipe import export_checkpoint

        export_checkpoint(
            args.export, args.to or Path("weights.safetensors"), args.width,
            Decoding.parse(args.decode),
        )  # fmt: skip
        return 0
    if args.stage is None or args.data is None:
        _error(args, "--stage and --data are required (or --export)")
    if args.lr is not None and not args.lr >= 0:
        _error(args, f"--lr: expected 0 or more, received {args.lr}")
    if args.val_every == 1 or args.val_every < 0:
        _error(args, f"--val-every: expected 0 (off) or at least 2, received {args.val_every}")
    if args.cache and not (args.guided and args.stage == 1):
        _error(args, "--cache: expected with --guided and --stage 1 (the cached crops are photos)")
    if args.mosaics and not (args.stage == 3 and args.extra_data):
        _error(args, "--mosaics: expected with --stage 3 and --extra-data (the mosaics' photos)")
    _train(args)
    return 0


def _train(args: argparse.Namespace) -> None:
    from instacolor.train.data import (
        ColorImages,
        FusionScenes,
        InstanceCrops,
        WithHints,
        list_images,
        load_coco_boxes,
        load_coco_semantic,
    )
    from instacolor.train.loop import TrainConfig, list_collate
    from instacolor.train.recipe import Joined, cache_class_prior, cached_photos, packaged_file
    from instacolor.train.trainer import train_stage
    from instacolor.train.validators import (
        estimate_prior,
        make_fusion_validator,
        make_validator,
    )

    # the coco root's skip list too, so the split equals the evaluation's
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
    pool = []
    if args.extra_data:
        pool = [f for i, f in enumerate(list_images(args.extra_data)) if i % _HOLDOUT_PHOTOS]
    if pool and args.extra_count:
        pick = np.random.default_rng(args.seed).choice(len(pool), args.extra_count, replace=False)
        train_files += [pool[i] for i in sorted(pick)]
    boxes, semantic = {}, {}
    if args.coco:
        for ann in sorted((args.coco / "annotations").glob("instances_*.json")):
            boxes.update(load_coco_boxes(ann))
            if args.stage == 3:
                semantic.update(load_coco_semantic(ann))
    size = args.size
    class_prior_ = None
    if args.stage == 1 and args.cache:
        dataset = cached_photos(rest, args.cache, size, args.seed)
        if args.class_weight > 0 and args.class_rebalance > 0:
            class_prior_ = cache_class_prior(dataset, args.seed)
    elif args.stage == 1:
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
        if args.mosaics:
            from instacolor.train.mosaic import MosaicScenes

            mosaics = MosaicScenes(
                pool, size, length=args.mosaics, seed=args.seed, semantic=bool(semantic)
            )
            dataset = Joined([dataset, mosaics])
    if args.hint_sample_p < 1:
        dataset = WithHints(dataset, args.hint_sample_p, seed=args.seed)
    prior = None
    if args.rebalance > 0:
        prior = estimate_prior(train_files, size, seed=args.seed).tolist()
    if class_prior_ is None and args.class_weight > 0 and args.class_rebalance > 0:
        class_prior_ = estimate_prior(train_files, size, seed=args.seed, bins="classes").tolist()
    init = packaged_file(args.init)
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
        init=init,
        init_full=args.init_full,
        fusion_from_full=args.fusion_from_full,
        instance_from_full=args.instance_from_full,
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
        guided=args.guided,
        guidance_lr_scale=args.guidance_lr_scale,
    )
    print(
        f"stage {args.stage}: {len(dataset)} training images, {len(held_out)} held out, "
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
