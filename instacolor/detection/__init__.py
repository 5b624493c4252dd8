"""Detection stage: instances (and semantic maps) from pluggable backends.

* :class:`TorchvisionMaskRCNN` - torchvision's Mask R-CNN ResNet-50 FPN (the default);
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
from instacolor.detection.torchvision_backend import TorchvisionMaskRCNN

__all__ = [
    "Detection",
    "Detector",
    "DetectorConfig",
    "TorchvisionMaskRCNN",
    "detector_input",
    "select_instances",
]
