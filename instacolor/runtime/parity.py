"""Parity of an exported ONNX folder with the torch networks it came from.

:func:`onnx_parity` runs onnxruntime and torch on the same random inputs (0, 1 and 8
instances for networks with an instance branch, 0 otherwise) and reports the largest
differences; ``instacolor export --verify`` prints them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from instacolor.models.placement import placement_cells
from instacolor.runtime.onnx_runtime import OnnxRuntime
from instacolor.runtime.torch_runtime import TorchRuntime
from instacolor.structures import NetworkInputs

__all__ = ["PARITY_IMAGE", "Parity", "onnx_parity"]

#: ``(H, W)`` of the image the random instances are placed in.
PARITY_IMAGE = (480, 640)


@dataclass(frozen=True)
class Parity:
    """The largest differences of onnxruntime from torch for one instance count.

    Attributes:
        instances: number of instances in the inputs.
        ab: max absolute ab difference (network units).
        weights: max absolute difference of the fusion weight maps (0 without instances).
    """

    instances: int
    ab: float
    weights: float

    @property
    def worst(self) -> float:
        return max(self.ab, self.weights)


def onnx_parity(net, folder: str | os.PathLike, size: int, threads: int = 1) -> list[Parity]:
    """Run onnxruntime (the graphs in ``folder``) and torch (``net``) on the same inputs.

    Args:
        net: the float32 CPU ``InstColorNet`` the folder was exported from.
        folder: the exported folder (:func:`~instacolor.runtime.export.export_onnx`).
        size: the working size S of the random inputs (``(1, 1, S, S)`` L, crops).
        threads: onnxruntime's intra-op threads.

    Returns:
        One :class:`Parity` per instance count (0, 1, 8; only 0 without an instance branch).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        WeightsError: the folder is not a complete export.
    """
    ort_runtime, torch_runtime = OnnxRuntime(folder, threads=threads), TorchRuntime(net)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    height, width = PARITY_IMAGE
    found = []
    for n in (0, 1, 8) if net.with_instances else (0,):
        l_norm = torch.rand(1, 1, size, size, generator=gen) - 0.5
        crops = torch.rand(n, 1, size, size, generator=gen) - 0.5
        x0, y0 = rng.integers(0, width - 80, n), rng.integers(0, height - 80, n)
        boxes = np.stack([x0, y0, x0 + rng.integers(8, 80, n), y0 + rng.integers(8, 80, n)], 1)
        inputs = NetworkInputs(
            light=(l_norm[0, 0] * 100 + 50).numpy(),
            l=l_norm.numpy(),
            image_size=PARITY_IMAGE,
            crops=crops.numpy() if n else None,
            placements=placement_cells(boxes, PARITY_IMAGE, size) if n else None,
        )
        want, got = torch_runtime.run(inputs), ort_runtime.run(inputs)
        weights = max(
            (float(np.abs(a - b).max()) for a, b in zip(got.weights, want.weights)), default=0.0
        )
        found.append(Parity(n, float(np.abs(got.ab - want.ab).max()), weights))
    return found
