"""Detection stage: instances (and semantic maps) from pluggable backends.

* :class:`TorchvisionMaskRCNN` - torchvision's Mask R-CNN ResNet-50 FPN (the default);
* :class:`Detectron2Detector` - detectron2's Mask R-CNN X101-FPN and Panoptic FPN (needs
  detectron2, installed from its official source);
* :class:`SamRefiner` - segment-anything masks prompted by any detector's boxes;
* instances the caller supplies go straight to :meth:`instacolor.Colorizer.colorize`
  (boxes, masks or COCO annotations).
"""

from instacolor.detection.base import (
    Detection,
    Detector,
    DetectorConfig,
    detector_input,
    select_instances,
)
from instacolor.detection.factory import BACKENDS, make_detector
from instacolor.detection.sam import SamRefiner

#: Backend classes loaded on first use: importing torchvision's detection models (or
#: detectron2) takes seconds, and ``import instacolor`` should not pay for them.
_ON_FIRST_USE = {
    "Detectron2Detector": "instacolor.detection.detectron2_backend",
    "TorchvisionMaskRCNN": "instacolor.detection.torchvision_backend",
}

__all__ = [
    "BACKENDS",
    "Detection",
    "Detector",
    "DetectorConfig",
    "Detectron2Detector",
    "SamRefiner",
    "TorchvisionMaskRCNN",
    "detector_input",
    "make_detector",
    "select_instances",
]


def __getattr__(name: str):
    """``TorchvisionMaskRCNN`` and ``Detectron2Detector``, imported when first asked for."""
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
