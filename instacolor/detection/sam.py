"""segment-anything (SAM) refining a detector's masks, prompted by its boxes.

Detector masks are coarse (Mask R-CNN predicts 28x28 per box); SAM draws object outlines
at full resolution. :class:`SamRefiner` computes ONE image embedding per image and sends
every box in ONE prompt batch, so its cost is one encoder pass (seconds on a CPU) plus a
few milliseconds per box. Boxes, scores and labels stay the detector's; only the masks
change (a box whose SAM mask comes out empty keeps the detector's mask).

Official checkpoints (Kirillov et al. 2023, Apache-2.0) are named by model type and
checked against their sha256 (the file names carry an md5 prefix, not a sha256; the
digests below agree across several independent public manifests):

========  =========================  ==========
model     file                       size
========  =========================  ==========
vit_h     ``sam_vit_h_4b8939.pth``   2.4 GiB
vit_l     ``sam_vit_l_0b3195.pth``   1.2 GiB
vit_b     ``sam_vit_b_01ec64.pth``   358 MiB
========  =========================  ==========

They are cached in ``$INSTACOLOR_CACHE/segment-anything/``; offline, the error names
the file, that location and the official URL.

Example:
    >>> from instacolor.detection import SamRefiner, TorchvisionMaskRCNN  # doctest: +SKIP
    >>> detector = SamRefiner(TorchvisionMaskRCNN(), model="vit_b")  # doctest: +SKIP
    >>> detection = detector.detect(light)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instacolor.detection.base import Detection, Detector, DetectorConfig, detector_input
from instacolor.errors import (
    InputError,
    MissingDependencyError,
    UntrainedWeightsWarning,
    WeightsError,
)
from instacolor.structures import Instances
from instacolor.weights import WeightFile
from instacolor.weights.download import fetch_verified

__all__ = ["SAM_CHECKPOINTS", "SamRefiner", "build_sam"]

_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_HOMEPAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
_FOLDER = "segment-anything"

#: Official SAM checkpoints by model type.
SAM_CHECKPOINTS: dict[str, WeightFile] = {
    "vit_h": WeightFile(
        "sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        url=_URL + "sam_vit_h_4b8939.pth",
    ),
    "vit_l": WeightFile(
        "sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        url=_URL + "sam_vit_l_0b3195.pth",
    ),
    "vit_b": WeightFile(
        "sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        url=_URL + "sam_vit_b_01ec64.pth",
    ),
}


def _segment_anything() -> Any:
    try:
        import segment_anything
    except ImportError as err:
        raise MissingDependencyError(
            "SamRefiner needs the segment-anything package: pip install 'instacolor[sam]' "
            "(or pip install segment-anything)"
        ) from err
    return segment_anything


def build_sam(model: str = "vit_b") -> torch.nn.Module:
    """An official-architecture SAM with random weights (seeded, reproducible).

    Args:
        model: ``"vit_h"``, ``"vit_l"`` or ``"vit_b"``.
    """
    if model not in SAM_CHECKPOINTS:
        raise InputError(
            f"SAM model: expected one of {sorted(SAM_CHECKPOINTS)}, received {model!r}"
        )
    registry = _segment_anything().sam_model_registry
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return registry[model](checkpoint=None)


def _checkpoint_path(model: str, checkpoint: str | os.PathLike | WeightFile, progress: bool):
    """Resolve ``checkpoint`` to a verified file path and a name for the record."""
    if isinstance(checkpoint, WeightFile) or str(checkpoint) == "official":
        file = checkpoint if isinstance(checkpoint, WeightFile) else SAM_CHECKPOINTS[model]
        origin = f"SAM {model} (official file: {file.url})"
        path, _ = fetch_verified(_FOLDER, file, origin, homepage=_HOMEPAGE, progress=progress)
        return path, file.name
    path = Path(checkpoint)
    if not path.is_file():
        raise WeightsError(
            f"SAM {model} checkpoint: expected 'official', a WeightFile or a .pth file, "
            f"received {str(checkpoint)!r}, which is not a file"
        )
    return path, path.name


class SamRefiner:
    """Refines the masks of a detector's instances with segment-anything.

    Args:
        detector: the detector whose boxes prompt SAM (None: only :meth:`refine` is used,
            with instances from elsewhere, e.g. given boxes).
        model: ``"vit_h"``, ``"vit_l"`` or ``"vit_b"`` (the lightest; default).
        checkpoint: ``"official"`` (downloaded and sha256-checked into the cache), a
            :class:`~instacolor.weights.WeightFile` (e.g. a mirror URL with the official
            hash), a ``.pth`` path, or None for random weights (tests).
        sam: an already built ``segment_anything.modeling.Sam`` (overrides ``model`` and
            ``checkpoint``; e.g. a small encoder in tests).
        device: torch device.
        progress: show a download progress bar.

    Raises:
        WeightsError: the checkpoint is missing and cannot be downloaded, has the wrong
            hash, or does not fit the architecture.
    """

    def __init__(
        self,
        detector: Detector | None = None,
        *,
        model: str = "vit_b",
        checkpoint: str | os.PathLike | WeightFile | None = "official",
        sam: torch.nn.Module | None = None,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> None:
        self.detector = detector
        self.device = torch.device(device)
        if sam is None:
            sam = build_sam(model)
            if checkpoint is None:
                warnings.warn(
                    "SamRefiner(checkpoint=None): randomly initialised SAM, its masks are "
                    "meaningless",
                    UntrainedWeightsWarning,
                    stacklevel=2,
                )
                self.weights_name = "random"
            else:
                path, self.weights_name = _checkpoint_path(model, checkpoint, progress)
                state = torch.load(path, map_location="cpu", weights_only=True)
                try:
                    sam.load_state_dict(state)
                except RuntimeError as err:
                    first = str(err).splitlines()[0]
                    raise WeightsError(
                        f"SAM checkpoint {path}: not a {model} state dict ({first}); pick the "
                        f"model type that matches the file ({', '.join(SAM_CHECKPOINTS)})"
                    ) from err
        else:
            self.weights_name = "custom"
        self.model = model
        self.sam = sam.eval().to(self.device)
        self.predictor = _segment_anything().SamPredictor(self.sam)

    @property
    def config(self) -> DetectorConfig:
        """The wrapped detector's options (defaults when there is none)."""
        return self.detector.config if self.detector is not None else DetectorConfig()

    @property
    def name(self) -> str:
        """``sam-<model>:<weights>``, after the detector's name when there is one."""
        own = f"sam-{self.model}:{self.weights_name}"
        inner = getattr(self.detector, "name", type(self.detector).__name__)
        return own if self.detector is None else f"{inner}+{own}"

    @torch.inference_mode()
    def refine(self, light: np.ndarray, instances: Instances) -> Instances:
        """Replace the masks of ``instances`` with SAM's, prompted by their boxes.

        Args:
            light: ``(H, W)`` float L plane in ``[0, 100]`` of the image.
            instances: instances of that image (boxes in input pixels).

        Returns:
            The same boxes, scores and labels with ``(N, H, W)`` bool masks.
        """
        size = tuple(int(v) for v in np.shape(light))
        if instances.image_size != size:
            raise InputError(
                f"SAM refine: expected instances of a {size} (H, W) image, received "
                f"instances of {instances.image_size}"
            )
        if len(instances) == 0:
            return instances
        rgb = (detector_input(light).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        self.predictor.set_image(rgb, image_format="RGB")
        boxes = torch.as_tensor(instances.boxes, dtype=torch.float32, device=self.device)
        boxes = self.predictor.transform.apply_boxes_torch(boxes, size)
        masks, _, _ = self.predictor.predict_torch(
            point_coords=None, point_labels=None, boxes=boxes, multimask_output=False
        )
        self.predictor.reset_image()
        masks = masks[:, 0].cpu().numpy()
        if instances.masks is not None:
            empty = ~masks.any(axis=(1, 2))
            masks[empty] = instances.masks[empty]
        return Instances(
            boxes=instances.boxes,
            image_size=instances.image_size,
            scores=instances.scores,
            labels=instances.labels,
            masks=masks,
        )

    def detect(self, light: np.ndarray) -> Detection:
        """Detect with the wrapped detector, then refine its masks.

        Args:
            light: ``(H, W)`` float L plane in ``[0, 100]``.

        Returns:
            The detector's :class:`Detection` with SAM's masks.
        """
        if self.detector is None:
            raise InputError(
                "SamRefiner.detect: this refiner has no detector; pass one "
                "(SamRefiner(TorchvisionMaskRCNN())) or call refine(light, instances)"
            )
        found = self.detector.detect(light)
        return Detection(
            instances=self.refine(light, found.instances),
            semantic=found.semantic,
            backend=self.name,
        )
