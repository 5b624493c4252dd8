"""Evaluation protocols: score weights on colour photos and COCO scenes, sweep settings.

Every protocol colorizes the gray version of colour photos through the public
:class:`~instacolor.Colorizer` and scores the result against the original with
:mod:`instacolor.metrics` (and LPIPS, :mod:`instacolor.perceptual`), beside the gray
baseline (ab = 0). The ``instacolor evaluate`` and ``instacolor tune`` commands
(:mod:`instacolor.cli.evaluate`) print these results as Markdown and write them as JSON.

* :mod:`~instacolor.evaluation.scoring`: the 256x256 view, per-image scores, tables.
* :mod:`~instacolor.evaluation.folder`: a folder of photos, the confidence calibration.
* :mod:`~instacolor.evaluation.coco`: held-out COCO scenes with ground-truth instances.
* :mod:`~instacolor.evaluation.hints`: the oracle-hint curve.
* :mod:`~instacolor.evaluation.decodings`: the working size x saturation x decoding sweep.

Imports go one way: this package uses the library; nothing in the library but the
command line imports it.

Example:
    >>> from instacolor.evaluation import Setting
    >>> Setting(128, 1.0, "regression", None, 24.5, 20.0, 0.5).markdown()
    '| 128 | 1 | regression | - | 24.500 | 20.00 | 0.50 |'
"""

from __future__ import annotations

from instacolor.evaluation.coco import (
    CocoReport,
    CocoScene,
    OwnBoxWeights,
    coco_heldout,
    coco_scenes,
    coco_training,
    evaluate_coco,
    instance_colors,
    masked_psnr,
    own_box_weights,
)
from instacolor.evaluation.decodings import (
    Setting,
    Sweep,
    load_set,
    score_set,
    sweep,
)
from instacolor.evaluation.folder import (
    Calibration,
    Decile,
    calibration,
    evaluate_folder,
    grid_image,
    write_grid,
)
from instacolor.evaluation.hints import HINT_MODES, HintCurve, hint_curve, oracle_hints
from instacolor.evaluation.scoring import (
    SIZE,
    MetricTable,
    Row,
    ab_planes,
    gray_plane,
    image_files,
    mean_table,
    read_rgb,
    score,
    small,
    truth_score,
)

__all__ = [
    "HINT_MODES",
    "SIZE",
    "Calibration",
    "CocoReport",
    "CocoScene",
    "Decile",
    "HintCurve",
    "MetricTable",
    "OwnBoxWeights",
    "Row",
    "Setting",
    "Sweep",
    "ab_planes",
    "calibration",
    "coco_heldout",
    "coco_scenes",
    "coco_training",
    "evaluate_coco",
    "evaluate_folder",
    "gray_plane",
    "grid_image",
    "hint_curve",
    "image_files",
    "instance_colors",
    "load_set",
    "masked_psnr",
    "mean_table",
    "oracle_hints",
    "own_box_weights",
    "read_rgb",
    "score",
    "score_set",
    "small",
    "sweep",
    "truth_score",
    "write_grid",
]
