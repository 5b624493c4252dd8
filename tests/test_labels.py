"""Tests of instacolor.labels: the COCO panoptic label space plus "unknown"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instacolor import labels
from instacolor.errors import InputError
from instacolor.labels import (
    COCO_CATEGORY_IDS,
    LABEL_NAMES,
    NUM_LABELS,
    NUM_THINGS,
    UNKNOWN,
    coco_ids_to_labels,
    is_thing,
    label_from_coco_id,
    label_from_name,
    thing_label_from_contiguous,
)


def test_sizes_and_uniqueness() -> None:
    assert NUM_LABELS == 134 == len(LABEL_NAMES)
    assert NUM_THINGS == 80
    assert UNKNOWN == 133 and LABEL_NAMES[UNKNOWN] == "unknown"
    assert len(set(LABEL_NAMES)) == NUM_LABELS
    assert len(COCO_CATEGORY_IDS) == 133 == len(set(COCO_CATEGORY_IDS))
    assert all(isinstance(name, str) and name for name in LABEL_NAMES)


def test_all_exports_exist() -> None:
    for name in labels.__all__:
        assert hasattr(labels, name), name


def test_things_then_stuff_sorted_by_id() -> None:
    assert list(COCO_CATEGORY_IDS) == sorted(COCO_CATEGORY_IDS)
    thing_ids, stuff_ids = COCO_CATEGORY_IDS[:NUM_THINGS], COCO_CATEGORY_IDS[NUM_THINGS:]
    assert len(stuff_ids) == 53
    assert min(thing_ids) == 1 and max(thing_ids) == 90
    assert min(stuff_ids) == 92 and max(stuff_ids) == 200
    assert [is_thing(i) for i in range(NUM_LABELS)] == [True] * 80 + [False] * 54


@pytest.mark.parametrize(
    ("coco_id", "label", "name"),
    [
        (1, 0, "person"),
        (11, 10, "fire hydrant"),
        (13, 11, "stop sign"),
        (90, 79, "toothbrush"),
        (92, 80, "banner"),
        (187, 119, "sky-other-merged"),
        (199, 131, "wall-other-merged"),
        (200, 132, "rug-merged"),
    ],
)
def test_spot_checks(coco_id: int, label: int, name: str) -> None:
    assert label_from_coco_id(coco_id) == label
    assert LABEL_NAMES[label] == name
    assert label_from_name(name) == label
    assert COCO_CATEGORY_IDS[label] == coco_id


def test_round_trip_all_ids() -> None:
    for label, coco_id in enumerate(COCO_CATEGORY_IDS):
        assert label_from_coco_id(coco_id) == label
        assert label_from_coco_id(np.int32(coco_id)) == label
        assert label_from_name(LABEL_NAMES[label]) == label
    assert label_from_name("unknown") == UNKNOWN


@pytest.mark.parametrize("bad", [0, 12, 26, 91, 94, 201, -1, 10_000])
def test_unknown_id_raises(bad: int) -> None:
    with pytest.raises(InputError, match=rf"received {bad}\b") as info:
        label_from_coco_id(bad)
    assert isinstance(info.value, ValueError)
    assert "COCO panoptic category id" in str(info.value)
    with pytest.raises(ValueError, match=rf"received {bad}\b"):
        coco_ids_to_labels([1, bad, 2])


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_non_integer_id_raises(bad: object) -> None:
    with pytest.raises(InputError):
        label_from_coco_id(bad)  # type: ignore[arg-type]


def test_vectorised_equals_scalar() -> None:
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array(COCO_CATEGORY_IDS), size=(7, 11))
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.uint64):
        out = coco_ids_to_labels(ids.astype(dtype))
        assert out.dtype == np.int64 and out.shape == ids.shape
        expected = np.vectorize(label_from_coco_id, otypes=[np.int64])(ids)
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(coco_ids_to_labels(list(COCO_CATEGORY_IDS)), np.arange(133))
    assert coco_ids_to_labels([]).shape == (0,)
    assert coco_ids_to_labels(np.zeros((0, 3), np.int32)).dtype == np.int64


def test_vectorised_rejects_floats() -> None:
    with pytest.raises(InputError, match="dtype"):
        coco_ids_to_labels(np.array([1.0, 2.0]))


def test_label_from_name_suggests() -> None:
    with pytest.raises(InputError, match="wall-other-merged") as info:
        label_from_name("wall-other")
    assert isinstance(info.value, ValueError)
    with pytest.raises(InputError, match="'Person'"):
        label_from_name("Person")


def test_is_thing_range() -> None:
    assert is_thing(0) and is_thing(79) and not is_thing(80) and not is_thing(UNKNOWN)
    for bad in (-1, NUM_LABELS):
        with pytest.raises(InputError):
            is_thing(bad)


def test_thing_label_from_contiguous() -> None:
    assert [thing_label_from_contiguous(i) for i in range(80)] == list(range(80))
    assert thing_label_from_contiguous(np.int64(5)) == 5
    for bad in (-1, 80, 133):
        with pytest.raises(InputError, match=r"0\.\.79"):
            thing_label_from_contiguous(bad)


@pytest.mark.needs_data("coco128")
def test_coco128_detection_categories_match(data_dir) -> None:
    instances = data_dir / "coco128" / "annotations" / "instances_train2017.json"
    data = json.loads(instances.read_text())
    # COCO detection categories are exactly the 80 panoptic things: same ids, same names.
    assert len(data["categories"]) == NUM_THINGS
    for cat in data["categories"]:
        label = label_from_coco_id(cat["id"])
        assert is_thing(label)
        assert LABEL_NAMES[label] == cat["name"]
    used = np.array([ann["category_id"] for ann in data["annotations"]], dtype=np.int64)
    assert used.size > 0
    mapped = coco_ids_to_labels(used)
    assert (mapped < NUM_THINGS).all() and (mapped >= 0).all()
