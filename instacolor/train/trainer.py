"""Running one training stage with resumable, bit-exact checkpoints.

Resuming: a checkpoint holds the trained modules, the optimizer, the step and the seed;
the data order of every epoch is a permutation seeded by ``(seed, epoch)`` and every
sample's augmentation by ``(seed, epoch, index)``: a resumed run continues exactly.
Guidance blocks learn at ``lr * guidance_lr_scale`` (their own parameter group).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from instacolor.errors import InputError
from instacolor.models.network import InstColorNet
from instacolor.train.loop import (
    TrainConfig,
    autocast_for,
    check_config,
    class_weights_of,
    initial_network,
    learning_rate,
    pixel_weights,
    set_modes,
    step_loss,
    trainable_parameters,
)

__all__ = ["EpochSampler", "seed_everything", "train_stage"]


class EpochSampler(Sampler[int]):
    """Indices of a seeded permutation per epoch, starting at ``start`` samples in."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start


_RESUME_KEYS = ("stage", "width", "size", "batch_size", "lr", "loss", "lr_schedule")
_RESUME_KEYS += ("rebalance", "class_weight", "class_rebalance", "guided", "guidance_lr_scale")


def _check_resume(config: TrainConfig, saved: dict, path: Path) -> None:
    """A resumed run must continue the same run: refuse options that change its course."""
    defaults = asdict(TrainConfig(stage=config.stage, out_dir=config.out_dir))
    keys = _RESUME_KEYS + (("steps",) if config.lr_schedule == "cosine" else ())
    now = asdict(config)
    changed = {k: (saved.get(k, defaults[k]), now[k]) for k in keys}
    changed = {k: v for k, v in changed.items() if v[0] != v[1]}
    if changed:
        raise InputError(
            f"resume from {path}: expected the options of that run, received changes "
            + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            + "; resume with the run's options, or start a new run from it (init=, a new "
            "out_dir)"
        )


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to ``PATH.tmp``, then an atomic rename: a kill leaves the old file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_stage(
    config: TrainConfig,
    dataset: Dataset,
    *,
    resume: bool = False,
    validate: Callable[[InstColorNet, int], dict] | None = None,
    collate: Callable | None = None,
    progress: bool = True,
) -> InstColorNet:
    """Run (or resume) one stage for ``config.steps`` optimizer steps.

    Args:
        config: the stage's options.
        dataset: samples of the stage (see :mod:`instacolor.train.data`); it may have
            ``set_epoch``.
        resume: continue from ``out_dir/latest.pt`` when it exists.
        validate: ``validate(net, step) -> metrics`` logged to ``out_dir/log.jsonl``.
        collate: DataLoader collate function (stage 3 uses a list collate).
        progress: show a tqdm bar with loss and rate.

    Returns:
        The network (all three generators) after the last step.
    """
    check_config(config)
    if len(dataset) < config.batch_size:
        raise InputError(
            f"dataset: expected at least batch_size={config.batch_size} samples, received "
            f"{len(dataset)}; add images or lower the batch size"
        )
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest.pt"
    net = initial_network(config)
    params = trainable_parameters(net, config.stage)
    guidance_ids = set()
    if net.guidance is not None:
        guidance_ids = {id(p) for p in net.guidance.parameters()}
    groups = [
        {"params": [p for p in params if id(p) not in guidance_ids], "scale": 1.0},
        {"params": [p for p in params if id(p) in guidance_ids], "scale": config.guidance_lr_scale},
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.Adam(groups, lr=config.lr, betas=(0.9, 0.99))
    step = 0
    if resume and latest.is_file():
        ckpt = torch.load(latest, map_location="cpu", weights_only=False)
        _check_resume(config, ckpt.get("config") or {}, latest)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
    net.to(config.device)
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    set_modes(net, config.stage)
    weights = pixel_weights(config)
    class_weights = class_weights_of(config)
    per_epoch = len(dataset) // config.batch_size
    log = open(out / "log.jsonl", "a")  # noqa: SIM115 - closed in finally
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc=f"stage {config.stage}")
    t0, seen = time.perf_counter(), 0
    try:
        while step < config.steps:
            epoch, offset = divmod(step, per_epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            sampler = EpochSampler(len(dataset), config.seed, epoch, offset * config.batch_size)
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                sampler=sampler,
                drop_last=True,
                num_workers=config.workers,
                collate_fn=collate,
            )
            for batch in loader:
                with autocast_for(config):
                    loss = step_loss(net, batch, config, weights, class_weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config, step) * group.get("scale", 1.0)
                optimizer.step()
                step += 1
                seen += config.batch_size
                rate = seen / (time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{rate:.1f}")
                record = {"step": step, "loss": loss.item(), "images_per_s": rate}
                if validate is not None and (
                    step % config.validate_every == 0 or step == config.steps
                ):
                    net.eval()
                    record.update(validate(net, step))
                    set_modes(net, config.stage)
                log.write(json.dumps(record) + "\n")
                if step % config.checkpoint_every == 0 or step == config.steps:
                    log.flush()
                    payload = {
                        "net": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "config": asdict(config),
                    }
                    save_checkpoint(latest, payload)
                if step >= config.steps:
                    break
    finally:
        bar.close()
        log.close()
    return net.eval()


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (the data path uses its own)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
