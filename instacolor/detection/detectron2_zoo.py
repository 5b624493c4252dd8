"""detectron2's model zoo as data: official COCO weights, their download and md5 check.

Official weights (:data:`OFFICIAL_WEIGHTS`, CC BY-SA 3.0) download from
``https://dl.fbaipublicfiles.com/detectron2/`` into
``$INSTACOLOR_CACHE/detectron2/<config>/<model id>/``. No sha256 is published; MODEL_ZOO.md
says each file name carries the file's md5 prefix (``model_final_2d9806.pkl``), checked
on every load (24 bits against corruption, no proof of origin). ``.pkl`` files are
pickles: load only files you trust.

Model-zoo configs are looked up in the installed detectron2's ``model_zoo/configs`` folder
(passed in by the caller), so this module never imports detectron2 itself.

Example:
    >>> from instacolor.detection.detectron2_zoo import OFFICIAL_WEIGHTS
    >>> w = OFFICIAL_WEIGHTS["COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"]
    >>> w.model_id, w.md5_prefix, w.folder
    (139514519, 'cafdb1', 'detectron2/COCO-PanopticSegmentation/panoptic_fpn_R_101_3x/139514519')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from instacolor.errors import DownloadError, InputError, WeightsError
from instacolor.weights import WeightFile, cache_dir
from instacolor.weights.download import fetch_file, file_digest

__all__ = [
    "OFFICIAL_WEIGHTS",
    "ModelZooWeights",
    "config_file",
    "fetch_official_weights",
    "official_weights_path",
]

_URL = "https://dl.fbaipublicfiles.com/detectron2/"
_HOMEPAGE = "https://github.com/facebookresearch/detectron2/blob/main/MODEL_ZOO.md"


@dataclass(frozen=True)
class ModelZooWeights:
    """Official detectron2 model-zoo weights of one config.

    Attributes:
        config: model-zoo config, e.g. ``"COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"``.
        model_id: detectron2's model id (a folder of the URL and of the cache).
        file: file name, ``model_final_<md5 prefix>.pkl``.
        url: download URL.
        metrics: COCO val2017 results from MODEL_ZOO.md.
    """

    config: str
    model_id: int
    file: str
    url: str
    metrics: str

    @property
    def md5_prefix(self) -> str:
        """The md5 prefix the file name carries."""
        return Path(self.file).stem.rpartition("_")[2]

    @property
    def folder(self) -> str:
        """Its folder in the cache."""
        return f"detectron2/{self.config.removesuffix('.yaml')}/{self.model_id}"


def _zoo(config: str, model_id: int, file: str, metrics: str) -> ModelZooWeights:
    url = f"{_URL}{config.removesuffix('.yaml')}/{model_id}/{file}"
    return ModelZooWeights(config, model_id, file, url, metrics)


#: Official COCO weights by model-zoo config (ids and files from detectron2 v0.6 model_zoo.py).
OFFICIAL_WEIGHTS: dict[str, ModelZooWeights] = {
    w.config: w
    for w in (
        _zoo("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", 137260431,
             "model_final_a54504.pkl", "box AP 38.6, mask AP 35.2"),
        _zoo("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", 137849600,
             "model_final_f10217.pkl", "box AP 41.0, mask AP 37.2"),
        _zoo("COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x.yaml", 138205316,
             "model_final_a3ec72.pkl", "box AP 42.9, mask AP 38.6"),
        _zoo("COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml", 139653917,
             "model_final_2d9806.pkl", "box AP 44.3, mask AP 39.5"),
        _zoo("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml", 139514544,
             "model_final_dbfeb4.pkl", "box AP 37.6, mask AP 34.7, PQ 39.4"),
        _zoo("COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml", 139514569,
             "model_final_c10459.pkl", "box AP 40.0, mask AP 36.5, PQ 41.5"),
        _zoo("COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml", 139514519,
             "model_final_cafdb1.pkl", "box AP 42.4, mask AP 38.5, PQ 43.0"),
    )
}  # fmt: skip


def official_weights_path(config: str) -> Path:
    """Where the official weights of a model-zoo ``config`` are cached (and looked for)."""
    return cache_dir() / OFFICIAL_WEIGHTS[config].folder / OFFICIAL_WEIGHTS[config].file


def fetch_official_weights(config: str, progress: bool) -> Path:
    """The verified official file of ``config``, downloaded into the cache if missing.

    Args:
        config: model-zoo config name, a key of :data:`OFFICIAL_WEIGHTS`.
        progress: show a download progress bar.

    Returns:
        Path of the cached file, its md5 prefix checked against its name.

    Raises:
        WeightsError: ``config`` has no official weights, the file is missing and not
            downloadable (from :func:`~instacolor.weights.download.fetch_file`), or a cached file
            has the wrong md5 prefix.
        DownloadError: a freshly downloaded file has the wrong md5 prefix (it is deleted).
    """
    if config not in OFFICIAL_WEIGHTS:
        raise WeightsError(
            f"detectron2 {config}: no official weights known to instacolor (known: "
            f"{', '.join(OFFICIAL_WEIGHTS)}); pass a checkpoint path as weights="
        )
    w = OFFICIAL_WEIGHTS[config]
    fresh = not official_weights_path(config).is_file()
    path = fetch_file(
        w.folder, WeightFile(w.file, url=w.url), homepage=_HOMEPAGE, progress=progress
    )
    digest = file_digest(path, "md5")
    if not digest.startswith(w.md5_prefix):
        if fresh:
            path.unlink(missing_ok=True)
        error = DownloadError if fresh else WeightsError
        raise error(
            f"detectron2 {config}: {path} has md5 {digest[:12]}..., but the official file name "
            f"{w.file} says it starts with {w.md5_prefix}: the file is corrupt or not the "
            f"official one. {'Nothing was kept' if fresh else 'Delete it'} and fetch it again "
            f"from {w.url}"
        )
    return path


def config_file(configs: Path, model: str | os.PathLike) -> Path:
    """A model-zoo config name, or a path to a detectron2 YAML config, as a file.

    Args:
        configs: the installed detectron2's ``model_zoo/configs`` folder.
        model: a config name under ``configs`` or a path to a ``.yaml`` file.

    Raises:
        InputError: ``model`` is neither (the message names both kinds and the folder).
    """
    for path in (configs / str(model), Path(model)):
        if str(model).endswith(".yaml") and path.is_file():
            return path
    raise InputError(
        f"detectron2 config: expected a model-zoo config name (e.g. "
        f"{next(iter(OFFICIAL_WEIGHTS))!r}, files under {configs}) or a path to a .yaml "
        f"config, received {str(model)!r}"
    )
