"""The values at the runtime boundary: network inputs and network outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instacolor.errors import InputError

__all__ = ["NetOutput", "NetworkInputs"]


@dataclass(frozen=True, eq=False)
class NetworkInputs:
    """The networks' inputs for one image at the square working size ``S``.

    numpy arrays, so that every runtime (torch, onnxruntime) takes the same value.

    Attributes:
        light: ``(S, S)`` float32 L in ``[0, 100]`` of the image squashed to ``S x S``
            (the luminance the prediction belongs to; it guides the upsampling).
        l: ``(1, 1, S, S)`` float32 normalised L, ``(L - 50) / 100``: the network input.
        image_size: ``(H, W)`` of the full-resolution image.
        crops: ``(N, 1, S, S)`` float32 normalised L of the instance crops (each box cut
            from the full-resolution L and squashed to ``S x S``), or None: the
            full-image network runs alone.
        placements: ``(4, N, 6)`` int64 box cells on the grid of each fusion-scale
            divisor (1, 2, 4, 8; :func:`~instacolor.models.placement.placement_cells`),
            given exactly when ``crops`` is.
        labels: ``(1, S, S)`` int64 semantic labels (nearest-resized), or None.
        hints: ``(1, 3, S, S)`` float32 hint channels of the full image (``a/110, b/110,
            mask``; :func:`~instacolor.hints.encode_channels`), or None: automatic mode
            (hints 0, the mask channel at the weights' automatic value).
        crop_hints: ``(N, 3, S, S)`` float32 hint channels of each crop (the hints in
            crop coordinates), given exactly when both ``hints`` and ``crops`` are.
    """

    light: np.ndarray
    l: np.ndarray  # noqa: E741 - the L channel, as the networks and ONNX graphs name it
    image_size: tuple[int, int]
    crops: np.ndarray | None = None
    placements: np.ndarray | None = None
    labels: np.ndarray | None = None
    hints: np.ndarray | None = None
    crop_hints: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = self.light.shape[-1]
        if self.light.shape != (s, s) or self.l.shape != (1, 1, s, s):
            raise InputError(
                f"NetworkInputs: expected light (S, S) and l (1, 1, S, S), received "
                f"{self.light.shape} and {self.l.shape}; build them with prepare_inputs"
            )
        n = None if self.crops is None else self.crops.shape[0]
        if (self.crops is None) != (self.placements is None) or (
            n is not None
            and (self.crops.shape[1:] != (1, s, s) or self.placements.shape != (4, n, 6))
        ):
            raise InputError(
                f"NetworkInputs: expected crops (N, 1, {s}, {s}) with placements (4, N, 6), "
                f"or neither; received {None if n is None else self.crops.shape} and "
                f"{None if self.placements is None else self.placements.shape}"
            )
        if self.labels is not None and self.labels.shape != (1, s, s):
            raise InputError(
                f"NetworkInputs: expected labels (1, {s}, {s}), received {self.labels.shape}"
            )
        if self.hints is not None and self.hints.shape != (1, 3, s, s):
            raise InputError(
                f"NetworkInputs: expected hints (1, 3, {s}, {s}), received {self.hints.shape}"
            )
        with_crop_hints = self.hints is not None and n is not None
        if (self.crop_hints is not None) != with_crop_hints or (
            with_crop_hints and self.crop_hints.shape != (n, 3, s, s)
        ):
            raise InputError(
                f"NetworkInputs: expected crop_hints (N, 3, {s}, {s}) exactly when hints and "
                f"crops are given; received {getattr(self.crop_hints, 'shape', None)} with hints "
                f"{getattr(self.hints, 'shape', None)} and crops {None if n is None else (n,)}"
            )

    @property
    def working_size(self) -> int:
        """The square size ``S`` the networks run at."""
        return int(self.light.shape[-1])

    @property
    def instance_count(self) -> int:
        """Number of instance crops (0 when the full-image network runs alone)."""
        return 0 if self.crops is None else int(self.crops.shape[0])


@dataclass(frozen=True, eq=False)
class NetOutput:
    """What a runtime returns for :class:`NetworkInputs`.

    Attributes:
        ab: ``(1, 2, S, S)`` float32 chroma in network units (times 110 for Lab).
        weights: per fusion point (``FUSION_POINTS`` order) the ``(N + 1, S_i, S_i)``
            float32 softmax weights, last map the background's; ``()`` when the
            full-image network ran alone.
        class_logits: ``(1, 529, S / 4, S / 4)`` float32 logits of the classification
            head (weights with a trained head), else None.
    """

    ab: np.ndarray
    weights: tuple[np.ndarray, ...] = ()
    class_logits: np.ndarray | None = None
