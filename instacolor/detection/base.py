"""The detector protocol, its options, and the filtering every backend shares.

A detector turns the L channel of one image into :class:`~instacolor.structures.Instances`
(boxes XYXY in input pixels, scores, labels in :mod:`instacolor.labels`' space, optional
masks) and, where the backend can, a :class:`~instacolor.structures.SemanticMap`.
Detectors see the L channel as neutral sRGB gray replicated to three channels
(:func:`detector_input`), the way a scanned black-and-white photograph looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from instacolor.color import l_to_gray
from instacolor.errors import InputError
from instacolor.labels import NUM_LABELS
from instacolor.structures import Instances, SemanticMap, clip_boxes

__all__ = [
    "Detection",
    "Detector",
    "DetectorConfig",
    "detector_input",
    "select_instances",
]


@dataclass(frozen=True)
class DetectorConfig:
    """Options shared by every backend.

    Attributes:
        score_threshold: keep detections scoring at least this (reference: 0.7).
        max_instances: keep at most this many, highest scores first (reference: 8).
        min_box_size: drop boxes whose shorter side is below this many input pixels.
        classes: keep only these labels (:mod:`instacolor.labels`), or all when None.
        mask_threshold: probability above which a soft mask pixel belongs to the object.
    """

    score_threshold: float = 0.7
    max_instances: int = 8
    min_box_size: float = 4.0
    classes: tuple[int, ...] | None = None
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        checks = (
            ("score_threshold", self.score_threshold, 0.0, 1.0),
            ("mask_threshold", self.mask_threshold, 0.0, 1.0),
            ("min_box_size", self.min_box_size, 0.0, math.inf),
        )
        for name, value, lo, hi in checks:
            if not isinstance(value, int | float) or not lo <= value <= hi or math.isnan(value):
                raise InputError(f"{name}: expected a number in [{lo}, {hi}], received {value!r}")
        if not isinstance(self.max_instances, int) or self.max_instances < 0:
            raise InputError(
                f"max_instances: expected a non-negative integer, received {self.max_instances!r}"
            )
        if self.classes is not None:
            classes = tuple(int(c) for c in self.classes)
            bad = [c for c in classes if not 0 <= c < NUM_LABELS]
            if bad:
                raise InputError(
                    f"classes: expected labels in [0, {NUM_LABELS}) (instacolor.labels; "
                    f"label_from_name('dog') gives one), received {bad}"
                )
            object.__setattr__(self, "classes", classes)


@dataclass(frozen=True)
class Detection:
    """What a detector found in one image.

    Attributes:
        instances: the kept instances (possibly none).
        semantic: a per-pixel label map, or None when the backend has none.
        backend: name of the backend and its weights.
    """

    instances: Instances
    semantic: SemanticMap | None
    backend: str


@runtime_checkable
class Detector(Protocol):
    """A detection backend: ``detect(light)`` for an ``(H, W)`` L plane in ``[0, 100]``."""

    config: DetectorConfig

    def detect(self, light: np.ndarray) -> Detection:
        """Instances (and a semantic map, when available) of one image's L plane."""
        ...


def detector_input(light: np.ndarray) -> torch.Tensor:
    """``(3, H, W)`` float32 sRGB in ``[0, 1]``: the L plane as neutral gray, replicated.

    Raises:
        InputError: ``light`` is not a finite ``(H, W)`` plane.
    """
    arr = np.asarray(light)
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(
            f"detector input: expected an (H, W) float L plane in [0, 100] (see "
            f"io.read_luminance), received {arr.dtype} array of shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InputError("detector input: the L plane holds NaN or infinite values")
    gray = l_to_gray(torch.from_numpy(arr.astype(np.float32)).clamp(0, 100)).clamp(0, 1)
    return gray.expand(3, *gray.shape).contiguous()


def select_instances(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    image_size: tuple[int, int],
    config: DetectorConfig,
    masks: np.ndarray | None = None,
) -> Instances:
    """Apply the score threshold, class filter, minimum size and top-k of ``config``.

    Args:
        boxes: ``(N, 4)`` XYXY in input pixels.
        scores: ``(N,)`` confidences.
        labels: ``(N,)`` labels in :mod:`instacolor.labels`' space.
        image_size: ``(H, W)``.
        config: the options.
        masks: ``(N, H, W)`` bool masks, or None.

    Returns:
        The kept instances, highest score first.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    clipped = clip_boxes(boxes, image_size)
    side = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    keep = (scores >= config.score_threshold) & (side >= max(config.min_box_size, 1e-6))
    if config.classes is not None:
        keep &= np.isin(labels, np.asarray(config.classes, np.int64))
    index = np.flatnonzero(keep)
    index = index[np.argsort(-scores[index], kind="stable")][: config.max_instances]
    return Instances.from_boxes(
        clipped[index] if len(index) else np.zeros((0, 4)),
        image_size,
        scores=scores[index],
        labels=labels[index],
        masks=None if masks is None else np.asarray(masks, bool)[index],
    )
