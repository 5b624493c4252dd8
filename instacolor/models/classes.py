"""Quantised ab: the 529-bin grid of the classification head, its encoding and decoding.

The siggraph/InstColorization class head (``model_class``, conv8_3 -> 529 logits at a
quarter of the input size) predicts a distribution over a 23 x 23 grid of ab bins:
bin centres ``-110, -100, ..., 110`` Lab units on each axis, bin index
``round((a + 110) / 10) * 23 + round((b + 110) / 10)`` (a major, as the reference).

* :func:`soft_encode` - Zhang et al. 2016's target: each pixel's 5 nearest bin centres
  weighted by a Gaussian of the distance (sigma 5 Lab units), normalised;
* :func:`class_prior` / :func:`rebalance_weights` - the smoothed empirical prior ``p``
  and the weights ``w ∝ ((1 - λ) p + λ / Q)^-1`` with ``E_p[w] = 1``;
* :func:`annealed_mean` - the decoding ``E[ab]`` under ``softmax(logits / T)`` (the
  annealed mean of Zhang et al. 2016; ``T = 1`` is the mean, ``T -> 0`` the mode);
* :func:`confidence` - a per-pixel confidence in ``[0, 1]`` from the distribution.

Everything takes ab in Lab units and logits ``(B, 529, h, w)``.

Example:
    >>> import torch
    >>> logits = torch.full((1, AB_CLASSES, 1, 1), -1e4)
    >>> logits[0, bin_index(torch.tensor([[[[30.0]], [[-20.0]]]]))[0, 0, 0]] = 0
    >>> annealed_mean(logits, 0.38).flatten().tolist()
    [30.0, -20.0]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from instacolor.errors import InputError

__all__ = [
    "AB_CLASSES",
    "AB_GRID",
    "AB_MAX",
    "AB_STEP",
    "CONFIDENCE_KINDS",
    "annealed_mean",
    "bin_centers",
    "bin_index",
    "class_prior",
    "confidence",
    "rebalance_weights",
    "soft_encode",
    "soft_encoded_cross_entropy",
]

#: Largest |a|, |b| of the grid (Lab units).
AB_MAX = 110.0
#: Grid step (Lab units).
AB_STEP = 10.0
#: Bins per axis: ``2 * 110 / 10 + 1``.
AB_GRID = int(2 * AB_MAX / AB_STEP) + 1
#: Number of classes of the head.
AB_CLASSES = AB_GRID * AB_GRID
#: Confidence measures :func:`confidence` offers.
CONFIDENCE_KINDS = ("mass", "entropy")


def bin_centers(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``(529, 2)`` ab of each bin centre (Lab units), in bin-index order."""
    axis = torch.arange(AB_GRID, dtype=dtype, device=device) * AB_STEP - AB_MAX
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack((a.flatten(), b.flatten()), dim=1)


def bin_index(ab: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` int64 nearest bin of ``ab`` ``(B, 2, H, W)`` in Lab units (clamped)."""
    cell = torch.round((ab + AB_MAX) / AB_STEP).long().clamp_(0, AB_GRID - 1)
    return cell[:, 0] * AB_GRID + cell[:, 1]


def soft_encode(ab: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Soft targets ``(B, 529, H, W)``: Gaussian weights on the nearest bin centres.

    Args:
        ab: ``(B, 2, H, W)`` ground-truth ab in Lab units.
        neighbours: bins that share each pixel's mass (5 in Zhang et al. 2016).
        sigma: Gaussian width in Lab units (5).

    Returns:
        Non-negative targets summing to one over the bins at every pixel.
    """
    b, _, h, w = ab.shape
    ab = ab.float()
    centers = bin_centers(ab.dtype, ab.device)  # (Q, 2)
    pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    dist2 = (pixels[:, None, :] - centers[None]).square().sum(-1)  # (P, Q), exact
    near, idx = dist2.topk(neighbours, dim=1, largest=False)
    weight = torch.exp(-near / (2 * sigma * sigma))
    weight = weight / weight.sum(1, keepdim=True)
    target = torch.zeros_like(dist2).scatter_(1, idx, weight)
    return target.view(b, h, w, AB_CLASSES).permute(0, 3, 1, 2)


def class_prior(ab: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Smoothed empirical distribution ``(529,)`` of the bins of ``ab`` ``(B, 2, H, W)``.

    Counts of each pixel's nearest bin, smoothed by a Gaussian of ``sigma`` Lab units
    over the grid (Zhang et al. 2016), kept only on bins that occur, normalised.
    """
    counts = torch.bincount(bin_index(ab).flatten(), minlength=AB_CLASSES).double()
    grid = counts.view(1, 1, AB_GRID, AB_GRID)
    s = sigma / AB_STEP
    radius = max(1, int(3 * s + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=counts.device)
    k = torch.exp(-0.5 * (x / s) ** 2)
    k = k / k.sum()
    grid = F.conv2d(grid, k.view(1, 1, -1, 1), padding=(radius, 0))
    grid = F.conv2d(grid, k.view(1, 1, 1, -1), padding=(0, radius))
    prior = grid.flatten() * (counts > 0)
    return (prior / prior.sum()).float()


def rebalance_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Per-bin weights: ``((1 - λ) p + λ / Q)^-1`` with ``sum(p * w) == 1``.

    For any bin grid (the head's 529 bins, or the regression rebalancing's 22 x 22 in
    :mod:`instacolor.train.losses`); ``Q`` counts the bins with ``p > 0``, unseen bins
    get weight 0.
    """
    seen = prior > 0
    w = torch.zeros_like(prior)
    w[seen] = 1.0 / ((1.0 - lam) * prior[seen] + lam / int(seen.sum()))
    return w / (prior * w).sum()


def soft_encoded_cross_entropy(
    logits: torch.Tensor, ab: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over pixels of ``w(q*) * CE(soft_encode(ab), softmax(logits))``.

    Args:
        logits: ``(B, 529, h, w)`` class logits.
        ab: ``(B, 2, h, w)`` ground-truth ab in Lab units at the logits' size.
        weights: per-bin rebalancing weights (:func:`rebalance_weights`), applied by
            each pixel's nearest bin; None for none.

    Returns:
        Scalar loss (0 with grad for an empty batch).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    target = soft_encode(ab.float())
    per = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)  # (B, h, w)
    if weights is not None:
        per = per * weights.to(per.device, per.dtype)[bin_index(ab)]
    return per.mean()


def annealed_mean(logits: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Decoded ab ``(B, 2, h, w)`` in Lab units: ``E[ab]`` under ``softmax(logits / T)``.

    ``softmax(logits / T)`` is the annealed distribution ``exp(log z / T) / sum`` of the
    predicted ``z = softmax(logits)``. ``T = 1`` gives the mean, ``T -> 0`` the mode.
    """
    if not temperature > 0:
        raise InputError(f"temperature: expected a number > 0, received {temperature!r}")
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, bin_centers(p.dtype, p.device))


def confidence(
    logits: torch.Tensor, ab: torch.Tensor, kind: str = "mass", radius: float = 15.0
) -> torch.Tensor:
    """Per-pixel confidence ``(B, h, w)`` in ``[0, 1]`` from the predicted distribution.

    Args:
        logits: ``(B, 529, h, w)`` class logits (the distribution at ``T = 1``).
        ab: ``(B, 2, h, w)`` the decoded ab (Lab units) the confidence is about.
        kind: ``"mass"`` - probability within ``radius`` Lab units of ``ab``;
            ``"entropy"`` - ``1 - H(p) / log(529)``.
        radius: Lab units, for ``"mass"``.

    Returns:
        float32 confidence; high where the distribution is peaked (at ``ab``).
    """
    p = torch.softmax(logits.float(), dim=1)
    if kind == "entropy":
        h = -(p * torch.log(p.clamp_min(1e-12))).sum(1)
        return (1.0 - h / math.log(AB_CLASSES)).clamp(0.0, 1.0)
    if kind != "mass":
        raise InputError(f"confidence kind: expected one of {CONFIDENCE_KINDS}, received {kind!r}")
    centers = bin_centers(p.dtype, p.device)  # (Q, 2)
    d2 = (ab.float()[:, None] - centers[None, :, :, None, None]).square().sum(2)  # (B, Q, h, w)
    return (p * (d2 <= radius * radius)).sum(1).clamp(0.0, 1.0)
