"""Decoding: the networks' outputs become ab at the working size, and a confidence map.

* ``"regression"`` - the regression head's ab (``model_out``, Tanh times 110), as the
  reference decodes;
* ``"annealed-mean"`` - the classification head's distribution over the 529 ab bins
  decoded by its annealed mean at temperature ``T`` (Zhang et al. 2016, ``T = 0.38``)
  at a quarter of the working size, then bilinearly up to the working size; with
  ``mix < 1`` blended with the regression: ``ab = mix * annealed + (1 - mix) *
  regression`` (both ``(2, S, S)`` Lab units; 1, the default, is the annealed mean
  alone, 0 the regression). Measured on validation photos, a blend beat both pure
  decodings at a useful colourfulness. ``mix`` means nothing to ``"regression"``.

Whenever the weights have a trained classification head the same distribution also
gives a per-pixel confidence about the decoded colour (:func:`~instacolor.models.
classes.confidence`), computed at the head's resolution about the decoded colour there:
the area-downsampled regression, the low-resolution annealed mean, or for a blend
``mix * annealed + (1 - mix) * area(regression)``. Without a trained head there is no
confidence (None).

:class:`~instacolor.structures.decoding.Decoding` is the one value that says how
(``Decoding.parse("annealed-mean:0.38:0.75")``); :func:`resolve_decoding` turns what a
caller gave (a value, a spec or None) into one, from a colorizer's or the weights' default.

Example:
    >>> import numpy as np
    >>> from instacolor.structures import Decoding, NetOutput
    >>> ab, conf = decode(NetOutput(ab=np.zeros((1, 2, 8, 8), np.float32)), Decoding())
    >>> tuple(ab.shape), conf is None
    ((2, 8, 8), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.models.classes import annealed_mean, confidence
from instacolor.structures import Decoding, NetOutput

if TYPE_CHECKING:
    from instacolor.weights import LoadedWeights

__all__ = [
    "CONFIDENCE_KIND",
    "CONFIDENCE_RADIUS",
    "confidence_at",
    "decode",
    "resolve_decoding",
]
#: Confidence measure (see docs/model-card.md for why this one).
CONFIDENCE_KIND = "mass"
#: Radius (Lab units) of the ``"mass"`` confidence.
CONFIDENCE_RADIUS = 15.0


def decode(out: NetOutput, decoding: Decoding) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ab and confidence from a runtime's output.

    Args:
        out: :class:`~instacolor.structures.NetOutput` with ab ``(1, 2, S, S)`` and,
            for weights with a trained head, class logits ``(1, 529, S/4, S/4)``.
        decoding: the mode, temperature and mix.

    Returns:
        ``(ab (2, S, S) float32 Lab units, confidence (S/4, S/4) float32 in [0, 1] or
        None)``.

    Raises:
        InputError: ``annealed-mean`` asked of an output without class logits.
    """
    regression = torch.from_numpy(out.ab[0]) * AB_NORM
    logits = None if out.class_logits is None else torch.from_numpy(out.class_logits)
    if decoding.mode == "regression":
        if logits is None:
            return regression, None
        low = F.interpolate(regression[None], size=logits.shape[-2:], mode="area")
        return regression, _confidence(logits, low)
    if logits is None:
        raise InputError(
            "decode='annealed-mean': expected weights with a trained classification head, "
            "received an output without class logits; use decode='regression'"
        )
    low = annealed_mean(logits, decoding.temperature)
    size = tuple(regression.shape[-2:])
    ab = F.interpolate(low, size=size, mode="bilinear", align_corners=False)[0]
    if decoding.mix < 1:
        m = float(decoding.mix)
        ab = m * ab + (1 - m) * regression
        area = F.interpolate(regression[None], size=logits.shape[-2:], mode="area")
        low = m * low + (1 - m) * area
    return ab, _confidence(logits, low)


def resolve_decoding(
    weights: LoadedWeights, decode: Decoding | str | None = None, *, base: Decoding | None = None
) -> Decoding:
    """The decoding asked for.

    Args:
        weights: the loaded weights (their ``class_head`` and default ``decoding``).
        decode: a :class:`Decoding`, a spec (``"annealed-mean:0.38:0.75"``; the parts it
            leaves out come from ``base``) or None (``base`` itself).
        base: the decoding that fills in (a colorizer's); None: the weights' default.

    Returns:
        The :class:`Decoding`.

    Raises:
        InputError: a bad spec or value, or ``"annealed-mean"`` for weights whose
            classification head is untrained.
    """
    base = base or weights.decoding
    if decode is None:
        return base
    decoding = decode if isinstance(decode, Decoding) else Decoding.parse(decode, base)
    if decoding.mode == "annealed-mean" and not weights.class_head:
        raise InputError(
            f"decode='annealed-mean': expected weights with a trained classification head, "
            f"received {weights.name!r}, whose head is untrained; use decode='regression' (or "
            "weights whose 'instacolor models' entry names annealed-mean)"
        )
    return decoding


def _confidence(logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return confidence(logits, ab, CONFIDENCE_KIND, CONFIDENCE_RADIUS)[0]


def confidence_at(conf: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 confidence in [0, 1] at the input size (bilinear)."""
    up = F.interpolate(conf[None, None], size=size, mode="bilinear", align_corners=False)
    return up[0, 0].clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)
