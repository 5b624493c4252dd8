"""The three training stages with resumable, bit-exact checkpoints.

* stage 1 - the full-image generator on whole images;
* stage 2 - the instance generator, initialised from stage 1, on one crop per image;
* stage 3 - the fusion generator, initialised from stage 1, with the stage-2 instance
  generator frozen; only the weight generators, ``model10`` and ``model_out`` (and the
  semantic block, when labels are given) learn, as in the reference.

Resuming: a checkpoint holds the trained modules, the optimizer, the step and the seed;
the data order of every epoch is a permutation seeded by ``(seed, epoch)`` and every
sample's augmentation by ``(seed, epoch, index)``: a resumed run continues exactly.
The stage pieces (``initial_network``, ``step_loss``...) are public for the GPU recipe.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from instacolor.checkpoints import load_safetensors
from instacolor.errors import InputError
from instacolor.models import classes
from instacolor.models.generator import FUSION_POINTS
from instacolor.models.network import InstColorNet, instance_placements, network_input
from instacolor.train.data import batch_hints, list_collate
from instacolor.train.losses import class_loss, huber_ab_loss, l2_ab_loss, rebalance_weights

__all__ = [
    "EpochSampler",
    "TrainConfig",
    "autocast_for",
    "check_config",
    "class_weights_of",
    "initial_network",
    "learning_rate",
    "list_collate",
    "load_stage",
    "set_modes",
    "step_loss",
    "train_stage",
    "trainable_parameters",
]

LOSSES = {"huber": huber_ab_loss, "l2": l2_ab_loss}
#: Guidance blocks (``InstColorNet.guidance``) each stage trains (the instance network,
#: guided by its crops' own view, stays as stage 2 or 1 left it in stage 3).
GUIDANCE_TRAINED = {1: ("full",), 2: ("instance",), 3: ("fusion",)}
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Options of one training stage (see ``tools/train.py`` for the command line)."""

    stage: int
    out_dir: str
    width: int = 16
    size: int = 128
    batch_size: int = 16
    lr: float = 5e-4
    steps: int = 1000
    checkpoint_every: int = 200
    validate_every: int = 200
    seed: int = 0
    device: str = "cpu"
    workers: int = 1
    amp: bool = False
    init: str | None = None  # stage-1/2 checkpoint (or .safetensors) to start from
    init_full: str | None = None  # stage 3: take the full-image network from this checkpoint
    fusion_from_full: bool = False  # stage 3: fusion backbone := full (weight layers: init's)
    instance_from_full: bool = False  # stage 3: instance network := full (no stage 2)
    rebalance: float = 0.0  # lambda of class rebalancing (0: the reference's plain loss)
    prior: list[float] | None = None  # ab prior over AB_BINS**2 bins, needed to rebalance
    loss: str = "huber"  # "huber" (the reference's) or "l2" (the PSNR optimum)
    lr_schedule: str = "constant"  # or "cosine": lr * (1 + cos(pi * step / steps)) / 2
    # stage 3 from stage 2: added to the background (full-image) logit's bias at every
    # fusion point, so fusion starts near the full-image network (0: the reference's init)
    background_logit: float = 0.0
    # classification head (Zhang et al. 2016): weight of the soft-encoded cross-entropy
    # over the 529 ab bins beside the regression loss (0: regression only, the head idle)
    class_weight: float = 0.0
    class_rebalance: float = 0.5  # lambda of the 529-bin rebalancing (0: none)
    class_prior: list[float] | None = None  # prior over the 529 bins (classes.class_prior)
    cpu_bf16: bool = False  # bfloat16 autocast on the CPU (AVX-512 BF16 CPUs)
    channels_last: bool = False  # NHWC memory format for the convolutions
    guided: bool = False  # generators guided by the frozen pretrained encoder (weights v6)
    guidance_lr_scale: float = 1.0  # learning rate of the guidance blocks relative to lr
    extra: dict = field(default_factory=dict)


class EpochSampler(Sampler[int]):
    """Indices of a seeded permutation per epoch, starting at ``start`` samples in."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start


def trainable_parameters(net: InstColorNet, stage: int) -> list[torch.nn.Parameter]:
    """The parameters a stage trains (stage 3: weight generators, model10, model_out)."""
    guided = []
    if net.guidance is not None:  # (the frozen encoder inside has no trainable tensor)
        for name in GUIDANCE_TRAINED[stage]:
            guided += [p for p in net.guidance[name].parameters() if p.requires_grad]
    if stage in (1, 2):
        return list((net.full if stage == 1 else net.instance).parameters()) + guided
    fusion = net.fusion
    params = [p for n, p in fusion.named_parameters() if n.startswith("weight_layer")]
    params += list(fusion.model10.parameters()) + list(fusion.model_out.parameters())
    params += list(fusion.model_class.parameters())  # reads the fused conv8_3
    return params + guided + list(net.semantic.parameters())


def set_modes(net: InstColorNet, stage: int) -> None:
    net.eval()
    if stage == 1:
        net.full.train()
    elif stage == 2:
        net.instance.train()
    else:  # the fusion backbone keeps its stage-1 BatchNorm statistics
        for module in (net.fusion.model10, net.fusion.model_out, net.semantic):
            module.train()
    if net.guidance is not None:  # (the encoder inside stays in eval mode)
        for name in GUIDANCE_TRAINED[stage]:
            net.guidance[name].train()
    if stage == 3:
        for point in FUSION_POINTS:
            net.fusion.weight_layer_at(point).train()


def load_stage(path: str | os.PathLike, net: InstColorNet) -> int:
    """Load a training checkpoint's network into ``net``; returns its stage.

    A ``.safetensors`` weights file (e.g. the shipped weights) counts as stage 3: it
    holds all three networks.
    """
    if str(path).endswith(".safetensors"):
        state = load_safetensors(path).float().state_dict()
        if net.guidance is not None and not any(k.startswith("guidance.") for k in state):
            state.update({k: v for k, v in net.state_dict().items() if k.startswith("guidance.")})
        net.load_state_dict(state)
        return 3
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net.load_state_dict(ckpt["net"])
    return int(ckpt["config"]["stage"])


def initial_network(config: TrainConfig) -> InstColorNet:
    torch.manual_seed(config.seed)
    net = InstColorNet(config.width, guided=config.guided)
    prior = load_stage(config.init, net) if config.init else 0
    allowed = {config.stage - 1, config.stage}
    if config.stage == 3 and config.instance_from_full:
        allowed.add(1)  # no stage 2: the instance network starts as the full-image one
    if config.stage > 1 and prior not in allowed:
        raise InputError(
            f"stage {config.stage} starts from a stage-{config.stage - 1} checkpoint (or "
            f"continues a stage-{config.stage} one) (init=), received "
            f"{'none' if not config.init else f'a stage-{prior} checkpoint'}"
        )
    if (config.init_full or config.fusion_from_full or config.instance_from_full) and (
        config.stage != 3
    ):
        raise InputError(
            "init_full, fusion_from_full and instance_from_full are for stage 3, received "
            f"stage {config.stage}"
        )
    if config.init_full:
        donor = InstColorNet(config.width, guided=config.guided)
        load_stage(config.init_full, donor)
        net.full.load_state_dict(donor.full.state_dict())
        if net.guidance is not None:
            net.guidance["full"].load_state_dict(donor.guidance["full"].state_dict())
    if config.instance_from_full and config.stage == 3:
        net.instance.load_state_dict(net.full.state_dict())
        if net.guidance is not None:
            net.guidance["instance"].load_state_dict(net.guidance["full"].state_dict())
    if config.stage == 2 and prior == 1:
        net.instance.load_state_dict(net.full.state_dict())
        if net.guidance is not None:
            net.guidance["instance"].load_state_dict(net.guidance["full"].state_dict())
    if config.stage == 3 and (prior == 2 or config.fusion_from_full):
        net.fusion.load_state_dict(net.full.state_dict(), strict=False)
        if net.guidance is not None:
            net.guidance["fusion"].load_state_dict(net.guidance["full"].state_dict())
        with torch.no_grad():
            for point in FUSION_POINTS:
                last = net.fusion.weight_layer_at(point).simple_bg_conv[-2]
                last.bias.add_(config.background_logit)
    return net


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) under ``config.lr_schedule``."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
    return config.lr


def check_config(config: TrainConfig) -> None:
    if config.loss not in LOSSES:
        raise InputError(f"loss: expected one of {sorted(LOSSES)}, received {config.loss!r}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise InputError(
            f"lr_schedule: expected one of {list(LR_SCHEDULES)}, received {config.lr_schedule!r}"
        )


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


def _pixel_weights(config: TrainConfig) -> torch.Tensor | None:
    if config.rebalance <= 0:
        return None
    if config.prior is None:
        raise InputError("rebalance > 0 needs config.prior (see losses.ab_prior)")
    return rebalance_weights(torch.tensor(config.prior), config.rebalance).to(config.device)


def class_weights_of(config: TrainConfig) -> torch.Tensor | None:
    if config.class_weight <= 0 or config.class_rebalance <= 0:
        return None
    if config.class_prior is None:
        raise InputError(
            "class_rebalance > 0 needs config.class_prior (529 bins, classes.class_prior); "
            "tools/train.py estimates it from the training photos"
        )
    prior = torch.tensor(config.class_prior)
    return classes.rebalance_weights(prior, config.class_rebalance).to(config.device)


def step_loss(
    net: InstColorNet,
    batch: dict,
    config: TrainConfig,
    weights: torch.Tensor | None,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    device = config.device
    classify = config.class_weight > 0
    if config.stage in (1, 2):
        generator = net.full if config.stage == 1 else net.instance
        hints = batch_hints(batch, net.mask_value, device)  # WithHints' random hints
        light = batch["l"].to(device)
        x = network_input(light, net.mask_value, hints)
        encoded = batch.get("encoded")  # the encoder's features from a training cache
        if encoded is not None:
            encoded = tuple(f.to(device) for f in encoded)
        hook = None
        if net.guidance is not None:
            hook = net.generator_hook(
                "full" if config.stage == 1 else "instance", light, encoded=encoded
            )
        out = generator(x, hook)
        ab = batch["ab"].to(device)
        loss = LOSSES[config.loss](out.ab.float(), ab, weights)
        if classify:
            logits = generator.classify(out.feature("conv8_3"))
            loss = loss + config.class_weight * class_loss(logits, ab, class_weights)
        return loss
    losses = []
    for i in range(batch["l"].shape[0]):  # one scene at a time: instance counts differ
        size = tuple(int(v) for v in batch["size"][i])
        placements = instance_placements(
            batch["boxes"][i].numpy(), size, config.size, device=device
        )
        labels = batch["labels"][i][None].to(device) if "labels" in batch else None
        if "drop_labels" in batch and bool(batch["drop_labels"][i]):
            labels = None
        out = net.colorize(
            batch["l"][i : i + 1].to(device),
            crops=batch["crops"][i].to(device),
            placements=placements,
            labels=labels,
            classify=classify,
            hints=batch_hints(batch, net.mask_value, device, i),
        )
        ab = batch["ab"][i : i + 1].to(device)
        loss = LOSSES[config.loss](out.ab.float(), ab, weights)
        if classify:
            loss = loss + config.class_weight * class_loss(out.class_logits, ab, class_weights)
        losses.append(loss)
    return torch.stack(losses).mean()


def autocast_for(config: TrainConfig):
    """bf16 autocast on CUDA (``amp``) or on the CPU (``cpu_bf16``), else a no-op."""
    device = "cuda" if config.amp else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16, enabled=config.amp or config.cpu_bf16)


def _save(path: Path, payload: dict) -> None:
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
    weights = _pixel_weights(config)
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
                    _save(latest, payload)
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
