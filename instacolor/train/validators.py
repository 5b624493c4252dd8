"""Validators of ``tools/train.py``: scores of a network on held-out photos or scenes.

A validator is built once from the held-out data (its originals and gray baseline fixed)
and called as ``validate(net, step) -> dict`` by :func:`~instacolor.train.trainer.train_stage`,
which logs the dict to ``log.jsonl``. Scores are PSNR on uint8 sRGB and the colourfulness
of Hasler & Suesstrunk, beside the gray baseline. :func:`estimate_prior` gives the ab
prior the rebalanced losses weight by.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM, L_CENT, L_NORM, lab_to_rgb
from instacolor.metrics import colorfulness, psnr
from instacolor.models.classes import annealed_mean, class_prior
from instacolor.models.network import InstColorNet, instance_placements, network_input
from instacolor.train.data import ColorImages, FusionScenes
from instacolor.train.losses import ab_prior

__all__ = [
    "VAL_TEMPERATURES",
    "annealed_at",
    "estimate_prior",
    "make_fusion_validator",
    "make_validator",
    "to_rgb8",
]

#: Annealed-mean temperatures the validators report when the class head trains.
VAL_TEMPERATURES = (0.38, 0.6, 1.0)

Validator = Callable[[InstColorNet, int], dict]


def to_rgb8(light: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """uint8 sRGB from normalised Lab (any device and float dtype; computed in float32).

    Args:
        light: ``(B, 1, H, W)`` normalised L.
        ab: ``(B, 2, H, W)`` normalised ab.

    Returns:
        ``(B, H, W, 3)`` uint8 sRGB on the CPU.
    """
    lab = torch.cat((light.float() * L_NORM + L_CENT, ab.float() * AB_NORM), dim=1)
    rgb = lab_to_rgb(lab).clamp(0, 1)
    return (rgb * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def annealed_at(logits: torch.Tensor, size: int, temperature: float) -> torch.Tensor:
    """Annealed-mean ab of the class head, upsampled.

    Args:
        logits: ``(B, 529, s, s)`` class logits.
        size: output side in pixels.
        temperature: annealed-mean temperature.

    Returns:
        ``(B, 2, size, size)`` float ab in network units (divided by ``AB_NORM``).
    """
    low = annealed_mean(logits.float(), temperature) / AB_NORM
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def make_validator(files: list[Path], size: int, stage: int, classify: bool = False) -> Validator:
    """PSNR and colorfulness of the full (stages 1, 3) or instance (2) network.

    Args:
        files: held-out colour photos, read once as ``(V, 1, size, size)`` L and
            ``(V, 2, size, size)`` ab without augmentation.
        size: working side in pixels.
        stage: 2 scores ``net.instance``, otherwise ``net.full``.
        classify: also score the class head's annealed mean at :data:`VAL_TEMPERATURES`.

    Returns:
        ``validate(net, step)`` giving ``val_psnr``, ``val_gray_psnr``,
        ``val_colorfulness``, ``val_colorfulness_gt`` and, with ``classify``,
        ``val_T{t}_psnr`` / ``val_T{t}_colorfulness`` per temperature.
    """
    data = ColorImages(files, size, augment=False)
    batch = [data[i] for i in range(len(data))]
    light = torch.stack([b["l"] for b in batch])
    ab = torch.stack([b["ab"] for b in batch])
    truth = to_rgb8(light, ab)
    gray = to_rgb8(light, torch.zeros_like(ab))

    def validate(net: InstColorNet, step: int) -> dict:
        gen = net.instance if stage == 2 else net.full
        device = next(gen.parameters()).device
        preds, annealed = [], {t: [] for t in VAL_TEMPERATURES}
        with torch.no_grad():
            for chunk in light.split(32):
                chunk = chunk.to(device)
                hook = net.generator_hook("instance" if stage == 2 else "full", chunk)
                out = gen(network_input(chunk, net.mask_value), hook)
                preds.append(out.ab.float().cpu())
                if classify:
                    logits = gen.classify(out.feature("conv8_3")).float().cpu()
                    for t in VAL_TEMPERATURES:
                        annealed[t].append(annealed_at(logits, size, t))
        pred = to_rgb8(light, torch.cat(preds))
        record = {
            "val_psnr": float(np.mean([psnr(p, t) for p, t in zip(pred, truth)])),
            "val_gray_psnr": float(np.mean([psnr(g, t) for g, t in zip(gray, truth)])),
            "val_colorfulness": float(np.mean([colorfulness(p) for p in pred])),
            "val_colorfulness_gt": float(np.mean([colorfulness(t) for t in truth])),
        }
        for t, parts in annealed.items() if classify else ():
            decoded = to_rgb8(light, torch.cat(parts))
            record[f"val_T{t:g}_psnr"] = float(
                np.mean([psnr(p, g) for p, g in zip(decoded, truth)])
            )
            record[f"val_T{t:g}_colorfulness"] = float(np.mean([colorfulness(p) for p in decoded]))
        return record

    return validate


def make_fusion_validator(scenes: FusionScenes) -> Validator:
    """PSNR of the fusion network beside the full-image network alone, on held-out scenes.

    Args:
        scenes: held-out scenes; each sample's ``l`` ``(1, S, S)`` and ``ab`` ``(2, S, S)``,
            ``crops``, ``boxes`` ``(N, 4)`` XYXY in input pixels, ``size`` and optional
            ``labels`` are read once.

    Returns:
        ``validate(net, step)`` giving ``val_psnr`` (fusion with the semantic map),
        ``val_fusion_no_semantic_psnr``, ``val_full_psnr``, ``val_gray_psnr`` and
        ``val_colorfulness`` (of the fusion output).
    """
    samples = [scenes[i] for i in range(len(scenes))]
    # fixed across validations: the originals and the gray baseline
    truths = [to_rgb8(b["l"][None], b["ab"][None])[0] for b in samples]
    gray = [psnr(to_rgb8(b["l"][None], torch.zeros_like(b["ab"][None]))[0], t)
            for b, t in zip(samples, truths)]  # fmt: skip

    def validate(net: InstColorNet, step: int) -> dict:
        device = next(net.parameters()).device
        rows = {"full": [], "fusion": [], "plain": []}
        colorful = []
        with torch.no_grad():
            for b, truth in zip(samples, truths):
                light = b["l"][None].to(device)
                size = tuple(int(v) for v in b["size"])
                placements = instance_placements(
                    b["boxes"].numpy(), size, light.shape[-1], device=device
                )
                labels = b["labels"][None].to(device) if "labels" in b else None
                crops = b["crops"].to(device)
                fused = net.colorize(light, crops=crops, placements=placements, labels=labels)
                plain = net.colorize(light, crops=crops, placements=placements)
                full = net.colorize(light)
                for key, ab in (("full", full.ab), ("fusion", fused.ab), ("plain", plain.ab)):
                    pred = to_rgb8(b["l"][None], ab.float().cpu())[0]
                    rows[key].append(psnr(pred, truth))
                    if key == "fusion":
                        colorful.append(colorfulness(pred))
        return {
            "val_psnr": float(np.mean(rows["fusion"])),
            "val_fusion_no_semantic_psnr": float(np.mean(rows["plain"])),
            "val_full_psnr": float(np.mean(rows["full"])),
            "val_gray_psnr": float(np.mean(gray)),
            "val_colorfulness": float(np.mean(colorful)),
        }

    return validate


def estimate_prior(
    files: list[Path], size: int, *, seed: int, n: int = 1000, bins: str = "pixel"
) -> torch.Tensor:
    """The ab prior of ``n`` training images drawn at random.

    Args:
        files: training photos; ``min(n, len(files))`` are drawn with ``seed``.
        size: working side in pixels.
        seed: seed of the draw.
        n: number of photos drawn.
        bins: ``"pixel"``: the regression rebalancing's 22 x 22 grid (``losses.ab_prior``);
            ``"classes"``: the class head's 529 bins (``classes.class_prior``).

    Returns:
        Smoothed distribution ``(484,)`` (``"pixel"``) or ``(529,)`` (``"classes"``).
    """
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(files), size=min(n, len(files)), replace=False))
    data = ColorImages([files[i] for i in pick], size, augment=False)
    ab = torch.stack([data[i]["ab"] for i in range(len(data))])
    return class_prior(ab * AB_NORM) if bins == "classes" else ab_prior(ab)
