"""Fine-tuning weights on a collection's own colour photos, on a CPU, within a time budget.

What trains (see docs/finetune.md for why): the full-image network's decoder - the
dilated middle (``model5``-``model7``), the up-sampling blocks, the skip convolutions
and the regression head (and the class head when the weights decode with it) - plus the
full network's guidance pyramid and modulations: an unguided base is first given the
frozen pretrained encoder's guidance (``InstColorNet.with_guidance``, identity until
trained) unless ``guide=False``. The low layers
(``model1``-``model4``) and every BatchNorm's statistics stay as they are (the network
runs in eval mode throughout): a few hundred photos are too few to re-learn edges and
textures, and gradients then stop at the skip sources, so a step costs little more than
a forward pass. For guided weights the frozen encoder's features of fixed crops are
cached once (:mod:`instacolor.train.cache`), so epochs do not run it.

The instance and fusion networks (used when a detector gives instances) receive the
same change: each fine-tuned parameter's difference from the base weights is added to
the instance and fusion networks' parameter of the same name, so the three networks'
decoders move together and the fusion blends features of one adapted decoder.

A held-out part of the collection (default 10 %, at least 10 photos) is scored at the
weights' working size before training and every 10-60 s during it; the best state
by held-out PSNR is kept, and the base weights are written when nothing beat them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.models.classes import class_prior
from instacolor.train.collection import scan_collection, split_collection
from instacolor.train.data import to_lab_tensors
from instacolor.train.finetune_batches import cached_batches, photo_batches
from instacolor.train.finetune_report import (
    FinetuneReport,
    Scores,
    export_finetuned,
    held_out_of,
    score,
    write_grid,
)
from instacolor.train.loop import (
    LOSSES,
    TrainConfig,
    autocast_for,
    class_weights_of,
    step_loss,
)
from instacolor.train.trainer import save_checkpoint

__all__ = ["MIN_PHOTOS", "TRAINED_MODULES", "FinetuneReport", "Scores", "finetune"]

#: The fewest colour photos a collection needs (at least 10 are held out).
MIN_PHOTOS = 30
#: Sub-modules of the full-image network that fine-tuning trains (plus guidance).
TRAINED_MODULES = (
    "model5", "model6", "model7", "model8up", "model8", "model9up", "model9",
    "model10up", "model10", "model3short8", "model2short9", "model1short10", "model_out",
)  # fmt: skip
_CHECKPOINT = "latest.pt"
_WARMUP = 0.15  # of the time budget (it includes reading and the first scoring)
_MARK = "FINETUNE_WORK"


def _outputs(out: Path) -> tuple[Path, Path, Path]:
    stem = out.with_suffix("")
    return (
        out.with_name(stem.name + ".finetune.json"),
        out.with_name(stem.name + ".finetune.png"),
        out.with_name(out.name + ".work"),
    )


def _check_paths(out: Path, resume: bool) -> tuple[Path, Path, Path]:
    if out.suffix != ".safetensors":
        raise InputError(f"out: expected a path ending in .safetensors, received {str(out)!r}")
    report, grid, work = _outputs(out)
    for path in (out, report, grid):
        if path.exists() or path.is_symlink():
            raise InputError(
                f"out: {str(path)!r} exists; expected a new path (nothing is overwritten): "
                "choose another output name or move the file away"
            )
    if work.exists() and not resume:
        raise InputError(
            f"{str(work)!r} holds a stopped fine-tuning run; continue it with resume "
            "(--resume) or remove that folder to start again"
        )
    if work.exists() and not (work / _MARK).is_file():
        raise InputError(
            f"{str(work)!r} exists but is not a fine-tuning run's folder; move it away"
        )
    return report, grid, work


def _trainable(net, with_class: bool) -> dict[str, torch.nn.Parameter]:
    """Freeze ``net`` but the fine-tuned parameters; returns them by state-dict name."""
    for p in net.parameters():
        p.requires_grad_(False)
    modules = TRAINED_MODULES + (("model_class",) if with_class else ())
    names = {}
    for name, p in net.named_parameters():
        parts = name.split(".")
        if (parts[0] == "full" and parts[1] in modules) or name.startswith("guidance.full."):
            if name.startswith("guidance.full.encoder."):
                continue
            p.requires_grad_(True)
            names[name] = p
    return names


def _propagate(net, start: dict[str, torch.Tensor]) -> None:
    """Add each fine-tuned parameter's change to the instance and fusion networks'."""
    state = net.state_dict()
    with torch.no_grad():
        for name, before in start.items():
            delta = state[name] - before
            for target in ("instance", "fusion"):
                if name.startswith("full."):
                    other = target + name[len("full") :]
                else:  # guidance.full.* -> guidance.<target>.*
                    other = name.replace("guidance.full.", f"guidance.{target}.", 1)
                if other in state and state[other].shape == delta.shape:
                    state[other].add_(delta)


def finetune(
    photos: str | os.PathLike,
    out: str | os.PathLike,
    *,
    base: str | os.PathLike = "default",
    minutes: float = 15.0,
    steps: int | None = None,
    holdout: float = 0.1,
    resume: bool = False,
    batch_size: int = 16,
    lr: float = 3e-4,
    loss: str = "huber",
    guide: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> FinetuneReport:
    """Fine-tune ``base`` on a folder of colour photos and write the best weights to ``out``.

    Args:
        photos: a folder of the collection's colour photos (recursive); gray, near-gray
            and unreadable files are skipped and counted.
        out: the new weights file (``.safetensors``; must not exist). The report
            ``<stem>.finetune.json`` and sample grid ``<stem>.finetune.png`` are written
            beside it; ``<out>.work/`` holds the run until it completes.
        base: the weights to start from (a registered name or a file).
        minutes: time budget of the whole run (reading, caching, training), after which
            the best state is exported.
        steps: stop after this many training steps (``minutes`` stays a limit): the
            learning-rate schedule and the held-out scoring then follow the steps instead
            of the clock, so the same photos, base, options and steps give the same
            weights on a fast or a slow (or busy) machine of the same kind. None: train
            until the time budget ends.
        holdout: fraction of the photos held out for scoring (at least 10 photos).
        resume: continue a stopped run from ``<out>.work/``.
        batch_size: crops per step.
        lr: Adam learning rate (warm-up, then cosine decay over the time budget).
        loss: ``"huber"`` (the training recipe's, nearly L1: saturated colours) or
            ``"l2"`` (squared error, whose optimum maximises PSNR).
        guide: give an unguided base (v4) the frozen pretrained encoder's guidance
            blocks (identity at the start) and train them with the decoder: the encoder's
            ImageNet features tell the decoder what it sees (no effect on a guided base;
            False: train the base's own decoder only).
        seed: seed of the split, the crops and the batches.
        progress: show a progress bar with the held-out PSNR.

    Returns:
        A :class:`FinetuneReport`.

    Raises:
        InputError: ``out`` (or its report) exists, fewer than :data:`MIN_PHOTOS` colour
            photos, a bad option, or a stopped run of other photos or options.
        WeightsError: ``base`` cannot be loaded.
    """
    from instacolor.weights import load_weights, weights_digest

    t_start = time.perf_counter()
    out = Path(out)
    report_path, grid_path, work = _check_paths(out, resume)
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise InputError(f"minutes: expected a positive number, received {minutes!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise InputError(f"steps: expected a positive integer or None, received {steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected a positive integer, received {batch_size!r}")
    if loss not in LOSSES:
        raise InputError(f"loss: expected one of {sorted(LOSSES)}, received {loss!r}")
    split_collection(MIN_PHOTOS, holdout)  # checks the fraction before the photos are read
    loaded = load_weights(base)
    net = loaded.net.float().eval()
    if guide and not net.guided:
        net = net.with_guidance().eval()
    size = loaded.working_size
    collection = scan_collection(photos, keep_side=2 * size)
    n = len(collection.files)
    if n < MIN_PHOTOS:
        raise InputError(
            f"photos: expected at least {MIN_PHOTOS} colour photos, found {n} in "
            f"{str(photos)!r} (skipped {collection.skipped_gray} gray or near-gray, "
            f"{collection.skipped_unreadable} unreadable); add photos of the collection"
        )
    train, held = split_collection(n, holdout, seed=seed)
    classify = loaded.class_head and loaded.decoding.mode != "regression"
    settings = {
        "base_sha256": weights_digest(loaded),
        "collection": collection.digest,
        "holdout": holdout,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "loss": loss,
        "guide": bool(guide),
        "steps": steps,
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / _MARK).write_text("instacolor finetune run folder\n")
    ckpt = _load_checkpoint(work, settings)
    params = _trainable(net, classify)
    start = {k: v.detach().clone() for k, v in params.items()}
    config = TrainConfig(stage=1, out_dir=str(work), width=net.width, size=size,
                         batch_size=min(batch_size, len(train)), guided=net.guided,
                         class_weight=0.5 if classify else 0.0, channels_last=True, loss=loss,
                         cpu_bf16=_bf16_supported())  # fmt: skip
    net.to(memory_format=torch.channels_last)  # oneDNN's fast layout; undone before export
    if classify:
        ab = torch.stack([to_lab_tensors(collection.photos[i], size)[1] for i in train])
        config = replace(config, class_prior=class_prior(ab * AB_NORM).tolist())
    class_weights = class_weights_of(config)
    optimizer = torch.optim.Adam(list(params.values()), lr=lr, betas=(0.9, 0.99))
    holdout_data = held_out_of(collection, held, size)
    before = score(net, holdout_data, loaded) if ckpt is None else Scores(**ckpt["before"])
    step, used, best, best_psnr = 0, 0.0, None, before.psnr
    if ckpt is not None:
        net.load_state_dict({**net.state_dict(), **ckpt["trainable"]})
        optimizer.load_state_dict(ckpt["optimizer"])
        step, used, best, best_psnr = ckpt["step"], ckpt["seconds"], ckpt["best"], ckpt["best_psnr"]
    if net.guided:
        next_batch = cached_batches(net, [collection.files[i] for i in train], work / "cache",
                                     size, config.batch_size, seed, progress)  # fmt: skip
    else:
        next_batch = photo_batches(collection, train, size, config.batch_size, seed)
    budget = minutes * 60.0
    interval = min(60.0, max(10.0, budget / 15))  # scoring costs a few steps
    score_every = max(1, steps // 15) if steps is not None else 0
    clock = used - t_start  # time used = clock + perf_counter()
    bar = tqdm(total=round(budget), initial=min(round(budget), round(used)), unit="s",
               disable=not progress, desc="finetune")  # fmt: skip
    bar.set_postfix(held_out=f"{best_psnr:.2f} dB", base=f"{before.psnr:.2f}")
    last_eval, step_time, eval_time = clock + time.perf_counter(), 0.0, 0.0
    try:
        while True:
            now = clock + time.perf_counter()
            if now + step_time + eval_time + 1.0 > budget or (steps is not None and step >= steps):
                break
            t0 = time.perf_counter()
            batch = next_batch(step)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(lr, now / budget if steps is None else step / steps)
            with autocast_for(config):
                loss = step_loss(net, batch, config, None, class_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            step_time = max(step_time * 0.9, time.perf_counter() - t0)
            now = clock + time.perf_counter()
            bar.update(min(round(budget), round(now)) - bar.n)
            if steps is None:
                due = now - last_eval >= interval
            else:
                due = step % score_every == 0 or step >= steps
            if due or now + step_time + eval_time + 1.0 > budget:
                t1 = time.perf_counter()
                scores = score(net, holdout_data, loaded)
                if scores.psnr > best_psnr:
                    best_psnr = scores.psnr
                    best = {k: v.detach().clone() for k, v in params.items()}
                save_checkpoint(work / _CHECKPOINT, {
                    "settings": settings, "before": before.__dict__, "step": step,
                    "seconds": clock + time.perf_counter(), "best": best,
                    "best_psnr": best_psnr, "optimizer": optimizer.state_dict(),
                    "trainable": {k: v.detach().clone() for k, v in params.items()},
                })  # fmt: skip
                eval_time = time.perf_counter() - t1
                last_eval = clock + time.perf_counter()
                bar.set_postfix(held_out=f"{scores.psnr:.2f} dB", best=f"{best_psnr:.2f}",
                                base=f"{before.psnr:.2f}")  # fmt: skip
    finally:
        bar.close()
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(start[name] if best is None else best[name])
    net.to(memory_format=torch.contiguous_format)
    after = before if best is None else score(net, holdout_data, loaded)
    _propagate(net, start)
    seconds = clock + time.perf_counter()
    report = FinetuneReport(
        output=out,
        base=loaded.name,
        base_sha256=settings["base_sha256"],
        collection_digest=collection.digest,
        photos=n,
        train_photos=len(train),
        held_out=len(held),
        skipped_gray=collection.skipped_gray,
        skipped_unreadable=collection.skipped_unreadable,
        gray_psnr=holdout_data.gray_psnr,
        original_colorfulness=holdout_data.colorfulness,
        before=before,
        after=after,
        improved=best is not None,
        steps=step,
        seconds=seconds,
        report=report_path,
        grid=grid_path,
    )
    export_finetuned(net, loaded, report)
    base_net = load_weights(base).net.float().eval()  # the "before" column
    write_grid(grid_path, holdout_data, base_net, net, loaded)
    report_path.write_text(json.dumps(report.record(), indent=1) + "\n")
    shutil.rmtree(work)
    return report


def _learning_rate(lr: float, progress: float) -> float:
    """``lr`` at ``progress`` (time used / budget): a linear warm-up over the first
    :data:`_WARMUP` of the budget (Adam's first steps move every parameter by about
    ``lr``, which throws trained weights off), then a cosine decay to 0."""
    warm = min(1.0, progress / _WARMUP)
    return lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _bf16_supported() -> bool:
    """Whether training steps run in bfloat16 autocast: CPUs with native bf16 (AVX-512
    BF16, AMX), where it is about twice as fast; scoring stays in float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _load_checkpoint(work: Path, settings: dict) -> dict | None:
    path = work / _CHECKPOINT
    if not path.is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    saved = ckpt.get("settings") or {}
    changed = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in settings.items() if saved.get(k) != v]
    if changed:
        raise InputError(
            f"resume from {str(path)!r}: expected the same photos, base weights and options, "
            f"received changes: {', '.join(changed)}; resume with the run's options, or remove "
            "that folder to start again"
        )
    return ckpt
