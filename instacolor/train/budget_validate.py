"""Validation of the time-budgeted stages and the choice of the weights' default decoding.

Scores are those of :mod:`instacolor.train.validators` (PSNR on uint8 sRGB, colourfulness of
Hasler & Suesstrunk, the gray baseline beside them): the regression output, and the class
head's annealed mean at a few temperatures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from instacolor.metrics import colorfulness, psnr
from instacolor.models.generator import FeatureHook
from instacolor.models.network import InstColorNet, instance_placements, network_input
from instacolor.train.validators import annealed_at, to_rgb8

__all__ = ["DEFAULT_TEMPERATURES", "choose_decoding", "validate_images", "validate_scenes"]

#: Annealed-mean temperatures validated (those of ``tools/train.py``'s validators).
DEFAULT_TEMPERATURES = (0.38, 0.6, 1.0)


def _scores(prefix: str, light: torch.Tensor, ab: torch.Tensor, truth: np.ndarray) -> dict:
    pred = to_rgb8(light, ab)
    return {
        f"{prefix}psnr": float(np.mean([psnr(p, t) for p, t in zip(pred, truth)])),
        f"{prefix}colorfulness": float(np.mean([colorfulness(p) for p in pred])),
    }


@torch.no_grad()
def validate_images(
    generator: torch.nn.Module,
    light: torch.Tensor,
    ab: torch.Tensor,
    *,
    mask_value: float,
    classify: bool,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    hook_for: Callable[[torch.Tensor], FeatureHook | None] | None = None,
) -> dict:
    """PSNR and colourfulness of one generator on held-out photos (``tools/train.py``'s keys).

    Args:
        generator: the full-image or instance generator.
        light: ``(V, 1, S, S)`` normalised L; ab: ``(V, 2, S, S)`` normalised ab.
        mask_value: the automatic mask channel.
        classify: also score the class head's annealed mean at ``temperatures``.
        hook_for: the generator's hook for a chunk of ``light`` (a guided network's
            ``generator_hook``), or None.

    Returns:
        ``val_psnr``, ``val_colorfulness`` (regression), ``val_gray_psnr``,
        ``val_colorfulness_gt`` and per temperature ``val_T{t}_psnr`` /
        ``val_T{t}_colorfulness``.
    """
    size = light.shape[-1]
    truth = to_rgb8(light, ab)
    regression, annealed = [], {t: [] for t in temperatures}
    for chunk in light.split(64):
        hook = hook_for(chunk) if hook_for is not None else None
        out = generator(network_input(chunk, mask_value), hook)
        regression.append(out.ab.float())
        if classify:
            logits = generator.classify(out.feature("conv8_3"))
            for t in temperatures:
                annealed[t].append(annealed_at(logits, size, t))
    record = _scores("val_", light, torch.cat(regression), truth)
    record.update(_scores("val_gray_", light, torch.zeros_like(ab), truth))
    record["val_colorfulness_gt"] = float(np.mean([colorfulness(t) for t in truth]))
    del record["val_gray_colorfulness"]
    for t, parts in annealed.items() if classify else ():
        record.update(_scores(f"val_T{t:g}_", light, torch.cat(parts), truth))
    return record


@torch.no_grad()
def validate_scenes(
    net: InstColorNet,
    scenes: Sequence[dict],
    *,
    classify: bool,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
) -> dict:
    """Fusion beside the full-image network alone on held-out scenes (stage 3).

    Args:
        net: the network (on the scenes' device).
        scenes: :class:`~instacolor.train.data.FusionScenes` samples.
        classify: also score the fused class head's annealed mean at ``temperatures``.

    Returns:
        ``val_psnr`` / ``val_colorfulness`` (fused regression), ``val_full_psnr``,
        ``val_gray_psnr``, ``val_colorfulness_gt`` and ``val_T{t}_psnr`` /
        ``val_T{t}_colorfulness`` of the fused class head.
    """
    device = next(net.parameters()).device
    rows: dict[str, list[float]] = {}
    for scene in scenes:
        light, ab = scene["l"][None].to(device), scene["ab"][None].to(device)
        size = tuple(int(v) for v in scene["size"])
        placements = instance_placements(
            scene["boxes"].numpy(), size, light.shape[-1], device=device
        )
        labels = scene.get("labels")
        keep = labels is not None and not bool(scene.get("drop_labels", False))
        fused = net.colorize(
            light,
            crops=scene["crops"].to(device),
            placements=placements,
            labels=labels[None].to(device) if keep else None,
            classify=classify,
        )
        truth = to_rgb8(light, ab)
        results = {
            "val_": _scores("", light, fused.ab, truth),
            "val_full_": _scores("", light, net.colorize(light).ab, truth),
            "val_gray_": _scores("", light, torch.zeros_like(ab), truth),
        }
        for t in temperatures if classify else ():
            decoded = annealed_at(fused.class_logits, ab.shape[-1], t)
            results[f"val_T{t:g}_"] = _scores("", light, decoded, truth)
        for prefix, scores in results.items():
            for key, value in scores.items():
                rows.setdefault(prefix + key, []).append(value)
        rows.setdefault("val_colorfulness_gt", []).append(colorfulness(truth[0]))
    record = {k: float(np.mean(v)) for k, v in rows.items()}
    for key in ("val_full_colorfulness", "val_gray_colorfulness"):
        record.pop(key, None)
    return record


def choose_decoding(record: dict, temperatures: Sequence[float], min_ratio: float = 0.6) -> dict:
    """The default decoding from a validation record of held-out *training* photos.

    Among regression and the annealed mean at each temperature, the highest PSNR whose
    colourfulness reaches ``min_ratio`` of the ground truth's; regression when none does.
    Choose on photos no test set shares (kodak24 and the held-out coco128 scenes decide
    the ship rule).
    """
    gt = record["val_colorfulness_gt"]
    candidates = [
        {
            "decode": "regression",
            "temperature": None,
            "psnr": record["val_psnr"],
            "colorfulness": record["val_colorfulness"],
        }
    ]
    for t in temperatures:
        if f"val_T{t:g}_psnr" in record:
            candidates.append(
                {
                    "decode": "annealed-mean",
                    "temperature": t,
                    "psnr": record[f"val_T{t:g}_psnr"],
                    "colorfulness": record[f"val_T{t:g}_colorfulness"],
                }
            )
    eligible = [c for c in candidates if c["colorfulness"] >= min_ratio * gt]
    best = max(eligible, key=lambda c: c["psnr"]) if eligible else candidates[0]
    rule = (
        f"highest PSNR with colourfulness >= {min_ratio:g} x ground truth ({gt:.1f})"
        if eligible
        else f"no decoding reached {min_ratio:g} x the ground truth's colourfulness: regression"
    )
    return {**best, "rule": rule, "candidates": candidates}
