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

:func:`resolve_decoding` fills the options a caller left None from a colorizer's
decoding or the weights' defaults.

Example:
    >>> import numpy as np
    >>> from instacolor.structures import NetOutput
    >>> ab, conf = decode(NetOutput(ab=np.zeros((1, 2, 8, 8), np.float32)), Decoding())
    >>> tuple(ab.shape), conf is None
    ((2, 8, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM
from instacolor.errors import InputError
from instacolor.models.classes import annealed_mean, confidence
from instacolor.structures import NetOutput

if TYPE_CHECKING:
    from instacolor.weights import LoadedWeights

__all__ = [
    "CONFIDENCE_KIND",
    "CONFIDENCE_RADIUS",
    "DECODINGS",
    "DEFAULT_MIX",
    "DEFAULT_TEMPERATURE",
    "Decoding",
    "confidence_at",
    "decode",
    "resolve_decoding",
]
#: Decodings of the predicted chroma.
DECODINGS = ("regression", "annealed-mean")
#: Zhang et al. 2016's annealed-mean temperature.
DEFAULT_TEMPERATURE = 0.38
#: Weight of the annealed mean in its blend with the regression (1: the annealed mean alone).
DEFAULT_MIX = 1.0
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
        mix: weight of the annealed mean in ``[0, 1]``, the rest the regression's
            (``"annealed-mean"`` only; 1: the annealed mean alone, 0: the regression).

    Raises:
        InputError: an unknown mode, a temperature outside ``(0, 10]`` or a mix outside
            ``[0, 1]`` (or not a number).

    Example:
        >>> Decoding("annealed-mean", 0.38, mix=0.75).mix
        0.75
    """

    mode: str = "regression"
    temperature: float = DEFAULT_TEMPERATURE
    mix: float = DEFAULT_MIX

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
        m = self.mix
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
            raise InputError(
                f"mix: expected a number from 0 to 1, received {m!r}; use 1 for the annealed "
                "mean alone, 0 for the regression alone, in between (e.g. 0.75) for a blend"
            )

    def record(self) -> dict[str, str | float | None]:
        """``{"decode", "temperature", "mix"}`` as results and manifests report them:
        temperature and mix are None for ``"regression"`` (they play no part there)."""
        annealed = self.mode != "regression"
        return {
            "decode": self.mode,
            "temperature": self.temperature if annealed else None,
            "mix": self.mix if annealed else None,
        }


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
    weights: LoadedWeights,
    mode: str | None = None,
    temperature: float | None = None,
    mix: float | None = None,
    *,
    base: Decoding | None = None,
) -> Decoding:
    """The decoding asked for, each option left None taken from ``base``.

    Args:
        weights: the loaded weights (their ``class_head``, ``decode``, ``temperature`` and
            ``mix`` defaults).
        mode, temperature, mix: the caller's options; None: ``base``'s.
        base: the decoding that fills in (a colorizer's); None: the weights' defaults.

    Returns:
        ``base`` itself when every option is None, else a new :class:`Decoding`.

    Raises:
        InputError: a bad option, or ``"annealed-mean"`` for weights whose
            classification head is untrained.
    """
    if base is not None and mode is None and temperature is None and mix is None:
        return base
    if base is None:
        defaults = (weights.decode, weights.temperature, weights.mix)
    else:
        defaults = (base.mode, base.temperature, base.mix)
    decoding = Decoding(
        mode=mode or defaults[0],
        temperature=defaults[1] if temperature is None else temperature,
        mix=defaults[2] if mix is None else mix,
    )
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
