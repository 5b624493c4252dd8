"""Decoding: the networks' outputs become ab at the working size, and a confidence map.

* ``"regression"`` - the regression head's ab (``model_out``, Tanh times 110), as the
  reference decodes;
* ``"annealed-mean"`` - the classification head's distribution over the 529 ab bins
  decoded by its annealed mean at temperature ``T`` (Zhang et al. 2016, ``T = 0.38``)
  at a quarter of the working size, then bilinearly up to the working size.

Whenever the weights have a trained classification head the same distribution also
gives a per-pixel confidence about the decoded colour (:func:`~instacolor.models.
classes.confidence`); without one there is no confidence (None).

Example:
    >>> import numpy as np
    >>> from instacolor.structures import NetOutput
    >>> ab, conf = decode(NetOutput(ab=np.zeros((1, 2, 8, 8), np.float32)), Decoding())
    >>> tuple(ab.shape), conf is None
    ((2, 8, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.models.classes import annealed_mean, confidence
from instacolor.registry import DECODINGS, DEFAULT_TEMPERATURE
from instacolor.structures import NetOutput

__all__ = [
    "CONFIDENCE_KIND",
    "CONFIDENCE_RADIUS",
    "DECODINGS",
    "Decoding",
    "confidence_at",
    "decode",
]
#: Confidence measure (see docs/model-card.md for why this one).
CONFIDENCE_KIND = "mass"
#: Radius (Lab units) of the ``"mass"`` confidence.
CONFIDENCE_RADIUS = 15.0


@dataclass(frozen=True)
class Decoding:
    """How the chroma is decoded.

    Attributes:
        mode: ``"regression"`` or ``"annealed-mean"``.
        temperature: annealed-mean temperature (> 0; 1 is the mean, -> 0 the mode).
    """

    mode: str = "regression"
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        if self.mode not in DECODINGS:
            raise InputError(
                f"decode: expected one of {DECODINGS}, received {self.mode!r}; 'annealed-mean' "
                "needs weights with a trained classification head"
            )
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 10:
            raise InputError(
                f"temperature: expected a number in (0, 10], received {t!r}; Zhang et al. "
                "use 0.38, 1 is the plain mean"
            )


def decode(out: NetOutput, decoding: Decoding) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ab and confidence from a runtime's output.

    Args:
        out: :class:`~instacolor.structures.NetOutput` with ab ``(1, 2, S, S)`` and,
            for weights with a trained head, class logits ``(1, 529, S/4, S/4)``.
        decoding: the mode and temperature.

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
    return ab, _confidence(logits, low)


def _confidence(logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return confidence(logits, ab, CONFIDENCE_KIND, CONFIDENCE_RADIUS)[0]


def confidence_at(conf: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 confidence in [0, 1] at the input size (bilinear)."""
    up = F.interpolate(conf[None, None], size=size, mode="bilinear", align_corners=False)
    return up[0, 0].clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)
