"""Helpers shared by the ONNX tests: random networks, boxes and network inputs, a random
width-8 export, and a weights cache in a folder of the tests' own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from instacolor.models.network import InstColorNet
from instacolor.models.placement import placement_cells
from instacolor.runtime.export import export_onnx
from instacolor.structures import NetworkInputs
from instacolor.weights import LoadedWeights

S = 64  # working size of these tests (the graphs take any multiple of 8)
IMAGE = (240, 320)


def random_net(width: int, seed: int = 0) -> InstColorNet:
    """Every floating tensor random, BatchNorm statistics included; semantic block too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InstColorNet(width).eval()
        with torch.no_grad():
            for name, t in net.state_dict().items():
                if not t.is_floating_point():
                    continue
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape) + 0.5)
                elif ".gamma." in name or ".beta." in name:
                    t.copy_(torch.randn(t.shape) * 0.05)
    return net


def random_boxes(n: int, seed: int) -> np.ndarray:
    """``(n, 4)`` random x0, y0, x1, y1 boxes in an ``IMAGE``-sized image."""
    rng = np.random.default_rng(seed)
    h, w = IMAGE
    x0, y0 = rng.integers(0, w - 30, n), rng.integers(0, h - 30, n)
    x1 = np.minimum(x0 + rng.integers(2, 160, n), w)
    y1 = np.minimum(y0 + rng.integers(2, 120, n), h)
    return np.stack([x0, y0, x1, y1], 1)


def random_inputs(size: int, n: int, seed: int, labels: bool = False) -> NetworkInputs:
    """Random NetworkInputs at ``size`` with ``n`` crops on :func:`random_boxes`."""
    gen = torch.Generator().manual_seed(seed)
    l_norm = torch.rand(1, 1, size, size, generator=gen) - 0.5
    crops = torch.rand(n, 1, size, size, generator=gen) - 0.5
    label_map = torch.randint(0, 134, (1, size, size), generator=gen) if labels else None
    return NetworkInputs(
        light=(l_norm[0, 0] * 100 + 50).numpy(),
        l=l_norm.numpy(),
        image_size=IMAGE,
        crops=crops.numpy() if n else None,
        placements=placement_cells(random_boxes(n, seed=seed), IMAGE, size) if n else None,
        labels=None if label_map is None else label_map.numpy(),
    )


def export_random_net(root: Path) -> tuple[InstColorNet, Path]:
    """A random width-8 network and its ONNX export (working size ``S``) under ``root``."""
    net = random_net(8)
    loaded = LoadedWeights(net=net, name="random-w8", sha256=None, trained=False)
    folder = export_onnx(loaded, root / "onnx", working_size=S)
    return net, folder


@contextlib.contextmanager
def cache_at(root: Path) -> Iterator[Path]:
    """Point ``$INSTACOLOR_CACHE`` at ``root`` while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSTACOLOR_CACHE", str(root))
        yield root
