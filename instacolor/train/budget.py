"""Time-budgeted training stages for one accelerator, their validation and export.

The stages are :mod:`instacolor.train.loop`'s: the same initialisation from the previous
stage, the same trainable parameters and modes, the same loss (regression plus the
optional rebalanced 529-bin classification loss) and the same checkpoint payload, so
``tools/train.py --export`` and ``tools/validate.py`` read these checkpoints too. What
differs is the driver: a stage runs until its time budget is spent (not a step count),
its batches come from a callable that augments on the device
(:mod:`instacolor.train.pack`), and the learning rate follows the elapsed fraction
of the budget. Parameters a stage does not train are frozen (``requires_grad=False``),
which skips their weight gradients and changes nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from instacolor.color import AB_NORM
from instacolor.decode import Decoding
from instacolor.errors import InputError
from instacolor.models.classes import class_prior
from instacolor.models.network import InstColorNet
from instacolor.train.data import FusionScenes, sample_boxes
from instacolor.train.loop import (
    TrainConfig,
    autocast_for,
    check_config,
    class_weights_of,
    initial_network,
    list_collate,
    set_modes,
    step_loss,
    trainable_parameters,
)
from instacolor.train.pack import crop_batch, crop_boxes
from instacolor.train.trainer import save_checkpoint
from instacolor.weights import save_safetensors

__all__ = [
    "export_weights",
    "flops_per_sample",
    "freeze_untrained",
    "image_batches",
    "photo_prior",
    "scene_batches",
    "scenes_on",
    "schedule_lr",
    "train_for",
]


def image_batches(
    images: torch.Tensor, size: int, batch: int, *, stage: int, seed: int
) -> Callable[[int], dict]:
    """``next_batch(step)`` of stage 1 (crops of 70-100 % of the area, as ``ColorImages``)
    or stage 2 (one sampled box per photo, as ``InstanceCrops``), flipped half the time.

    Photos are drawn without replacement, epoch after epoch; crops are cut, resized to
    ``size`` and converted to Lab on the photos' device (:func:`crop_batch`).
    """
    rng = np.random.default_rng([seed, stage])
    device, n, side = images.device, len(images), images.shape[-1]
    order: list[int] = []

    def next_batch(step: int) -> dict:
        nonlocal order
        if len(order) < batch:
            order = order + rng.permutation(n).tolist()
        index, order = order[:batch], order[batch:]
        draw = crop_boxes if stage == 1 else sample_boxes
        boxes = _to_device(draw(rng, (side, side), batch).astype(np.float32), device)
        flip = _to_device(rng.random(batch) < 0.5, device)
        light, ab = crop_batch(images, _to_device(np.array(index), device), boxes, flip, size)
        return {"l": light, "ab": ab}

    return next_batch


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device`` without waiting for the device (pinned, non-blocking)."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def scenes_on(
    paths: Sequence[Path], size: int, boxes: dict, semantic: dict | None, device
) -> list[dict]:
    """:class:`~instacolor.train.data.FusionScenes` samples, made once, tensors on ``device``
    (boxes and sizes stay on the CPU, where the placements are computed)."""
    data = FusionScenes(list(paths), size, boxes=boxes, semantic=semantic or None)
    moved = ("l", "ab", "crops", "labels")
    return [
        {k: v.to(device) if k in moved else v for k, v in data[i].items()} for i in range(len(data))
    ]


def scene_batches(scenes: Sequence[dict], batch: int, *, seed: int) -> Callable[[int], dict]:
    """``next_batch(step)`` of stage 3: ``batch`` distinct scenes drawn at random."""
    rng = np.random.default_rng([seed, 3])

    def next_batch(step: int) -> dict:
        pick = rng.choice(len(scenes), size=min(batch, len(scenes)), replace=False)
        return list_collate([scenes[i] for i in pick])

    return next_batch


def photo_prior(images: torch.Tensor, size: int, count: int) -> list[float]:
    """The 529-bin ab prior of the first ``count`` photos, whole, computed on their device."""
    side, parts = images.shape[-1], []
    for start in range(0, min(count, len(images)), 256):
        idx = torch.arange(start, min(count, len(images), start + 256), device=images.device)
        boxes = torch.tensor([[0.0, 0.0, side, side]], device=images.device)
        flip = torch.zeros(len(idx), dtype=torch.bool, device=images.device)
        parts.append(crop_batch(images, idx, boxes.expand(len(idx), 4), flip, size)[1])
    return class_prior(torch.cat(parts) * AB_NORM).tolist()


def freeze_untrained(net: InstColorNet, stage: int) -> list[torch.nn.Parameter]:
    """Freeze every parameter ``stage`` does not train; returns the trained ones."""
    params = trainable_parameters(net, stage)
    net.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return params


def schedule_lr(lr: float, step: int, fraction: float, schedule: str, warmup: int) -> float:
    """Learning rate at ``step`` when ``fraction`` of the stage's time is spent.

    ``"cosine"`` decays ``lr`` to 0 over the time budget, ``"constant"`` keeps it; both
    ramp up linearly over the first ``warmup`` steps.
    """
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if schedule == "cosine":
        return lr * ramp * 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction)))
    return lr * ramp


def train_for(
    config: TrainConfig,
    next_batch: Callable[[int], dict],
    *,
    seconds: float,
    samples: int,
    log: Callable[[dict], None],
    schedule: str = "cosine",
    warmup: int = 0,
    log_every: int = 20,
    checkpoint_s: float = 60.0,
    on_checkpoint: Callable[[InstColorNet, int], None] | None = None,
) -> tuple[InstColorNet, dict]:
    """Run one stage until ``seconds`` have passed (at least one step).

    Args:
        config: the stage's options (``steps`` is ignored; ``init`` is the previous
            stage's checkpoint).
        next_batch: ``next_batch(step)`` -> the step's batch on ``config.device`` (the
            batch :func:`~instacolor.train.trainer.train_stage`'s loss takes).
        seconds: the stage's time budget.
        samples: images (stages 1-2) or scenes (stage 3) per batch, for the rates.
        log: receives a record every ``log_every`` steps.
        schedule: ``"cosine"`` (over the time budget) or ``"constant"``.
        warmup: steps of linear learning-rate warm-up.
        log_every: steps between log records (each one waits for the device).
        checkpoint_s: seconds between checkpoints (``out_dir/latest.pt``).
        on_checkpoint: called with the network (in eval mode) and the step after every
            checkpoint, e.g. to validate and export.

    Returns:
        ``(network in eval mode, totals)`` with steps, seconds, images/s, the last loss
        and the checkpoint path.
    """
    check_config(config)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    net = initial_network(config).to(device)
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    params = freeze_untrained(net, config.stage)
    fused = True if device.type == "cuda" else None
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.99), fused=fused)
    set_modes(net, config.stage)
    class_weights = class_weights_of(config)
    latest = out / "latest.pt"
    step, loss_value, window = 0, float("nan"), (0, 0.0)

    def checkpoint() -> None:
        payload = {"net": net.state_dict(), "optimizer": optimizer.state_dict()}
        save_checkpoint(latest, {**payload, "step": step, "config": asdict(config)})
        if on_checkpoint is not None:
            net.eval()
            on_checkpoint(net, step)
            set_modes(net, config.stage)

    start = time.perf_counter()
    last_checkpoint = start
    while step == 0 or time.perf_counter() - start < seconds:
        fraction = (time.perf_counter() - start) / seconds if seconds > 0 else 1.0
        lr = schedule_lr(config.lr, step, fraction, schedule, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next_batch(step)
        with autocast_for(config):
            loss = step_loss(net, batch, config, None, class_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % log_every == 0 or step == 1:
            loss_value = loss.item()  # waits for the device: rates below are real
            now = time.perf_counter()
            rate = (step - window[0]) * samples / max(now - start - window[1], 1e-9)
            log(
                {
                    "stage": config.stage,
                    "step": step,
                    "loss": loss_value,
                    "images_per_s": step * samples / (now - start),
                    "recent_images_per_s": rate,
                    "lr": lr,
                    "elapsed_s": now - start,
                }
            )
            window = (step, now - start)
        if time.perf_counter() - last_checkpoint >= checkpoint_s:
            checkpoint()
            last_checkpoint = time.perf_counter()
    loss_value = loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    checkpoint()
    totals = {
        "stage": config.stage,
        "steps": step,
        "seconds": elapsed,
        "samples": step * samples,
        "images_per_s": step * samples / elapsed,
        "loss": loss_value,
        "checkpoint": str(latest),
    }
    return net.eval(), totals


def flops_per_sample(config: TrainConfig, batch: dict, samples: int) -> float:
    """Convolution and matrix FLOPs of one training step per sample (forward + backward).

    Counted by ``torch.utils.flop_counter`` on a fresh network of ``config``'s width with
    the stage's frozen parameters, on ``batch`` (``samples`` images or scenes).
    """
    net = InstColorNet(config.width, guided=config.guided).to(config.device)
    freeze_untrained(net, config.stage)
    set_modes(net, config.stage)
    with FlopCounterMode(display=False) as counter:
        step_loss(net, batch, config, None, None).backward()
    return counter.get_total_flops() / samples


def export_weights(
    net: InstColorNet,
    path: str | Path,
    *,
    stages: int,
    working_size: int,
    class_head: bool,
    decoding: Decoding,
    trained_from: str,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``net`` as instacolor weights (float16), loadable by ``Colorizer(path)``.

    Before stage 3 has run the file holds the full-image network alone (architecture
    ``siggraph17`` with InstColorization's mask value): the instance and fusion networks
    are not trained yet, so the weights colorize whole images only. ``decoding`` becomes
    the weights' default (metadata ``decode``, ``temperature`` and, for annealed-mean,
    ``mix``). ``extra`` adds metadata entries (e.g. a fine-tuning run's provenance).
    """
    if decoding.mode != "regression" and not class_head:
        raise InputError(
            f"decode {decoding.spec!r}: expected 'regression' for a run without class loss "
            "(class_weight 0); train with a class weight or export with regression"
        )
    target = InstColorNet(
        net.width, with_instances=stages >= 3, mask_value=net.mask_value, guided=net.guided
    )
    wanted = target.state_dict()
    target.load_state_dict(
        {k: v.detach().float().cpu() for k, v in net.state_dict().items() if k in wanted}
    )
    metadata = {
        **(extra or {}),
        "working_size": str(working_size),
        "decode": decoding.mode,
        "temperature": repr(float(decoding.temperature)),
        "trained_from": trained_from,
        "stages": ",".join(str(s) for s in range(1, min(stages, 3) + 1)),
    }
    if decoding.mode != "regression":
        metadata["mix"] = repr(float(decoding.mix))
    if class_head:
        metadata["class_head"] = "trained"
    path = Path(path)
    return save_safetensors(target.eval(), path, name=path.stem, extra=metadata)
