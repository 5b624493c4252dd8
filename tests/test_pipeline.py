"""The detection stage inside the Colorizer: detected instances, fallback, COCO files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from instacolor import Colorizer
from instacolor.detection import (
    DetectorConfig,
    TorchvisionMaskRCNN,
    make_detector,
)
from instacolor.detection.torchvision_backend import OFFICIAL_WEIGHTS
from instacolor.errors import (
    DetectorUnavailableWarning,
    InputError,
    UntrainedWeightsWarning,
    WeightsError,
)
from instacolor.io.coco import CocoAnnotations
from instacolor.labels import UNKNOWN

H, W = 96, 128


def _gray() -> np.ndarray:
    gray = np.full((H, W), 70, np.uint8)
    gray[20:70, 30:90] = 200
    return gray


@pytest.fixture(scope="module")
def detector() -> TorchvisionMaskRCNN:
    with pytest.warns(UntrainedWeightsWarning):
        return TorchvisionMaskRCNN(
            DetectorConfig(score_threshold=0.0, max_instances=4), weights=None, min_size=128
        )


@pytest.fixture(scope="module")
def untrained():
    def make(**kw) -> Colorizer:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UntrainedWeightsWarning)
            return Colorizer("instacolor-untrained-w16", working_size=64, **kw)

    return make


def test_colorizer_runs_the_detector_when_no_instances_are_given(untrained, detector):
    colorizer = untrained(detector=detector)
    res = colorizer.colorize_full(_gray())
    expected = detector.detect(colorizer_light := _light_of(_gray())).instances
    assert res.detector == detector.name
    assert len(res.instances) == len(expected) > 0
    np.testing.assert_allclose(res.instances.boxes, expected.boxes)
    assert res.weight_maps["conv10_2"].shape[0] == len(expected) + 1
    assert res.timings["detect"] > 0
    # no semantic map from torchvision: one painted from the detected masks
    painted = res.semantic.labels
    assert painted.shape == colorizer_light.shape
    assert set(np.unique(painted)) <= set(expected.labels.tolist()) | {UNKNOWN}
    # the same instances given by hand give the same image
    by_hand = untrained().colorize(_gray(), instances=expected, semantic=res.semantic)
    np.testing.assert_array_equal(res.image, by_hand)


def _light_of(gray: np.ndarray) -> np.ndarray:
    from instacolor.io.image import read_luminance

    return read_luminance(gray)[0]


def test_given_instances_skip_the_detector(untrained, detector):
    colorizer = untrained(detector=detector)
    res = colorizer.colorize_full(_gray(), instances=[])
    assert res.detector is None and res.instances is None and res.timings["detect"] < 1e-3
    np.testing.assert_array_equal(res.image, untrained().colorize(_gray()))


def test_missing_detector_weights_raise_by_default(untrained, offline):
    with pytest.raises(WeightsError) as info:
        untrained(detector="torchvision")
    assert OFFICIAL_WEIGHTS.url in str(info.value)


def test_fallback_to_full_image_warns_and_says_why(untrained, offline):
    with pytest.warns(DetectorUnavailableWarning, match="WITHOUT instances") as caught:
        colorizer = untrained(detector="torchvision", fallback_to_full_image=True)
    assert OFFICIAL_WEIGHTS.url in str(caught[0].message)
    assert colorizer.detector is None and OFFICIAL_WEIGHTS.url in colorizer.detector_error
    res = colorizer.colorize_full(_gray())
    assert res.detector is None and res.instances is None
    np.testing.assert_array_equal(res.image, untrained().colorize(_gray()))


@pytest.mark.parametrize("bad", ["yolo", "torchvision+crf", object()])
def test_unknown_detectors_are_refused(untrained, bad):
    with pytest.raises(InputError, match="detector"):
        untrained(detector=bad)


def test_make_detector_parses_sam_suffix(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InputError, match="vit_x"):
        make_detector("torchvision+sam-vit_x")  # checked before any download


# ------------------------------------------------------------------------- COCO files


def _dataset() -> dict:
    square = [[10.0, 10.0, 50.0, 10.0, 50.0, 50.0, 10.0, 50.0]]
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": 60, "width": 80},
        ],
        "annotations": [
            {"image_id": 1, "bbox": [10, 10, 40, 40], "category_id": 18, "segmentation": square},
            {"image_id": 1, "bbox": [60, 5, 30, 80], "category_id": 1, "segmentation": square},
        ],
    }


def test_coco_file_finds_an_image_by_name_path_or_id(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_dataset()))
    coco = CocoAnnotations(path)
    assert len(coco) == 2
    a = coco.instances("/archive/box 3/a.jpg")
    assert len(a) == 2 and a.masks.shape == (2, H, W) and a.masks[0].sum() == 40 * 40
    assert np.array_equal(coco.instances(1).boxes, a.boxes)
    assert len(coco.instances("b.png")) == 0 and coco.instances("b.png").image_size == (60, 80)
    with pytest.raises(InputError, match=r"no image 'c\.jpg'"):
        coco.instances("c.jpg")


def test_bad_coco_files_are_refused(tmp_path):
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(InputError, match=r"broken\.json"):
        CocoAnnotations(tmp_path / "broken.json")
    with pytest.raises(InputError, match="'images'"):
        CocoAnnotations({"annotations": []})
    with pytest.raises(InputError, match=r"missing\.json"):
        CocoAnnotations(tmp_path / "missing.json")


@pytest.mark.needs_data("coco128")
def test_coco128_parses_completely(data_dir):
    from pycocotools.coco import COCO as CocoApi  # the official API as the reference

    ann_file = data_dir / "coco128" / "annotations" / "instances_train2017.json"
    coco = CocoAnnotations(ann_file)
    reference = CocoApi(str(ann_file))
    total = rle = 0
    for image_id in coco.images:
        anns = coco.annotations(image_id)
        inst = coco.instances(image_id)
        assert len(inst) == len(anns)
        total += len(inst)
        for ann, mask in zip(anns, inst.masks if len(inst) else []):
            rle += isinstance(ann["segmentation"], dict)
            np.testing.assert_array_equal(mask, reference.annToMask(ann).astype(bool))
    assert total == 939 and rle == 10


@pytest.mark.needs_data("coco128")
def test_coco128_image_colorizes_with_its_annotations(untrained, data_dir):
    coco = CocoAnnotations(data_dir / "coco128" / "annotations" / "instances_train2017.json")
    path = next((data_dir / "coco128" / "train2017").rglob("*.jpg"))
    gray = np.asarray(Image.open(path).convert("L"))
    res = untrained().colorize_full(gray, instances=coco.instances(path))
    assert len(res.instances) == len(coco.annotations(path.name))
