"""Detectron2 backend: detectron2's real Mask R-CNN and Panoptic FPN with random weights.

Needs detectron2 (``python tools/install_detectron2.py`` installs its Python code without
compiling). Nothing is fetched from the internet: official downloads come from a real
HTTP server on 127.0.0.1 serving files generated here.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import pickle
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

with warnings.catch_warnings():  # detectron2 v0.6 calls the deprecated torch.jit.script
    warnings.simplefilter("ignore", FutureWarning)
    detectron2 = pytest.importorskip("detectron2")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import MetadataCatalog

from instacolor.detection import Detection, Detector, DetectorConfig, detector_input
from instacolor.detection.detectron2_backend import (
    OFFICIAL_WEIGHTS,
    Detectron2Detector,
    official_weights_path,
)
from instacolor.errors import (
    DownloadError,
    InputError,
    InstacolorError,
    MissingDependencyError,
    UntrainedWeightsWarning,
    WeightsError,
)
from instacolor.labels import LABEL_NAMES, NUM_THINGS, UNKNOWN
from tests.conftest import bright_box_light, closed_port

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),
]

H, W = 96, 128
R50 = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
PANOPTIC_R50 = "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml"
X101 = "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml"
CONFIG = DetectorConfig(score_threshold=0.0, max_instances=5)


def _light(seed: int = 0) -> np.ndarray:
    return bright_box_light(H, W, seed)


def _tame(detector: Detectron2Detector) -> Detectron2Detector:
    """Scale inputs as the X101 config does: the R50 configs' PIXEL_STD of 1 (for their
    Caffe2 weights) makes a random backbone saturate every score at 1 and every box flat.
    And keep 20 detections, not 100: the mask head costs ~0.5 GFLOP per detection."""
    for net in (detector.model, detector.semantic_model):
        if net is not None:
            net.pixel_std.copy_(torch.tensor([57.375, 57.120, 58.395]).view(3, 1, 1))
            net.roi_heads.box_predictor.test_topk_per_image = 20
    return detector


def _build(config: DetectorConfig = CONFIG, **kwargs) -> Detectron2Detector:
    kwargs = {"model": R50, "semantic_model": PANOPTIC_R50, "weights": None, **kwargs}
    random = kwargs["weights"] is None
    with pytest.warns(UntrainedWeightsWarning) if random else contextlib.nullcontext():
        return _tame(Detectron2Detector(config, min_size=128, progress=False, **kwargs))


def _with(detector: Detectron2Detector, config: DetectorConfig, semantic: bool = False):
    """The same networks under other options (and without the semantic network)."""
    other = copy.copy(detector)
    other.config = config
    if not semantic:
        other.semantic_model = None
    return other


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread here: on a busy 2-core machine two threads take twice as long."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector() -> Detectron2Detector:
    return _build()


@pytest.fixture(scope="module")
def found(detector) -> Detection:
    return detector.detect(_light())


def _save_pkl(net: torch.nn.Module, path) -> None:
    """A checkpoint in the model zoo's own format: a pickle of numpy arrays."""
    state = {k: v.cpu().numpy() for k, v in net.state_dict().items()}
    with open(path, "wb") as f:
        pickle.dump({"model": state, "__author__": "instacolor tests"}, f)


def _assert_same(a: Detection, b: Detection) -> None:
    np.testing.assert_array_equal(a.instances.boxes, b.instances.boxes)
    np.testing.assert_array_equal(a.instances.scores, b.instances.scores)
    np.testing.assert_array_equal(a.instances.labels, b.instances.labels)
    np.testing.assert_array_equal(a.instances.masks, b.instances.masks)
    if a.semantic is not None or b.semantic is not None:
        np.testing.assert_array_equal(a.semantic.labels, b.semantic.labels)


def test_detects_instances_and_a_semantic_map(detector, found):
    assert isinstance(detector, Detector) and isinstance(found, Detection)
    inst = found.instances
    assert 1 <= len(inst) <= CONFIG.max_instances and inst.image_size == (H, W)
    assert inst.boxes.dtype == np.float32 and inst.boxes.shape == (len(inst), 4)
    assert (inst.boxes[:, :2] >= 0).all() and (inst.boxes[:, 2] <= W).all()
    assert (inst.boxes[:, 3] <= H).all() and (inst.boxes[:, 2:] > inst.boxes[:, :2]).all()
    assert ((inst.labels >= 0) & (inst.labels < NUM_THINGS)).all()
    assert (np.diff(inst.scores) <= 0).all()
    assert inst.masks.dtype == bool and inst.masks.shape == (len(inst), H, W)
    assert found.semantic.labels.shape == (H, W)
    assert found.backend == ("detectron2-mask_rcnn_R_50_FPN_3x:random+panoptic_fpn_R_50_3x:random")


def test_semantic_map_is_panoptic_fpns_segments_in_our_labels(detector, found):
    with torch.inference_mode():
        rgb = (detector_input(_light()).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        out = detector.semantic_model([detector._inputs(rgb, detector.semantic_cfg)])[0]
    segments, infos = out["panoptic_seg"]
    segments = segments.numpy()
    meta = MetadataCatalog.get("coco_2017_val_panoptic_separated")
    labels = found.semantic.labels
    assert infos, "the random Panoptic FPN should give at least one segment"
    for info in infos:
        inside = np.unique(labels[segments == info["id"]])
        assert len(inside) == 1, info
        name = LABEL_NAMES[int(inside[0])]
        if info["isthing"]:
            assert name == meta.thing_classes[info["category_id"]]
        else:  # detectron2 shortens the stuff names: "sky-other-merged" -> "sky"
            short = name.replace("-other", "").replace("-merged", "")
            assert short == meta.stuff_classes[info["category_id"]]
    assert (labels[segments == 0] == UNKNOWN).all()


def test_stuff_lookup_covers_the_53_coco_stuff_labels(detector):
    lookup = detector._stuff_labels
    assert lookup[0] == UNKNOWN and lookup[1:].tolist() == list(range(NUM_THINGS, UNKNOWN))


def test_threshold_top_k_classes_and_mask_threshold(detector, found):
    plain = _with(detector, DetectorConfig(score_threshold=0.0, max_instances=20))
    every = plain.detect(_light()).instances
    assert len(every) > CONFIG.max_instances and found.semantic is not None
    np.testing.assert_array_equal(found.instances.boxes, every.boxes[: CONFIG.max_instances])
    cut = float(every.scores[2])
    kept = _with(detector, DetectorConfig(score_threshold=cut, max_instances=20)).detect(_light())
    assert len(kept.instances) >= 3 and (kept.instances.scores >= cut).all()
    assert kept.semantic is None
    label = int(every.labels[0])
    one = _with(detector, DetectorConfig(score_threshold=0.0, classes=(label,))).detect(_light())
    assert len(one.instances) >= 1 and set(one.instances.labels.tolist()) == {label}
    loose = _with(detector, DetectorConfig(score_threshold=0.0, mask_threshold=0.1))
    tight = _with(detector, DetectorConfig(score_threshold=0.0, mask_threshold=0.9))
    low, high = loose.detect(_light()).instances.masks, tight.detect(_light()).instances.masks
    assert (high <= low).all() and high.sum() < low.sum()


def test_no_detection_is_an_empty_result(detector):
    none = _with(detector, DetectorConfig(score_threshold=1.0), semantic=True).detect(_light())
    assert len(none.instances) == 0 and none.instances.boxes.shape == (0, 4)
    assert none.instances.masks.shape == (0, H, W) and none.semantic.labels.shape == (H, W)


def test_reference_configs_build_and_detect():
    reference = _build(
        model=X101, semantic_model="COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"
    )
    found = reference.detect(_light(1))
    assert 1 <= len(found.instances) <= CONFIG.max_instances
    assert found.instances.masks.shape == (len(found.instances), H, W)
    assert found.semantic.labels.shape == (H, W)
    assert (
        found.backend
        == "detectron2-mask_rcnn_X_101_32x8d_FPN_3x:random+panoptic_fpn_R_101_3x:random"
    )


def test_generated_checkpoints_load_back_identically(detector, found, tmp_path):
    _save_pkl(detector.model, tmp_path / "instances.pkl")
    DetectionCheckpointer(detector.semantic_model, save_dir=str(tmp_path)).save("panoptic")
    loaded = _build(weights=tmp_path / "instances.pkl", semantic_weights=tmp_path / "panoptic.pth")
    again = loaded.detect(_light())
    _assert_same(found, again)
    assert again.backend == (
        "detectron2-mask_rcnn_R_50_FPN_3x:instances.pkl+panoptic_fpn_R_50_3x:panoptic.pth"
    )


def test_checkpoints_that_do_not_fit_are_refused(detector, tmp_path):
    state = {k: v.clone() for k, v in detector.model.state_dict().items()}
    state.pop("roi_heads.box_predictor.cls_score.weight")
    state["roi_heads.mask_head.predictor.weight"] = torch.zeros(3, 256, 1, 1)
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match="do not fit the architecture") as info:
        _build(weights=tmp_path / "broken.pth", semantic_model=None)
    assert "missing roi_heads.box_predictor.cls_score.weight" in str(info.value)
    assert "mask_head.predictor.weight has shape (3, 256, 1, 1), expected (80," in str(info.value)
    DetectionCheckpointer(detector.semantic_model, save_dir=str(tmp_path)).save("panoptic")
    with pytest.warns(UserWarning, match="entries unused by .*sem_seg_head"):
        _build(weights=tmp_path / "panoptic.pth", semantic_model=None)  # a superset loads
    (tmp_path / "noise.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="not a readable detectron2 checkpoint"):
        _build(weights=tmp_path / "noise.pkl", semantic_model=None)
    with pytest.raises(WeightsError, match="not a file"):
        _build(weights=tmp_path / "missing.pkl", semantic_model=None)
    with pytest.raises(InputError, match="semantic_weights"):
        _build(weights=tmp_path / "noise.pkl")


def test_official_weights_download_verify_md5_and_load(detector, http_root, cache, monkeypatch):
    served = http_root.root / "model.pkl"
    _save_pkl(detector.model, served)
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    entry = OFFICIAL_WEIGHTS[R50]
    good = replace(entry, file=f"model_final_{md5[:6]}.pkl", url=f"{http_root.url}/model.pkl")
    monkeypatch.setitem(OFFICIAL_WEIGHTS, R50, good)
    official = _build(weights="official", semantic_model=None)
    path = official_weights_path(R50)
    assert path == cache / "detectron2" / "COCO-InstanceSegmentation" / (
        f"mask_rcnn_R_50_FPN_3x/{entry.model_id}/{good.file}"
    )
    assert path.is_file() and official.name == f"detectron2-mask_rcnn_R_50_FPN_3x:{good.file}"
    plain = _with(detector, detector.config)
    _assert_same(plain.detect(_light()), official.detect(_light()))
    _build(weights="official", semantic_model=None)  # from the cache, no second download
    assert http_root.server.requests == ["/model.pkl"]
    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # corrupted in the cache
    with pytest.raises(WeightsError, match=f"starts with {md5[:6]}.*Delete it"):
        _build(weights="official", semantic_model=None)
    wrong = replace(good, file="model_final_000000.pkl")
    monkeypatch.setitem(OFFICIAL_WEIGHTS, R50, wrong)
    with pytest.raises(DownloadError, match="Nothing was kept"):
        _build(weights="official", semantic_model=None)
    assert not official_weights_path(R50).exists()


def test_missing_official_weights_offline_name_file_location_and_url(cache, monkeypatch):
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{closed_port()}")  # refused: offline
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    for kwargs, config in (({}, X101), ({"model": R50, "semantic_model": PANOPTIC_R50}, R50)):
        with pytest.raises(WeightsError) as info:
            Detectron2Detector(progress=False, **kwargs)
        message = str(info.value)
        assert OFFICIAL_WEIGHTS[config].file in message
        assert str(official_weights_path(config)) in message
        assert OFFICIAL_WEIGHTS[config].url in message
        assert OFFICIAL_WEIGHTS[config].url.startswith("https://dl.fbaipublicfiles.com/detectron2/")
    assert not any(p.is_file() for p in cache.rglob("*"))  # nothing partial left behind


def test_official_urls_follow_the_model_zoo():
    assert OFFICIAL_WEIGHTS[X101].url == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/"
        "mask_rcnn_X_101_32x8d_FPN_3x/139653917/model_final_2d9806.pkl"
    )
    panoptic = OFFICIAL_WEIGHTS["COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"]
    assert panoptic.url.endswith("panoptic_fpn_R_101_3x/139514519/model_final_cafdb1.pkl")
    assert OFFICIAL_WEIGHTS[X101].md5_prefix == "2d9806"
    configs = Path(detectron2.__path__[0]) / "model_zoo" / "configs"
    for config, entry in OFFICIAL_WEIGHTS.items():  # every entry names a shipped config
        assert (configs / config).is_file() and entry.config == config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "COCO-InstanceSegmentation/no_such_model.yaml"}, "model-zoo config name"),
        ({"model": PANOPTIC_R50}, "a PanopticFPN, expected a GeneralizedRCNN"),
        ({"semantic_model": R50}, "a GeneralizedRCNN, expected a PanopticFPN"),
        ({"model": "LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"}, "1230 classes"),
        ({"min_size": 0}, "min_size"),
    ],
)
def test_bad_configs_are_refused_before_building(kwargs, match):
    with pytest.raises(InputError, match=match):
        Detectron2Detector(**{"model": R50, "semantic_model": None, "weights": None, **kwargs})


@pytest.mark.slow
def test_missing_detectron2_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "detectron2", None)
    with pytest.raises(MissingDependencyError) as info:
        Detectron2Detector(weights=None)
    assert isinstance(info.value, ImportError) and isinstance(info.value, InstacolorError)
    assert "https://github.com/facebookresearch/detectron2" in str(info.value)
    code = (
        "import sys; sys.modules['detectron2'] = None; "
        "import instacolor.detection, instacolor.detection.detectron2_backend"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
