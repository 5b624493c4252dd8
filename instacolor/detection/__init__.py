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
from instacolor.detection.detectron2_backend import Detectron2Detector
from instacolor.detection.factory import BACKENDS, make_detector
from instacolor.detection.sam import SamRefiner
from instacolor.detection.torchvision_backend import TorchvisionMaskRCNN

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
