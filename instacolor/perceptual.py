"""LPIPS v0.1 (AlexNet) perceptual distance, computed when its weights are present.

LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric") compares two images through the five ReLU outputs of an ImageNet
AlexNet: each feature map is unit-normalised over channels, the squared difference is
weighted per channel by a learned non-negative 1x1 layer, averaged over space, and the
five layers are summed. Inputs are RGB in ``[-1, 1]`` shifted and scaled per channel
first. 0 means identical; InstColorization reports ~0.13 on COCO-Stuff at 256x256.

Two files make the metric, neither shipped with instacolor:

* AlexNet's ImageNet weights, torchvision's ``AlexNet_Weights.IMAGENET1K_V1``
  (``alexnet-owt-7be5be79.pth``, BSD-3-Clause), looked for where torchvision caches it
  (``$TORCH_HOME/hub/checkpoints``) and checked against the hash prefix in its name;
* the linear layers ``v0.1/alex.pth`` (BSD-2-Clause, 6 KB) of the ``lpips`` package
  (``pip install "instacolor[lpips]"``), or in instacolor's cache under ``lpips/``,
  downloaded from the PerceptualSimilarity repository; checked by full sha256.

:func:`lpips_unavailable` says, without downloading, why the metric cannot be computed
here (None when it can): ``instacolor evaluate`` reports LPIPS only then.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import AlexNet_Weights, alexnet

from instacolor.errors import InputError, WeightsError
from instacolor.weights import WeightFile, cache_dir
from instacolor.weights.download import (
    fetch_verified,
    torchvision_cache_path,
    torchvision_state_dict,
    verify_sha256,
)
from instacolor.weights.formats import load_state_dict_strict, read_torch_state_dict

__all__ = [
    "ALEXNET_WEIGHTS",
    "LINEAR_WEIGHTS",
    "Lpips",
    "alexnet_weights_path",
    "lpips_distance",
    "lpips_unavailable",
]

#: torchvision's ImageNet AlexNet, the trunk of LPIPS v0.1 "alex".
ALEXNET_WEIGHTS = AlexNet_Weights.IMAGENET1K_V1
#: The linear layers of LPIPS v0.1 "alex" (sha256 of the file in the lpips 0.1.4 wheel).
LINEAR_WEIGHTS = WeightFile(
    "alex.pth",
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
)
_HOMEPAGE = "https://github.com/richzhang/PerceptualSimilarity"
_TAPS = (1, 4, 7, 9, 11)  # indices in alexnet().features of the ReLUs LPIPS compares
_CHANNELS = (64, 192, 384, 256, 256)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def alexnet_weights_path() -> Path:
    """Where torchvision caches (and looks for) the ImageNet AlexNet weights."""
    return torchvision_cache_path(ALEXNET_WEIGHTS)


def _package_linear_path() -> Path | None:
    try:
        path = Path(str(resources.files("lpips") / "weights" / "v0.1" / "alex.pth"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _cached_linear_path() -> Path:
    return cache_dir() / "lpips" / LINEAR_WEIGHTS.name


def _linear_path() -> Path:
    return _package_linear_path() or _cached_linear_path()


def lpips_unavailable() -> str | None:
    """Why LPIPS cannot be computed offline here (a sentence), or None when it can."""
    missing = [p for p in (alexnet_weights_path(), _linear_path()) if not p.is_file()]
    if not missing:
        return None
    return (
        "LPIPS not computed: " + " and ".join(str(p) for p in missing) + " not found "
        f"(AlexNet: {ALEXNET_WEIGHTS.url}; linear layers: pip install 'instacolor[lpips]' "
        f"or {LINEAR_WEIGHTS.url})"
    )


def lpips_distance(
    x: torch.Tensor, y: torch.Tensor, trunk: torch.nn.Sequential, linear: list[torch.Tensor]
) -> torch.Tensor:
    """LPIPS between two image batches.

    Args:
        x: ``(B, 3, H, W)`` RGB in ``[-1, 1]``.
        y: same shape as ``x``.
        trunk: ``torchvision.models.alexnet().features``.
        linear: five ``(1, C_k, 1, 1)`` non-negative channel weights, C = 64, 192, 384,
            256, 256.

    Returns:
        ``(B,)`` distances.
    """
    shift = x.new_tensor(_SHIFT).view(1, 3, 1, 1)
    scale = x.new_tensor(_SCALE).view(1, 3, 1, 1)
    both = (torch.cat((x, y)) - shift) / scale
    total = x.new_zeros(x.shape[0])
    weights = dict(zip(_TAPS, linear, strict=True))
    for index, layer in enumerate(trunk[: _TAPS[-1] + 1]):  # the last pooling is not used
        both = layer(both)
        if index in weights:
            fx, fy = (f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10) for f in both.chunk(2))
            total = total + F.conv2d((fx - fy).square(), weights[index]).mean((1, 2, 3))
    return total


def _to_unit_range(image: np.ndarray, name: str) -> torch.Tensor:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 16:
        raise InputError(
            f"{name}: expected a uint8 (H, W, 3) RGB image with H, W >= 16, received "
            f"{arr.dtype} {arr.shape}"
        )
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1.0


class Lpips:
    """LPIPS v0.1 (AlexNet) on uint8 RGB images.

    Args:
        alexnet: a torchvision AlexNet state-dict file (loaded strictly, not hash-checked);
            None: torchvision's official file from its cache, hash-checked, downloaded
            when missing and ``download`` is set.
        linear: an LPIPS linear-layer file (``lin{k}.model.1.weight`` keys); None: the
            official one (the lpips package's, else instacolor's cache), sha256-checked.
        device: torch device.
        download: fetch missing official files (else a missing one raises).

    Raises:
        WeightsError: a file is missing (offline or ``download=False``), has the wrong
            hash, or does not hold the expected tensors.
    """

    def __init__(
        self,
        *,
        alexnet: str | os.PathLike | None = None,
        linear: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        download: bool = True,
    ) -> None:
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            self.trunk = alexnet_features()
        state = _alexnet_state(alexnet, download)
        features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        load_state_dict_strict(self.trunk, features, source=str(alexnet or alexnet_weights_path()))
        self.trunk.to(self.device).eval().requires_grad_(False)
        self.linear = [w.to(self.device) for w in _linear_weights(linear, download)]

    @torch.inference_mode()
    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        """LPIPS of two uint8 ``(H, W, 3)`` RGB images of the same shape."""
        x, y = _to_unit_range(pred, "pred"), _to_unit_range(target, "target")
        if x.shape != y.shape:
            raise InputError(
                f"pred and target: expected the same shape, received {x.shape} and {y.shape}"
            )
        return float(lpips_distance(x.to(self.device), y.to(self.device), self.trunk, self.linear))


def alexnet_features() -> torch.nn.Sequential:
    """An untrained ``torchvision.models.alexnet().features`` (LPIPS's trunk)."""
    return alexnet(weights=None).features


def _alexnet_state(path: str | os.PathLike | None, download: bool) -> dict[str, torch.Tensor]:
    if path is not None:
        return read_torch_state_dict(path)
    official = alexnet_weights_path()
    if official.is_file():
        verify_sha256(official, official.stem.rsplit("-", 1)[-1], "LPIPS AlexNet weights")
        return read_torch_state_dict(official)
    if not download:
        raise WeightsError(
            f"LPIPS AlexNet weights: {official.name} is not at {official}; download it from "
            f"{ALEXNET_WEIGHTS.url} and put it there (or pass alexnet=PATH)"
        )
    return torchvision_state_dict(ALEXNET_WEIGHTS, "LPIPS AlexNet weights")


def _linear_weights(path: str | os.PathLike | None, download: bool) -> list[torch.Tensor]:
    if path is None:
        package = _package_linear_path()
        if package is not None:
            verify_sha256(package, LINEAR_WEIGHTS.sha256, "LPIPS linear layers (lpips package)")
            path = package
        elif not download and not _cached_linear_path().is_file():
            raise WeightsError(
                f"LPIPS linear layers: {_cached_linear_path()} not found; pip install "
                f"'instacolor[lpips]' or download {LINEAR_WEIGHTS.url} to that path"
            )
        else:
            path, _ = fetch_verified(
                "lpips", LINEAR_WEIGHTS, "LPIPS linear layers", homepage=_HOMEPAGE
            )
    state = read_torch_state_dict(path)
    keys = [f"lin{k}.model.1.weight" for k in range(len(_CHANNELS))]
    shapes = {k: tuple(state[k].shape) for k in keys if k in state}
    expected = {k: (1, c, 1, 1) for k, c in zip(keys, _CHANNELS)}
    if shapes != expected:
        raise WeightsError(
            f"{path}: expected LPIPS v0.1 alex linear layers {expected}, received "
            f"{ {k: tuple(v.shape) for k, v in state.items()} }; use the lpips package's "
            "weights/v0.1/alex.pth"
        )
    return [state[k].float() for k in keys]
