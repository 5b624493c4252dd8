"""Mosaic scenes for the fusion stage, and the encoder-feature cache of stage 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.errors import InputError
from instacolor.labels import UNKNOWN
from instacolor.models.encoder import EfficientNetLite0
from instacolor.train.cache import EncodedImages, build_cache
from instacolor.train.data import list_collate
from instacolor.train.mosaic import MosaicScenes


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        img = np.empty((40, 52, 3), np.uint8)
        img[:] = rng.integers(30, 220, 3)
        img[5:25, 10:40] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(folder / f"p{i}.png")
    return sorted(folder.glob("*.png"))


def test_mosaics_are_seeded_and_box_their_tiles(photos):
    scenes = MosaicScenes(photos, 64, length=5, tile=48, grids=(2, 3), seed=3)
    a, b = scenes[2], scenes[2]
    assert torch.equal(a["l"], b["l"]) and torch.equal(a["boxes"], b["boxes"])
    for i in range(len(scenes)):
        s = scenes[i]
        h, w = s["size"].tolist()
        assert h == w and h in (96, 144)
        boxes = s["boxes"].numpy()
        assert len(boxes) == len(s["crops"]) >= 1
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert s["crops"].shape[1:] == (1, 64, 64) and "labels" not in s
    scenes.set_epoch(1)
    assert not torch.equal(scenes[2]["l"], a["l"])  # another epoch, other mosaics


def test_semantic_mosaics_batch_with_mapped_scenes(photos):
    s = MosaicScenes(photos, 32, length=2, tile=32, semantic=True)[0]
    assert s["labels"].shape == (32, 32) and bool((s["labels"] == UNKNOWN).all())
    assert bool(s["drop_labels"])
    batch = list_collate([s, MosaicScenes(photos, 32, length=2, tile=32, semantic=True)[1]])
    assert len(batch["labels"]) == 2 and batch["l"].shape == (2, 1, 32, 32)


def test_mosaics_need_four_photos(photos):
    with pytest.raises(InputError, match="at least 4 photos"):
        MosaicScenes(photos[:3], 32, length=1)


def test_cache_resumes_where_it_stopped_and_refuses_another_set(photos, tmp_path):
    encoder = EfficientNetLite0().eval()
    whole = build_cache(photos, tmp_path / "a", size=32, encoder=encoder, progress=False)
    part = tmp_path / "b"
    build_cache(photos, part, size=32, encoder=encoder, progress=False)
    meta = json.loads((part / "cache.json").read_text())
    (part / "cache.json").write_text(json.dumps({**meta, "done": 0}))  # as if killed early
    with pytest.raises(InputError, match="expected a complete cache"):
        EncodedImages(part)
    np.save(part / "l.npy", np.zeros((6, 1, 32, 32), np.float16))  # the unfinished state
    build_cache(photos, part, size=32, encoder=encoder, progress=False)
    assert np.array_equal(np.load(part / "l.npy"), np.load(whole / "l.npy"))
    with pytest.raises(InputError, match="expected a cache of these 5 photos"):
        build_cache(photos[:5], part, size=32, encoder=encoder, progress=False)
    with pytest.raises(InputError, match="multiple of 32"):
        build_cache(photos, tmp_path / "c", size=40, encoder=encoder, progress=False)


def test_cached_samples_flip_image_and_features_together(photos, tmp_path):
    encoder = EfficientNetLite0().eval()
    folder = build_cache(photos, tmp_path / "c", size=32, encoder=encoder, progress=False)
    plain = EncodedImages(folder, augment=False)
    flipped = EncodedImages(folder, augment=True, seed=0)
    found = False
    for i in range(len(plain)):
        a, b = plain[i], flipped[i]
        if not torch.equal(a["l"], b["l"]):
            found = True
            assert torch.equal(a["l"].flip(-1), b["l"]) and torch.equal(a["ab"].flip(-1), b["ab"])
            assert all(torch.equal(x.flip(-1), y) for x, y in zip(a["encoded"], b["encoded"]))
    assert found
    light = plain[0]["l"][None]
    with torch.no_grad():
        live = encoder.features(light)
    cached = plain[0]["encoded"]
    assert all(torch.allclose(c[None], f, atol=2e-2, rtol=1e-2) for c, f in zip(cached, live))
