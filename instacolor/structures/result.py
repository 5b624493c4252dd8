"""What one colorization returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from instacolor.structures.decoding import Decoding
from instacolor.structures.instances import Instances, SemanticMap

if TYPE_CHECKING:  # the hints package imports structures; only the annotation needs it
    from instacolor.hints import Hints

__all__ = ["ColorizeResult"]


@dataclass(frozen=True, eq=False)
class ColorizeResult:
    """Everything one colorization produced.

    Attributes:
        image: the colorized image, of the same kind as the input (numpy array, PIL
            image).
        ab: ``(2, S, S)`` float32 predicted a and b in Lab units at the working size
            (times the colorizer's ``saturation``).
        instances: the instances that were fused (None when the full-image network ran
            alone).
        semantic: the semantic map that conditioned the decoder, or None.
        weight_maps: ``{fusion_point: (N + 1, S_i, S_i) float32}`` softmax fusion weights,
            last map the background's; empty without instances.
        timings: seconds per stage (``detect``, ``prepare``, ``network``,
            ``reconstruct``, ``total``).
        model: name of the weights used.
        weights_sha256: sha256 of the weights file (None for untrained weights).
        detector: the detection backend (and its weights) that found the instances, or
            None when instances were given or no detection ran.
        working_size: the square size the networks ran at (``S``).
        saturation: the factor applied to the predicted chroma.
        decoding: how the chroma was decoded (:class:`~instacolor.structures.Decoding`;
            ``decoding.record()`` gives the flat ``decode``/``temperature``/``mix`` of
            manifests and metadata).
        confidence: ``(H, W)`` float32 in ``[0, 1]`` at the input size: how much of the
            predicted colour distribution lies near the decoded colour (weights with a
            trained classification head), else None.
        hints: the colour hints applied (None without hints).
        reference_map: ``(H, W)`` float32 in ``[0, 1]`` at the input size: where the
            colours came from reference photos (the score of the confident match of each
            pixel's cell, 0 where nothing matched); None without references.
    """

    image: Any
    ab: np.ndarray
    instances: Instances | None
    semantic: SemanticMap | None
    weight_maps: Mapping[str, np.ndarray]
    timings: Mapping[str, float]
    model: str
    weights_sha256: str | None
    detector: str | None = None
    working_size: int | None = None
    saturation: float = 1.0
    decoding: Decoding = field(default_factory=Decoding)
    confidence: np.ndarray | None = None
    hints: Hints | None = None
    reference_map: np.ndarray | None = None
