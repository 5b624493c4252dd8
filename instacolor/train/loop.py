"""The three training stages: what each trains, where it starts, and its loss.

* stage 1 - the full-image generator on whole images;
* stage 2 - the instance generator, initialised from stage 1, on one crop per image;
* stage 3 - the fusion generator, initialised from stage 1, with the stage-2 instance
  generator frozen; only the weight generators, ``model10`` and ``model_out`` (and the
  semantic block, when labels are given) learn, as in the reference.

Guided networks (``TrainConfig.guided``) train their guidance blocks with the stage's
generator (:data:`GUIDANCE_TRAINED`). :mod:`instacolor.train.trainer` runs a stage with
resumable checkpoints; the pieces here (``initial_network``, ``step_loss``...) are public
for it and for the budgeted trainer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

from instacolor.errors import InputError
from instacolor.models import classes
from instacolor.models.generator import FUSION_POINTS
from instacolor.models.network import InstColorNet, instance_placements, network_input
from instacolor.train.data import batch_hints, list_collate
from instacolor.train.losses import class_loss, huber_ab_loss, l2_ab_loss, rebalance_weights
from instacolor.weights import load_safetensors

__all__ = [
    "TrainConfig",
    "autocast_for",
    "check_config",
    "class_weights_of",
    "initial_network",
    "learning_rate",
    "list_collate",
    "load_stage",
    "pixel_weights",
    "set_modes",
    "step_loss",
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


def pixel_weights(config: TrainConfig) -> torch.Tensor | None:
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
