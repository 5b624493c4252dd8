"""Training losses on normalised ab (``ab / 110``).

The reference (InstColorization, after Zhang et al. 2017) regresses ab with a Huber
loss of ``delta = 1/110`` (one Lab unit), summed over the two channels, averaged over
pixels and scaled by 10. Images whose ground truth is nearly gray teach nothing but
washed-out colours, so they are masked out (reference: ab range below 5 Lab units).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM

__all__ = ["HUBER_DELTA", "LOSS_SCALE", "colorful_mask", "huber_ab_loss"]

HUBER_DELTA = 1.0 / AB_NORM
LOSS_SCALE = 10.0
_MIN_AB_RANGE = 5.0 / AB_NORM


def colorful_mask(ab: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: samples whose ab spans at least 5 Lab units (not nearly gray)."""
    flat = ab.flatten(2)
    spread = (flat.amax(2) - flat.amin(2)).abs().sum(1)
    return spread >= _MIN_AB_RANGE


def huber_ab_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reference regression loss over colourful samples; 0 (with grad) if there are none.

    Args:
        pred: ``(B, 2, H, W)`` predicted normalised ab.
        target: ``(B, 2, H, W)`` ground-truth normalised ab.

    Returns:
        Scalar loss: ``10 * mean_pixels(sum_channels(huber_delta(pred - target)))``.
    """
    keep = colorful_mask(target)
    if not bool(keep.any()):
        return pred.sum() * 0.0
    per = F.smooth_l1_loss(pred[keep], target[keep], beta=HUBER_DELTA, reduction="none")
    return LOSS_SCALE * per.sum(1).mean()
