"""Instances and semantic maps: what detection gives the colorization stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instacolor.errors import InputError
from instacolor.labels import NUM_LABELS, UNKNOWN

__all__ = ["Instances", "SemanticMap", "clip_boxes", "integer_boxes"]


def _image_size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise InputError(f"image_size: expected (height, width), received {image_size!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"image_size: expected positive (height, width), received {(h, w)}")
    return h, w


@dataclass(frozen=True, eq=False)
class Instances:
    """Object instances of one image.

    Attributes:
        boxes: ``(N, 4)`` float32 XYXY boxes in input pixels, inside the image, with
            ``x1 > x0`` and ``y1 > y0``.
        image_size: ``(height, width)`` of the image the boxes refer to.
        scores: ``(N,)`` float32 confidences (1 for given boxes).
        labels: ``(N,)`` int64 class labels in :mod:`instacolor.labels`' space
            (``UNKNOWN`` when not known).
        masks: ``(N, H, W)`` bool masks at image size, or None.
    """

    boxes: np.ndarray
    image_size: tuple[int, int]
    scores: np.ndarray = field(default=None)  # type: ignore[assignment]
    labels: np.ndarray = field(default=None)  # type: ignore[assignment]
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        size = _image_size(self.image_size)
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InputError(f"boxes: expected shape (N, 4) XYXY, received {boxes.shape}")
        n = len(boxes)
        scores = np.ones(n, np.float32) if self.scores is None else self.scores
        labels = np.full(n, UNKNOWN, np.int64) if self.labels is None else self.labels
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1)
        if len(scores) != n or len(labels) != n:
            raise InputError(
                f"instances: expected {n} scores and labels for {n} boxes, "
                f"received {len(scores)} scores and {len(labels)} labels"
            )
        if labels.size and (
            not np.issubdtype(labels.dtype, np.integer)
            or labels.min() < 0
            or labels.max() >= NUM_LABELS
        ):
            raise InputError(
                f"labels: expected integers in [0, {NUM_LABELS}), received {labels.tolist()}"
            )
        _check_boxes(boxes, size)
        masks = self.masks
        if masks is not None:
            masks = np.asarray(masks).astype(bool, copy=False)
            if masks.shape != (n, *size):
                raise InputError(
                    f"masks: expected shape {(n, *size)} (N, H, W), received {masks.shape}"
                )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels.astype(np.int64))
        object.__setattr__(self, "masks", masks)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Instances:
        """Select instances with an int, slice, index array or boolean mask."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Instances(
            boxes=self.boxes[index],
            image_size=self.image_size,
            scores=self.scores[index],
            labels=self.labels[index],
            masks=None if self.masks is None else self.masks[index],
        )

    @classmethod
    def from_boxes(
        cls,
        boxes: Any,
        image_size: Sequence[int],
        *,
        scores: Any = None,
        labels: Any = None,
        masks: Any = None,
    ) -> Instances:
        """Build instances from XYXY boxes, clipping them to the image.

        Boxes that reach outside the image are clipped to it (documented clamp).
        A box that is not finite, inverted, of zero area, or entirely outside the
        image raises :class:`~instacolor.errors.InputError` naming its index.
        """
        size = _image_size(image_size)
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise InputError(f"boxes: expected shape (N, 4) XYXY, received {arr.shape}")
        _check_box_order(arr)
        h, w = size
        clipped = clip_boxes(arr, size)
        outside = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise InputError(
                f"boxes: box {i} {arr[i].tolist()} lies outside the {w}x{h} image; expected "
                "XYXY boxes in input pixels that overlap the image"
            )
        return cls(clipped, size, scores=scores, labels=labels, masks=masks)

    @classmethod
    def from_masks(cls, masks: Any, *, scores: Any = None, labels: Any = None) -> Instances:
        """Build instances from ``(N, H, W)`` masks; boxes are the masks' extents."""
        m = np.asarray(masks)
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3:
            raise InputError(f"masks: expected shape (N, H, W), received {m.shape}")
        m = m.astype(bool)
        boxes = np.zeros((len(m), 4), np.float32)
        for i, mask in enumerate(m):
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                raise InputError(f"masks: mask {i} is empty; expected at least one pixel set")
            boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return cls(boxes, m.shape[1:], scores=scores, labels=labels, masks=m)

    def integer_boxes(self) -> np.ndarray:
        """``(N, 4)`` int64 boxes truncated as the reference does (:func:`integer_boxes`)."""
        return integer_boxes(self.boxes, self.image_size)


def integer_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` XYXY boxes truncated to int64 pixels as the reference does.

    Floor, then inside the ``(H, W)`` image and at least 1 px wide and high: the boxes
    crops are cut with, in inference and in training alike.
    """
    b = np.floor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)).astype(np.int64)
    h, w = image_size
    b[:, 0] = b[:, 0].clip(0, w - 1)
    b[:, 1] = b[:, 1].clip(0, h - 1)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1).clip(max=w)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1).clip(max=h)
    return b


def clip_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A copy of ``(N, 4)`` XYXY ``boxes`` clipped to an ``(H, W)`` image."""
    h, w = image_size
    clipped = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    return clipped


def _check_box_order(boxes: np.ndarray) -> None:
    bad = ~np.isfinite(boxes).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"boxes: box {i} {boxes[i].tolist()} is not finite")
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"boxes: box {i} {boxes[i].tolist()} is inverted or has zero area; expected "
            "XYXY with x1 > x0 and y1 > y0 (convert XYWH boxes with x1 = x0 + w)"
        )


def _check_boxes(boxes: np.ndarray, size: tuple[int, int]) -> None:
    _check_box_order(boxes)
    h, w = size
    out = (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InputError(
            f"boxes: box {i} {boxes[i].tolist()} reaches outside the {w}x{h} image; "
            "use Instances.from_boxes to clip boxes to the image"
        )


@dataclass(frozen=True, eq=False)
class SemanticMap:
    """Per-pixel class labels.

    Attributes:
        labels: ``(H, W)`` int64 labels in ``[0, NUM_LABELS)`` of
            :mod:`instacolor.labels` (``UNKNOWN`` where nothing is known). Any
            resolution: it is resized by nearest neighbour to the working size.
    """

    labels: np.ndarray

    def __post_init__(self) -> None:
        arr = np.asarray(self.labels)
        if arr.ndim != 2 or arr.size == 0:
            raise InputError(f"semantic: expected an (H, W) label map, received {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"semantic: expected integer labels, received dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= NUM_LABELS:
            raise InputError(
                f"semantic: expected labels in [0, {NUM_LABELS}), received "
                f"[{arr.min()}, {arr.max()}]"
            )
        object.__setattr__(self, "labels", arr.astype(np.int64, copy=False))

    @classmethod
    def from_instances(cls, instances: Instances) -> SemanticMap:
        """Label map painted from instance masks (boxes where masks are absent).

        Larger instances are painted first so smaller ones in front stay visible.
        """
        labels = np.full(instances.image_size, UNKNOWN, np.int64)
        order = np.argsort(
            -(instances.boxes[:, 2] - instances.boxes[:, 0])
            * (instances.boxes[:, 3] - instances.boxes[:, 1])
        )
        ibox = instances.integer_boxes()
        for i in order:
            if instances.masks is not None:
                labels[instances.masks[i]] = instances.labels[i]
            else:
                x0, y0, x1, y1 = ibox[i]
                labels[y0:y1, x0:x1] = instances.labels[i]
        return cls(labels)
