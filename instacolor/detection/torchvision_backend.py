"""torchvision's Mask R-CNN (ResNet-50 FPN, COCO) as an instacolor detector.

The official weights (``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``, box mAP 37.9, mask mAP
34.6 on COCO val2017) load through torchvision's own mechanism: downloaded once into
``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``) and checked
against the hash prefix in the file name. The network predicts COCO category ids
(1..90), mapped here to :mod:`instacolor.labels`. It has no "stuff" classes, so it gives
no semantic map (``Detection.semantic`` is None; ``SemanticMap.from_instances`` paints
one from the masks).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

from instacolor.detection.base import Detection, DetectorConfig, detector_input, select_instances
from instacolor.errors import UntrainedWeightsWarning, WeightsError
from instacolor.labels import coco_ids_to_labels
from instacolor.weights.download import torchvision_cache_path, torchvision_state_dict

__all__ = ["OFFICIAL_WEIGHTS", "TorchvisionMaskRCNN", "official_weights_path"]

#: The official COCO weights of torchvision's Mask R-CNN ResNet-50 FPN (v1).
OFFICIAL_WEIGHTS = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
_COCO_CLASSES = 91  # torchvision's category slots: background + COCO ids 1..90


def official_weights_path() -> Path:
    """Where torchvision caches (and looks for) the official weights file."""
    return torchvision_cache_path(OFFICIAL_WEIGHTS)


def _first_lines(err: Exception, limit: int = 400) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines()[1:] if line.strip())
    return text if len(text) <= limit else text[:limit] + " ..."


class TorchvisionMaskRCNN:
    """Instances from torchvision's Mask R-CNN ResNet-50 FPN.

    Args:
        config: thresholds, top-k and class filter.
        weights: ``"COCO_V1"`` (official, downloaded and hash-checked by torchvision), a
            path to a state-dict file of the same architecture, or None for random
            weights (tests; warns with :class:`~instacolor.errors.UntrainedWeightsWarning`).
        device: torch device.
        min_size: the shorter image side the network resizes to (torchvision: 800).
        progress: show a download progress bar.

    Raises:
        WeightsError: the official file is missing and cannot be downloaded, or a given
            file does not match the architecture.
    """

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        weights: str | os.PathLike | None = "COCO_V1",
        device: str | torch.device = "cpu",
        min_size: int = 800,
        progress: bool = True,
    ) -> None:
        self.config = config or DetectorConfig()
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = maskrcnn_resnet50_fpn(
                weights=None,
                weights_backbone=None,
                num_classes=_COCO_CLASSES,
                min_size=min_size,
                box_score_thresh=min(0.05, self.config.score_threshold),
            )
        if weights is None:
            warnings.warn(
                "TorchvisionMaskRCNN(weights=None): randomly initialised detector, its "
                "detections are meaningless",
                UntrainedWeightsWarning,
                stacklevel=2,
            )
            self.weights_name = "random"
        elif str(weights) == "COCO_V1":
            model.load_state_dict(
                torchvision_state_dict(
                    OFFICIAL_WEIGHTS, "torchvision Mask R-CNN weights", progress=progress
                )
            )
            self.weights_name = official_weights_path().name
        else:
            path = Path(weights)
            if not path.is_file():
                raise WeightsError(
                    f"torchvision Mask R-CNN weights: expected 'COCO_V1' or a state-dict "
                    f"file, received {str(weights)!r}, which is not a file"
                )
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                raise WeightsError(
                    f"torchvision Mask R-CNN weights {path}: not a maskrcnn_resnet50_fpn state "
                    f"dict with {_COCO_CLASSES} classes: {_first_lines(err)}"
                ) from err
            self.weights_name = path.name
        self.model = model.eval().to(self.device)

    @property
    def name(self) -> str:
        """Backend and weights, as recorded in results and manifests."""
        return f"torchvision-maskrcnn_resnet50_fpn:{self.weights_name}"

    def detect(self, light: np.ndarray) -> Detection:
        """Instances of one image.

        Args:
            light: ``(H, W)`` float L plane in ``[0, 100]``.

        Returns:
            :class:`Detection` with masks, no semantic map.
        """
        x = detector_input(light).to(self.device)
        with torch.inference_mode():
            out = self.model([x])[0]
        masks = (out["masks"][:, 0] >= self.config.mask_threshold).cpu().numpy()
        instances = select_instances(
            out["boxes"].cpu().numpy(),
            out["scores"].cpu().numpy(),
            coco_ids_to_labels(out["labels"].cpu().numpy(), strict=False),
            tuple(light.shape),
            self.config,
            masks=masks,
        )
        return Detection(instances=instances, semantic=None, backend=self.name)
