"""Detection stage: options, filtering, and torchvision's real Mask R-CNN with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor import Colorizer
from instacolor.detection import (
    Detection,
    Detector,
    DetectorConfig,
    TorchvisionMaskRCNN,
    detector_input,
    select_instances,
)
from instacolor.detection.torchvision_backend import OFFICIAL_WEIGHTS, official_weights_path
from instacolor.errors import InputError, UntrainedWeightsWarning, WeightsError
from instacolor.labels import NUM_LABELS, UNKNOWN, coco_ids_to_labels, label_from_name
from tests.conftest import bright_box_light

H, W = 96, 128


def _light(seed: int = 0) -> np.ndarray:
    return bright_box_light(H, W, seed)


@pytest.fixture(scope="module")
def detector() -> TorchvisionMaskRCNN:
    with pytest.warns(UntrainedWeightsWarning):
        return TorchvisionMaskRCNN(
            DetectorConfig(score_threshold=0.0, max_instances=5), weights=None, min_size=128
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"score_threshold": 1.5},
        {"score_threshold": float("nan")},
        {"mask_threshold": -0.1},
        {"min_box_size": -1},
        {"max_instances": -1},
        {"max_instances": 2.5},
        {"classes": (0, NUM_LABELS)},
    ],
)
def test_config_rejects_bad_options(kwargs):
    with pytest.raises(InputError, match=next(iter(kwargs))):
        DetectorConfig(**kwargs)


def test_select_instances_applies_threshold_classes_size_and_top_k():
    boxes = np.array(
        [[0, 0, 50, 50], [10, 10, 60, 40], [5, 5, 7, 40], [0, 0, 200, 90], [20, 20, 80, 80]],
        np.float64,
    )
    scores = np.array([0.9, 0.8, 0.95, 0.75, 0.5])
    person, dog = label_from_name("person"), label_from_name("dog")
    labels = np.array([person, dog, person, person, dog])
    masks = np.zeros((5, H, W), bool)
    masks[np.arange(5), np.arange(5), np.arange(5)] = True
    cfg = DetectorConfig(score_threshold=0.7, min_box_size=4, max_instances=2)
    inst = select_instances(boxes, scores, labels, (H, W), cfg, masks=masks)
    # box 2 is 2 px wide, box 4 scores 0.5; of the rest the two best scores, in order
    assert inst.scores.tolist() == pytest.approx([0.9, 0.8])
    assert inst.masks[0, 0, 0] and inst.masks[1, 1, 1]
    inst = select_instances(boxes, scores, labels, (H, W), DetectorConfig(classes=(person,)))
    assert set(inst.labels.tolist()) == {person} and len(inst) == 2
    assert inst.boxes[1].tolist() == [0, 0, W, 90]  # clipped to the image
    none = select_instances(boxes, scores, labels, (H, W), DetectorConfig(score_threshold=1.0))
    assert len(none) == 0 and none.boxes.shape == (0, 4)


def test_detector_input_is_gray_replicated():
    x = detector_input(_light())
    assert x.shape == (3, H, W) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
    assert 0.25 < float(x[0, 0, 0]) < 0.35
    for bad in (np.zeros((H, W, 3), np.float32), np.zeros((0, 4), np.float32), np.zeros((4, 4))):
        with pytest.raises(InputError, match="L plane"):
            detector_input(bad.astype(np.uint8) if bad.ndim == 3 else bad[:0])
    with pytest.raises(InputError, match="NaN"):
        detector_input(np.full((4, 4), np.nan, np.float32))


def test_torchvision_detects_with_random_weights(detector):
    assert isinstance(detector, Detector)
    found = detector.detect(_light())
    assert isinstance(found, Detection) and found.semantic is None
    inst = found.instances
    assert 1 <= len(inst) <= 5 and inst.image_size == (H, W)
    assert inst.masks is not None and inst.masks.shape == (len(inst), H, W)
    assert ((inst.labels >= 0) & (inst.labels < NUM_LABELS)).all()
    assert (np.diff(inst.scores) <= 0).all()
    assert found.backend.endswith(":random")
    # the instances drive the colorizer directly
    with pytest.warns(UntrainedWeightsWarning):
        colorizer = Colorizer("instacolor-untrained-w16", working_size=64)
    gray = np.full((H, W), 120, np.uint8)
    res = colorizer.colorize_full(gray, instances=inst)
    assert res.weight_maps["conv10_2"].shape[0] == len(inst) + 1


def test_no_detection_is_an_empty_result(detector):
    strict = TorchvisionMaskRCNN.__new__(TorchvisionMaskRCNN)
    strict.__dict__.update(detector.__dict__, config=DetectorConfig(score_threshold=1.0))
    found = strict.detect(_light())
    assert len(found.instances) == 0 and found.instances.masks.shape == (0, H, W)


def test_state_dict_file_loads_and_a_wrong_one_is_refused(detector, tmp_path):
    path = tmp_path / "maskrcnn.pth"
    torch.save(detector.model.state_dict(), path)
    loaded = TorchvisionMaskRCNN(detector.config, weights=path, min_size=128)
    a, b = detector.detect(_light()), loaded.detect(_light())
    np.testing.assert_array_equal(a.instances.boxes, b.instances.boxes)
    assert b.backend.endswith(":maskrcnn.pth")
    state = detector.model.state_dict()
    state.pop("roi_heads.box_predictor.cls_score.weight")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match="cls_score"):
        TorchvisionMaskRCNN(weights=tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match="not a file"):
        TorchvisionMaskRCNN(weights=tmp_path / "missing.pth")


def test_official_weights_come_from_torchvisions_cache(detector, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = official_weights_path()
    assert path == tmp_path / "hub" / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    path.parent.mkdir(parents=True)
    torch.save(detector.model.state_dict(), path)  # a generated stand-in for the real file
    official = TorchvisionMaskRCNN(detector.config, min_size=128, progress=False)
    assert official.name.endswith(path.name)
    np.testing.assert_array_equal(
        official.detect(_light()).instances.boxes, detector.detect(_light()).instances.boxes
    )


def test_missing_official_weights_offline_name_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # refused at once: offline
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(WeightsError) as info:
        TorchvisionMaskRCNN(progress=False)
    message = str(info.value)
    assert str(official_weights_path()) in message and OFFICIAL_WEIGHTS.url in message
    folder = tmp_path / "hub" / "checkpoints"
    assert not folder.exists() or not any(folder.iterdir())  # nothing partial left behind


def test_unused_category_slots_become_unknown():
    assert coco_ids_to_labels(np.array([1, 12, 18]), strict=False).tolist() == [
        label_from_name("person"),
        UNKNOWN,
        label_from_name("dog"),
    ]
