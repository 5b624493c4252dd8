"""COCO annotations -> Instances (instacolor.io.coco): masks from polygons and RLE, and
every malformed annotation raising an InputError that says what was expected."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from instacolor.errors import InputError
from instacolor.io.coco import CocoAnnotations, decode_segmentation, instances_from_coco

SQUARE = [[2.0, 1.0, 6.0, 1.0, 6.0, 5.0, 2.0, 5.0]]  # polygon of a 4x4 square, XY pairs


def test_polygons_and_rle_give_the_same_mask():
    polygon = decode_segmentation(SQUARE, (8, 10))
    assert polygon.shape == (8, 10) and polygon.dtype == bool
    assert polygon[2:5, 3:6].all() and not polygon[6:].any() and not polygon[:, 8:].any()
    compressed = mask_utils.encode(np.asfortranarray(polygon.astype(np.uint8)))
    as_text = {"size": compressed["size"], "counts": compressed["counts"].decode("ascii")}
    np.testing.assert_array_equal(decode_segmentation(as_text, (8, 10)), polygon)


@pytest.mark.parametrize("bad", [42, "polygon", None])
def test_segmentation_of_another_type_is_an_input_error(bad):
    with pytest.raises(
        InputError, match=f"expected COCO polygons .* received {type(bad).__name__}"
    ):
        decode_segmentation(bad, (8, 10))


def test_undecodable_rle_is_an_input_error():
    with pytest.raises(InputError, match="could not decode it"):
        decode_segmentation({"size": [8, 10]}, (8, 10))  # no counts


@pytest.mark.parametrize(
    "annotation",
    [
        {"bbox": [1, 2, 3], "category_id": 1},
        {"bbox": None, "category_id": 1},
        {"bbox": [1, 2, 3, "wide"], "category_id": 1},
        {"bbox": [1, 2, 3, 4], "category_id": "person"},
        {"bbox": [1, 2, 3, 4], "category_id": 1, "score": [0.9]},
    ],
)
def test_malformed_annotation_is_an_input_error(annotation):
    with pytest.raises(InputError, match=r"COCO annotation 0: expected 'bbox' as four numbers"):
        instances_from_coco([annotation], (8, 10))


def test_coco_file_with_malformed_images_is_an_input_error(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [{"file_name": "a.jpg"}], "annotations": []}))
    with pytest.raises(InputError, match=r"instances\.json: expected every image to have"):
        CocoAnnotations(path)
    good = {"images": [{"id": 3, "file_name": "a.jpg", "height": 8, "width": 10}]}
    good["annotations"] = [{"image_id": "x", "bbox": [0, 0, 2, 2], "category_id": 1}]
    with pytest.raises(InputError, match="every annotation an integer 'image_id'"):
        CocoAnnotations(good)
