"""Detectron2's Mask R-CNN (instances) and Panoptic FPN (semantic map) as an instacolor detector.

The reference pipeline detects with Mask R-CNN X101-32x8d-FPN 3x (box AP 44.3, mask AP
39.5, COCO val2017); Panoptic FPN R101 3x (PQ 43.0) adds the per-pixel "stuff" map. Each
runs once per image, resized as ``DefaultPredictor`` does, and reports at input size.

detectron2 is optional, imported when a detector is built; install it from its official
source, ``pip install 'git+https://github.com/facebookresearch/detectron2.git'``
(``tools/install_detectron2.py`` installs its Python code uncompiled, for CPU inference
and tests). Configs are read from the package's model-zoo folder, not through
``detectron2.model_zoo``, which imports ``pkg_resources`` (gone in setuptools 81).

Official weights (:data:`OFFICIAL_WEIGHTS`, CC BY-SA 3.0, md5-prefix checked on every
load; ``.pkl`` files are pickles: load only files you trust) are described, downloaded and
checked in :mod:`instacolor.detection.detectron2_zoo`; :data:`OFFICIAL_WEIGHTS`,
:class:`ModelZooWeights` and :func:`official_weights_path` are re-exported here.

Example:
    >>> from instacolor.detection.detectron2_backend import OFFICIAL_WEIGHTS
    >>> w = OFFICIAL_WEIGHTS["COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml"]
    >>> w.model_id, w.file, w.md5_prefix
    (139653917, 'model_final_2d9806.pkl', '2d9806')
    >>> detector = Detectron2Detector(min_size=800)  # doctest: +SKIP
    >>> found = detector.detect(light)  # light: (H, W) L plane  # doctest: +SKIP
    >>> found.instances.masks.shape, found.semantic.labels.shape  # doctest: +SKIP
    ((N, H, W), (H, W))
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from instacolor.detection.base import Detection, DetectorConfig, detector_input, select_instances
from instacolor.detection.detectron2_zoo import (
    OFFICIAL_WEIGHTS,
    ModelZooWeights,
    config_file,
    fetch_official_weights,
    official_weights_path,
)
from instacolor.errors import (
    InputError,
    MissingDependencyError,
    UntrainedWeightsWarning,
    WeightsError,
)
from instacolor.labels import (
    NUM_THINGS,
    UNKNOWN,
    coco_ids_to_labels,
    label_from_coco_id,
    thing_label_from_contiguous,
)
from instacolor.structures import SemanticMap

__all__ = [
    "OFFICIAL_WEIGHTS",
    "Detectron2Detector",
    "ModelZooWeights",
    "official_weights_path",
]

_INSTALL = (
    "install it from its official source: pip install "
    "'git+https://github.com/facebookresearch/detectron2.git' (see "
    "https://detectron2.readthedocs.io/tutorials/install.html), or, without a compiler, "
    "for CPU inference: python tools/install_detectron2.py from instacolor's repository"
)


def _detectron2() -> SimpleNamespace:
    """The parts of detectron2 the backend uses, imported on first use."""
    try:
        import detectron2
        import detectron2.data.transforms as transforms
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import MetadataCatalog
        from detectron2.modeling import build_model
        from detectron2.modeling.postprocessing import detector_postprocess
    except ImportError as err:
        raise MissingDependencyError(
            f"Detectron2Detector needs detectron2, which could not be imported ({err}); {_INSTALL}"
        ) from err
    return SimpleNamespace(
        configs=Path(next(iter(detectron2.__path__))) / "model_zoo" / "configs",
        transforms=transforms,
        DetectionCheckpointer=DetectionCheckpointer,
        get_cfg=get_cfg,
        MetadataCatalog=MetadataCatalog,
        build_model=build_model,
        detector_postprocess=detector_postprocess,
    )


def _load_checkpoint(d2: SimpleNamespace, net: torch.nn.Module, path: Path, config: str) -> None:
    """Load a detectron2 checkpoint, refusing one that does not fit the architecture."""
    checkpointer = d2.DetectionCheckpointer(net)
    try:
        # load() only logs missing and mis-shaped weights; its two steps return them.
        incompatible = checkpointer._load_model(checkpointer._load_file(str(path)))
    except Exception as err:  # pickle, torch.load and format errors alike
        raise WeightsError(
            f"detectron2 weights {path}: not a readable detectron2 checkpoint (.pkl model-zoo "
            f"file or .pth saved by DetectionCheckpointer): {type(err).__name__}: {err}"
        ) from err
    problems = [f"missing {k}" for k in incompatible.missing_keys]
    problems += [f"{k} has shape {a}, expected {b}" for k, a, b in incompatible.incorrect_shapes]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; ... ({len(problems)} in all)" * (len(problems) > 4))
        raise WeightsError(
            f"detectron2 weights {path} do not fit the architecture of {config}: {shown}. "
            f"Pass the config the checkpoint was trained with"
        )
    if incompatible.unexpected_keys:  # every weight found: a superset, e.g. a Panoptic FPN's
        warnings.warn(
            f"detectron2 weights {path}: {len(incompatible.unexpected_keys)} entries unused by "
            f"{config}, e.g. {incompatible.unexpected_keys[0]}",
            stacklevel=4,
        )


_ARCHITECTURES = {"instance": "GeneralizedRCNN", "semantic": "PanopticFPN"}


def _read_config(d2: SimpleNamespace, model, kind: str, device, min_size: int, score: float):
    """The frozen detectron2 config of ``model``, checked to be a COCO ``kind`` model."""
    cfg = d2.get_cfg()
    cfg.merge_from_file(str(config_file(d2.configs, model)))
    cfg.MODEL.DEVICE = str(device)
    cfg.MODEL.WEIGHTS = ""
    cfg.INPUT.MIN_SIZE_TEST = min_size
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score
    cfg.freeze()
    meta = d2.MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else {}
    things = meta.get("thing_dataset_id_to_contiguous_id") or {}
    arch, problem = cfg.MODEL.META_ARCHITECTURE, None
    if arch != _ARCHITECTURES[kind]:
        problem = f"a {arch}, expected a {_ARCHITECTURES[kind]}"
    elif cfg.INPUT.FORMAT not in ("BGR", "RGB"):
        problem = f"input format {cfg.INPUT.FORMAT}, expected BGR or RGB"
    elif (
        cfg.MODEL.ROI_HEADS.NUM_CLASSES != NUM_THINGS
        or not things
        or coco_ids_to_labels(list(things), strict=False).tolist() != list(things.values())
    ):
        problem = (
            f"{cfg.MODEL.ROI_HEADS.NUM_CLASSES} classes of {cfg.DATASETS.TEST[:1]}, expected "
            f"the {NUM_THINGS} COCO thing classes"
        )
    if problem:
        folder = "COCO-InstanceSegmentation" if kind == "instance" else "COCO-PanopticSegmentation"
        raise InputError(f"{kind} model {model}: {problem} (see {folder}/ in the model zoo)")
    return cfg


def _stuff_labels(d2: SimpleNamespace, cfg) -> np.ndarray:
    """Lookup from Panoptic FPN's contiguous stuff index (0 = all things) to our labels."""
    meta = d2.MetadataCatalog.get(cfg.DATASETS.TEST[0])
    lookup = np.full(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, UNKNOWN, np.int64)
    for cid, index in meta.stuff_dataset_id_to_contiguous_id.items():
        if index > 0:  # 0 is the merged "things" class, dataset id 0
            lookup[index] = label_from_coco_id(cid)
    return lookup


def _network(d2: SimpleNamespace, cfg, model, weights, progress: bool):
    """``(network in eval mode, weights name)``; official weights are fetched first."""
    checkpoint = None
    if weights is not None and str(weights) == "official":
        checkpoint = fetch_official_weights(str(model), progress)
    elif weights is not None:
        checkpoint = Path(weights)
        if not checkpoint.is_file():
            raise WeightsError(
                f"detectron2 weights: expected 'official', None or a checkpoint file, "
                f"received {str(weights)!r}, which is not a file"
            )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = d2.build_model(cfg)
    if checkpoint is not None:
        _load_checkpoint(d2, net, checkpoint, str(model))
    return net.eval(), "random" if checkpoint is None else checkpoint.name


class Detectron2Detector:
    """Instances from detectron2's Mask R-CNN and a semantic map from its Panoptic FPN.

    Args:
        config: thresholds, top-k and class filter.
        model: instance model, a model-zoo config name (or path to a YAML config) of a COCO
            detector; default the reference Mask R-CNN X101-32x8d FPN 3x.
        semantic_model: Panoptic FPN config giving :attr:`Detection.semantic`, or None for
            no semantic map (and no second network).
        weights: ``"official"`` (downloaded into the cache, md5-prefix checked), a
            detectron2 checkpoint (``.pkl`` model-zoo format or ``.pth`` saved by
            ``DetectionCheckpointer``) for ``model``, or None for random weights (tests;
            warns with :class:`~instacolor.errors.UntrainedWeightsWarning`).
        semantic_weights: the same for ``semantic_model``; ``"same"`` follows ``weights``
            when that is ``"official"`` or None (a path needs its own here).
        device: torch device.
        min_size: shorter image side the networks see (``INPUT.MIN_SIZE_TEST``; 800).
        progress: show download progress bars.

    Raises:
        MissingDependencyError: detectron2 is not installed (an ImportError).
        InputError: unknown config, one not trained on COCO, or a bad option.
        WeightsError: official weights missing and not downloadable (the message names the
            file, where it belongs and its URL), wrong md5, or a checkpoint with missing or
            mis-shaped weights (entries the network does not use only warn).
    """

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        model: str | os.PathLike = "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml",
        semantic_model: str
        | os.PathLike
        | None = "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml",
        weights: str | os.PathLike | None = "official",
        semantic_weights: str | os.PathLike | None = "same",
        device: str | torch.device = "cpu",
        min_size: int = 800,
        progress: bool = True,
    ) -> None:
        self.config = config or DetectorConfig()
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise InputError(f"min_size: expected a positive integer, received {min_size!r}")
        if str(semantic_weights) == "same":
            if weights is not None and str(weights) != "official" and semantic_model is not None:
                raise InputError(
                    "semantic_weights: weights= is a file for the instance model; pass the "
                    "Panoptic FPN checkpoint as semantic_weights= (or semantic_model=None)"
                )
            semantic_weights = weights
        self.device = torch.device(device)
        d2 = self._d2 = _detectron2()
        score = min(0.05, self.config.score_threshold)
        self.cfg = _read_config(d2, model, "instance", self.device, min_size, score)
        self.model_name = Path(str(model)).stem
        self.semantic_cfg = self.semantic_model = self.semantic_model_name = None
        if semantic_model is not None:
            self.semantic_cfg = _read_config(
                d2, semantic_model, "semantic", self.device, min_size, 0.05
            )
            self.semantic_model_name = Path(str(semantic_model)).stem
            self._stuff_labels = _stuff_labels(d2, self.semantic_cfg)
        self.model, self.weights_name = _network(d2, self.cfg, model, weights, progress)
        if semantic_model is not None:
            self.semantic_model, self.semantic_weights_name = _network(
                d2, self.semantic_cfg, semantic_model, semantic_weights, progress
            )
        if weights is None or (semantic_model is not None and semantic_weights is None):
            warnings.warn(
                "Detectron2Detector with weights=None: randomly initialised network(s), the "
                "detections and semantic maps are meaningless",
                UntrainedWeightsWarning,
                stacklevel=2,
            )

    @property
    def name(self) -> str:
        """Backend, configs and weights, as recorded in results and manifests."""
        own = f"detectron2-{self.model_name}:{self.weights_name}"
        if self.semantic_model is None:
            return own
        return f"{own}+{self.semantic_model_name}:{self.semantic_weights_name}"

    def _inputs(self, rgb: np.ndarray, cfg) -> dict:
        """``(H, W, 3)`` uint8 RGB as detectron2 takes it: ``(3, h, w)`` float32 in
        [0, 255] in ``INPUT.FORMAT`` channel order, resized as ``DefaultPredictor`` does."""
        image = rgb[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else rgb
        resize = self._d2.transforms.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        image = resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(
            np.ascontiguousarray(image.transpose(2, 0, 1)), dtype=torch.float32
        )
        return {"image": tensor, "height": rgb.shape[0], "width": rgb.shape[1]}

    def detect(self, light: np.ndarray) -> Detection:
        """Instances, and a semantic map when there is a ``semantic_model``, of one image.

        Args:
            light: ``(H, W)`` float L plane in ``[0, 100]``.

        Returns:
            :class:`Detection` with ``(N, H, W)`` masks (Mask R-CNN configs) and an
            ``(H, W)`` :class:`SemanticMap`: Panoptic FPN's segments, things as their thing
            label, stuff as labels 80..132, unassigned pixels :data:`UNKNOWN`.
        """
        rgb = (detector_input(light).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        inputs = self._inputs(rgb, self.cfg)
        h, w = inputs["height"], inputs["width"]
        with torch.inference_mode():
            raw = self.model.inference([inputs], do_postprocess=False)[0]
            found = self._d2.detector_postprocess(raw, h, w, self.config.mask_threshold).to("cpu")
        classes = found.pred_classes.numpy()
        instances = select_instances(
            found.pred_boxes.tensor.numpy(),
            found.scores.numpy(),
            np.array([thing_label_from_contiguous(int(c)) for c in classes], np.int64),
            (h, w),
            self.config,
            masks=found.pred_masks.numpy() if found.has("pred_masks") else None,
        )
        semantic = None if self.semantic_model is None else self._semantic(rgb)
        return Detection(instances=instances, semantic=semantic, backend=self.name)

    def _semantic(self, rgb: np.ndarray) -> SemanticMap:
        """Panoptic FPN's segments of one image as labels (one forward)."""
        with torch.inference_mode():
            out = self.semantic_model([self._inputs(rgb, self.semantic_cfg)])[0]
        segments, infos = out["panoptic_seg"]
        lookup = np.full(max([s["id"] for s in infos], default=0) + 1, UNKNOWN, np.int64)
        for s in infos:
            cid = s["category_id"]
            lookup[s["id"]] = (
                thing_label_from_contiguous(cid) if s["isthing"] else self._stuff_labels[cid]
            )
        return SemanticMap(lookup[segments.cpu().numpy()])
