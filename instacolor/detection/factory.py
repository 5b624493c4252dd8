"""Build a detector by name: what ``Colorizer(detector=...)`` and the CLI take."""

from __future__ import annotations

import warnings

import torch

from instacolor.detection.base import Detector, DetectorConfig
from instacolor.detection.sam import SAM_CHECKPOINTS, SamRefiner
from instacolor.errors import DetectorUnavailableWarning, InputError, WeightsError

__all__ = ["BACKENDS", "build_detector", "make_detector"]

#: Backend names :func:`make_detector` knows, with what they need.
BACKENDS: dict[str, str] = {
    "torchvision": "torchvision Mask R-CNN ResNet-50 FPN, COCO (installed with instacolor)",
    "detectron2": "Detectron2 Mask R-CNN X101-FPN + Panoptic FPN (detectron2 installed "
    "from its official source)",
}


def make_detector(
    backend: str = "torchvision",
    config: DetectorConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    sam: str | None = None,
    progress: bool = True,
) -> Detector:
    """A detector with its official weights.

    Args:
        backend: ``"torchvision"`` or ``"detectron2"`` (see :data:`BACKENDS`), optionally
            followed by ``"+sam"`` / ``"+sam-vit_h"`` to refine masks with segment-anything.
        config: thresholds, top-k, minimum box size and class filter.
        device: torch device.
        sam: segment-anything model type (``"vit_b"``, ``"vit_l"``, ``"vit_h"``) refining
            the masks, or None.
        progress: show download progress bars.

    Raises:
        InputError: unknown backend or SAM model.
        WeightsError: official weights are missing and cannot be downloaded.
        ImportError: the backend's package is not installed.
    """
    name, _, refine = str(backend).partition("+")
    if refine:
        if not refine.startswith("sam"):
            raise InputError(
                f"detector {backend!r}: expected '<backend>+sam[-vit_b|-vit_l|-vit_h]'"
            )
        sam = refine.partition("-")[2] or sam or "vit_b"
    if sam is not None and sam not in SAM_CHECKPOINTS:
        raise InputError(
            f"detector {backend!r}: SAM model expected one of {', '.join(SAM_CHECKPOINTS)}, "
            f"received {sam!r}"
        )
    config = config or DetectorConfig()
    if name == "torchvision":
        from instacolor.detection.torchvision_backend import TorchvisionMaskRCNN

        detector: Detector = TorchvisionMaskRCNN(config, device=device, progress=progress)
    elif name == "detectron2":
        from instacolor.detection.detectron2_backend import Detectron2Detector

        detector = Detectron2Detector(config, device=device, progress=progress)
    else:
        raise InputError(
            f"detector: expected one of {', '.join(BACKENDS)} (optionally '+sam'), "
            f"received {backend!r}"
        )
    if sam is not None:
        detector = SamRefiner(detector, model=sam, device=device, progress=progress)
    return detector


def build_detector(
    detector: str | Detector | None,
    config: DetectorConfig | None,
    device: torch.device,
    fallback: bool,
) -> tuple[Detector | None, str | None]:
    """The detector of a :class:`~instacolor.colorizer.Colorizer` and, when it could not be
    built and ``fallback`` is set, why (after a :class:`DetectorUnavailableWarning`).

    Raises:
        InputError: ``detector`` is neither None, a backend name nor a Detector.
        WeightsError, ImportError: the backend cannot be built and ``fallback`` is off.
    """
    if detector is None:
        return None, None
    if not isinstance(detector, str):
        if not isinstance(detector, Detector):
            raise InputError(
                "detector: expected None, a backend name ('torchvision', 'detectron2', "
                f"optionally '+sam') or an object with detect(light), received {detector!r:.80}"
            )
        return detector, None
    try:
        return make_detector(detector, config, device=device), None
    except (WeightsError, ImportError) as err:
        if not fallback:
            raise
        reason = f"{type(err).__name__}: {err}"
        warnings.warn(
            f"detector {detector!r} is unavailable, so images are colorized WITHOUT instances "
            f"(full-image network only) as fallback_to_full_image=True asks: {reason}",
            DetectorUnavailableWarning,
            stacklevel=3,
        )
        return None, reason
