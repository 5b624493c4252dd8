"""Training losses on normalised ab (``ab / 110``).

The reference (InstColorization, after Zhang et al. 2017) regresses ab with a Huber
loss of ``delta = 1/110`` (one Lab unit), summed over the two channels, averaged over
pixels and scaled by 10. Images whose ground truth is nearly gray teach nothing but
washed-out colours, so they are masked out (reference: ab range below 5 Lab units).

Regression towards the (conditional) median still favours desaturated colours: a pixel
that could be red or blue is cheapest as gray. Optional class rebalancing (Zhang et al.
2016, eq. 4) weighs each pixel by the rarity of its true colour: ab is quantised on a
grid of 10 Lab units, the empirical prior ``p`` is smoothed with a Gaussian, and a pixel
whose colour falls in bin ``q`` gets ``w_q ∝ 1 / ((1 - λ) p_q + λ / Q)``, normalised so
that ``E_p[w] = 1`` (``Q``: the number of bins that occur).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM
from instacolor.models.classes import rebalance_weights, soft_encoded_cross_entropy

__all__ = [
    "AB_BINS",
    "HUBER_DELTA",
    "LOSS_SCALE",
    "ab_bin_index",
    "ab_prior",
    "class_loss",
    "colorful_mask",
    "huber_ab_loss",
    "l2_ab_loss",
    "rebalance_weights",
]

HUBER_DELTA = 1.0 / AB_NORM
LOSS_SCALE = 10.0
_MIN_AB_RANGE = 5.0 / AB_NORM
AB_BINS = 22  # per axis: [-110, 110) in steps of 10 Lab units
_GRID = 10.0 / AB_NORM


def colorful_mask(ab: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: samples whose ab spans at least 5 Lab units (not nearly gray)."""
    flat = ab.flatten(2)
    spread = (flat.amax(2) - flat.amin(2)).abs().sum(1)
    return spread >= _MIN_AB_RANGE


def ab_bin_index(ab: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` int64 bin of each pixel of normalised ``ab`` ``(B, 2, H, W)``."""
    cell = ((ab + 1.0) / _GRID).floor().long().clamp_(0, AB_BINS - 1)
    return cell[:, 0] * AB_BINS + cell[:, 1]


def ab_prior(ab: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """Smoothed empirical distribution ``(AB_BINS**2,)`` of the pixels of ``ab``.

    Args:
        ab: ``(B, 2, H, W)`` normalised ab of sample images.
        sigma: Gaussian smoothing in bins (0.5 bins = 5 Lab units, as in Zhang et al.).
    """
    counts = torch.bincount(ab_bin_index(ab).flatten(), minlength=AB_BINS**2).double()
    grid = counts.view(1, 1, AB_BINS, AB_BINS)
    if sigma > 0:
        radius = max(1, int(3 * sigma + 0.5))
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (x / sigma) ** 2)
        k = k / k.sum()
        grid = F.conv2d(grid, k.view(1, 1, -1, 1), padding=(radius, 0))
        grid = F.conv2d(grid, k.view(1, 1, 1, -1), padding=(0, radius))
        grid = grid * (counts.view_as(grid) > 0)  # only colours that occur
    prior = grid.flatten()
    return (prior / prior.sum()).float()


def huber_ab_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference regression loss over colourful samples; 0 (with grad) if there are none.

    Args:
        pred: ``(B, 2, H, W)`` predicted normalised ab.
        target: ``(B, 2, H, W)`` ground-truth normalised ab.
        weights: optional per-bin rebalancing weights from :func:`rebalance_weights`;
            each pixel's loss is multiplied by the weight of its true colour's bin.

    Returns:
        Scalar loss: ``10 * mean_pixels(w * sum_channels(huber_delta(pred - target)))``.
    """
    return _masked_loss(pred, target, weights, "huber")


def l2_ab_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error over colourful samples: the loss whose optimum maximises PSNR.

    Huber with a delta of one Lab unit is nearly L1, whose optimum is the conditional
    median; PSNR rewards the conditional mean. Same arguments and masking as
    :func:`huber_ab_loss`.

    Returns:
        Scalar loss: ``10 * mean_pixels(w * sum_channels((pred - target) ** 2))``.
    """
    return _masked_loss(pred, target, weights, "l2")


def _masked_loss(pred, target, weights, kind: str) -> torch.Tensor:
    keep = colorful_mask(target)
    if not bool(keep.any()):
        return pred.sum() * 0.0
    pred, target = pred[keep], target[keep]
    if kind == "huber":
        per = F.smooth_l1_loss(pred, target, beta=HUBER_DELTA, reduction="none").sum(1)
    else:
        per = (pred - target).square().sum(1)
    if weights is not None:
        per = per * weights.to(per.device, per.dtype)[ab_bin_index(target)]
    return LOSS_SCALE * per.mean()


def class_loss(
    logits: torch.Tensor, ab: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Rebalanced soft-encoded cross-entropy of the class head on colourful samples.

    Args:
        logits: ``(B, 529, S/4, S/4)`` class logits.
        ab: ``(B, 2, S, S)`` ground-truth normalised ab; area-averaged to the logits' size.
        weights: per-bin rebalancing weights, or None.
    """
    keep = colorful_mask(ab)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    target = F.interpolate(ab[keep], size=logits.shape[-2:], mode="area")
    return soft_encoded_cross_entropy(logits[keep], target * AB_NORM, weights)
