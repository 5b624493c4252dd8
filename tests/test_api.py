"""The public API end to end: input kinds, output kinds, luminance kept, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor import (
    Colorizer,
    ColorizeResult,
    DecodeError,
    InputError,
    InstacolorError,
    Instances,
    SemanticMap,
    WeightsError,
    colorize,
)
from instacolor.color import l_to_gray, rgb_to_l
from instacolor.errors import UntrainedWeightsWarning
from instacolor.metrics import colorfulness
from instacolor.models.network import InstColorNet
from instacolor.weights import save_safetensors


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    with pytest.warns(UntrainedWeightsWarning):
        return Colorizer("instacolor-untrained-w16", working_size=64)


def _gray(h=40, w=56, dtype=np.uint8, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    ramp = np.linspace(0, 1, w)[None, :] * np.linspace(0.2, 1, h)[:, None]
    img = np.clip(ramp + rng.normal(0, 0.05, (h, w)), 0, 1) * top
    return img.astype(dtype) if dtype == np.float32 else np.rint(img).astype(dtype)


def _gray_level(rgb: np.ndarray, top: float) -> np.ndarray:
    """Gray level (same scale as the input) whose L equals the output pixel's L."""
    t = torch.from_numpy(rgb.astype(np.float64) / top).permute(2, 0, 1)
    return l_to_gray(rgb_to_l(t))[0].numpy() * top


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_numpy_in_numpy_out_keeps_luminance(colorizer, dtype):
    gray = _gray(dtype=dtype)
    before = gray.copy()
    out = colorizer.colorize(gray, instances=[[5, 5, 30, 30], [20, 10, 56, 40]])
    assert out.shape == (*gray.shape, 3) and out.dtype == np.dtype(dtype)
    assert np.array_equal(gray, before)  # input untouched
    top = 1.0 if dtype == np.float32 else float(np.iinfo(dtype).max)
    err = np.abs(_gray_level(out, top) - gray.astype(np.float64))
    # 8-bit: at most one level; 16-bit: one 8-bit level is 257 levels; float: 1/255
    assert err.max() <= {np.uint8: 1.0, np.uint16: 257.0, np.float32: 1 / 255}[dtype]
    assert np.abs(out.astype(np.float64).std(axis=2)).max() > 0  # it did add color


def test_gray_layouts_give_the_same_result(colorizer):
    gray = _gray()
    base = colorizer.colorize(gray)
    assert np.array_equal(colorizer.colorize(gray[:, :, None]), base)
    assert np.array_equal(colorizer.colorize(np.repeat(gray[:, :, None], 3, 2)), base)


def test_pil_and_path_inputs_return_pil(colorizer, tmp_path):
    gray = _gray()
    pil = Image.fromarray(gray)
    out = colorizer.colorize(pil)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == pil.size
    assert np.array_equal(np.asarray(out), colorizer.colorize(gray))
    path = tmp_path / "in.png"
    pil.save(path)
    raw = path.read_bytes()
    from_path = colorizer.colorize(path)
    assert np.array_equal(np.asarray(from_path), np.asarray(out))
    assert path.read_bytes() == raw
    sixteen = Image.fromarray(_gray(dtype=np.uint16))
    assert colorizer.colorize(sixteen).mode == "RGB"


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (37, 91), (300, 17)])
def test_any_size_works(colorizer, shape):
    gray = _gray(*shape)
    out = colorizer.colorize(gray, instances=[[0, 0, shape[1], shape[0]]])
    assert out.shape == (*shape, 3)
    assert np.abs(_gray_level(out, 255.0) - gray).max() <= 1.0


def test_colorize_full_reports_everything(colorizer):
    res = colorizer.colorize_full(_gray(), instances=[[5, 5, 30, 30], [0, 0, 10, 10]])
    assert isinstance(res, ColorizeResult)
    assert res.ab.shape == (2, 64, 64) and res.ab.dtype == np.float32
    assert len(res.weight_maps) == 13 and res.weight_maps["conv10_2"].shape == (3, 64, 64)
    np.testing.assert_allclose(res.weight_maps["conv10_2"].sum(0), 1.0, atol=1e-5)
    assert set(res.timings) == {"detect", "prepare", "network", "reconstruct", "total"}
    assert res.detector is None
    assert res.model == "instacolor-untrained-w16" and res.weights_sha256 is None
    assert len(res.instances) == 2
    plain = colorizer.colorize_full(_gray())
    assert plain.instances is None and plain.weight_maps == {}


def test_no_instances_equals_empty_instances(colorizer):
    gray = _gray()
    assert np.array_equal(colorizer.colorize(gray), colorizer.colorize(gray, instances=[]))
    assert not np.array_equal(
        colorizer.colorize(gray), colorizer.colorize(gray, instances=[[0, 0, 30, 30]])
    )


def test_instances_as_masks_and_objects(colorizer):
    gray = _gray()
    masks = np.zeros((1, 40, 56), bool)
    masks[0, 10:20, 5:25] = True
    a = colorizer.colorize_full(gray, instances=masks)
    b = colorizer.colorize(gray, instances=[[5, 10, 25, 20]])
    assert np.array_equal(a.image, b)
    inst = Instances.from_boxes([[5, 10, 25, 20]], (40, 56), labels=[0])
    assert np.array_equal(colorizer.colorize(gray, instances=inst), b)


def test_untrained_semantic_map_does_not_change_output(colorizer):
    gray = _gray()
    labels = np.random.default_rng(0).integers(0, 134, (40, 56))
    a = colorizer.colorize(gray, instances=[[5, 5, 30, 30]])
    b = colorizer.colorize(gray, instances=[[5, 5, 30, 30]], semantic=labels)
    c = colorizer.colorize(gray, instances=[[5, 5, 30, 30]], semantic=SemanticMap(labels))
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.needs_data("coco128")
def test_coco_annotations_drive_fusion(colorizer, data_dir):
    coco = data_dir / "coco128"
    data = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    image = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    path = next(coco.rglob(image["file_name"]))
    gray = np.asarray(Image.open(path).convert("L"))
    res = colorizer.colorize_full(gray, instances=anns)
    assert len(res.instances) == len(anns) and res.instances.masks is not None
    assert res.weight_maps["conv10_2"].shape[0] == len(anns) + 1


def test_colorize_function_matches_colorizer(colorizer):
    gray = _gray()
    with pytest.warns(UntrainedWeightsWarning):
        out = colorize(gray, instances=[[5, 5, 30, 30]], weights="instacolor-untrained-w16")
    full = Colorizer.__new__(Colorizer)  # same weights at the default working size
    full.__dict__.update(colorizer.__dict__, working_size=256)
    assert np.array_equal(out, full.colorize(gray, instances=[[5, 5, 30, 30]]))


def test_full_image_only_weights_warn_about_ignored_instances(tmp_path):
    net = InstColorNet(8, with_instances=False, mask_value=0.0)
    path = save_safetensors(net, tmp_path / "full.safetensors", name="full-only")
    c = Colorizer(path, working_size=64)
    gray = _gray()
    with pytest.warns(UserWarning, match="no instance network"):
        out = c.colorize(gray, instances=[[0, 0, 10, 10]])
    assert np.array_equal(out, c.colorize(gray))


BAD_IMAGES = {
    "empty": np.zeros((0, 0), np.uint8),
    "empty-rows": np.zeros((0, 5), np.uint8),
    "bool": np.ones((8, 8), bool),
    "complex": np.ones((8, 8), np.complex64),
    "int32": np.ones((8, 8), np.int32),
    "nan": np.full((8, 8), np.nan, np.float32),
    "inf": np.full((8, 8), np.inf, np.float64),
    "float-range": np.full((8, 8), 2.0, np.float32),
    "four-channels": np.zeros((8, 8, 4), np.uint8),
    "4d": np.zeros((1, 8, 8, 1), np.uint8),
    "color": np.stack([np.full((8, 8), 200), np.full((8, 8), 30), np.full((8, 8), 90)], 2).astype(
        np.uint8
    ),
    "list": [[1, 2], [3, 4]],
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_raise_input_error(colorizer, name):
    image = BAD_IMAGES[name]
    with pytest.raises(InputError) as info:
        colorizer.colorize(image)
    assert isinstance(info.value, InstacolorError) and isinstance(info.value, ValueError)
    assert "expected" in str(info.value)


BAD_BOXES = {
    "outside": [[100, 100, 120, 120]],
    "inverted": [[30, 30, 10, 10]],
    "zero-area": [[10, 10, 10, 20]],
    "nan": [[np.nan, 0, 10, 10]],
    "shape": [[1, 2, 3]],
}


@pytest.mark.parametrize("name", sorted(BAD_BOXES))
def test_bad_boxes_raise_input_error(colorizer, name):
    with pytest.raises(InputError, match="box"):
        colorizer.colorize(_gray(), instances=BAD_BOXES[name])


def test_boxes_partly_outside_are_clipped(colorizer):
    gray = _gray()
    res = colorizer.colorize_full(gray, instances=[[-10, -5, 30, 100]])
    assert res.instances.boxes.tolist() == [[0.0, 0.0, 30.0, 40.0]]
    assert np.array_equal(res.image, colorizer.colorize(gray, instances=[[0, 0, 30, 40]]))


def test_bad_masks_semantics_and_options(colorizer, tmp_path):
    gray = _gray()
    with pytest.raises(InputError, match="masks"):
        colorizer.colorize(gray, instances=np.zeros((1, 10, 10), bool))
    with pytest.raises(InputError, match="empty"):
        colorizer.colorize(gray, instances=np.zeros((1, 40, 56), bool))
    with pytest.raises(InputError, match="labels"):
        colorizer.colorize(gray, semantic=np.full((40, 56), 500))
    with pytest.raises(InputError, match="integer"):
        colorizer.colorize(gray, semantic=np.zeros((40, 56), np.float32))
    with pytest.raises(InputError, match="image_size"):
        colorizer.colorize(gray, instances=Instances.from_boxes([[0, 0, 5, 5]], (10, 10)))
    with pytest.raises(InputError, match="working_size"):
        Colorizer(working_size=100)
    with pytest.raises(WeightsError, match="unknown weights"):
        Colorizer("no-such-weights")


def test_working_size_defaults_to_the_weights_training_size():
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    shipped = Colorizer()
    assert shipped.working_size == shipped.loaded.working_size == 128
    assert shipped.colorize_full(gray).ab.shape == (2, 128, 128)
    assert Colorizer("instacolor-untrained-w16").working_size == 256
    assert Colorizer(working_size=64).colorize_full(gray).ab.shape == (2, 64, 64)


def test_saturation_scales_the_predicted_chroma():
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    plain = Colorizer(working_size=64).colorize_full(gray)
    vivid = Colorizer(working_size=64, saturation=1.5).colorize_full(gray)
    np.testing.assert_allclose(vivid.ab, 1.5 * plain.ab, rtol=1e-5, atol=1e-5)
    assert colorfulness(vivid.image) > 1.3 * colorfulness(plain.image) > 0
    flat = Colorizer(working_size=64, saturation=0).colorize(gray)
    assert np.abs(flat.astype(int) - gray[..., None]).max() <= 1  # gray, luminance kept
    assert (vivid.saturation, vivid.working_size) == (1.5, 64)
    for bad in (-0.5, 4.5, "2", float("nan"), True):
        with pytest.raises(InputError, match="saturation: expected a number from 0 to 4"):
            Colorizer(working_size=64, saturation=bad)


def test_saturation_per_call_reloads_nothing():
    from instacolor.api import _cached_colorizer

    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    colorizer = Colorizer(working_size=64)
    runtime = colorizer.runtime
    plain = colorizer.colorize_full(gray)
    vivid = colorizer.colorize_full(gray, saturation=1.5)
    assert colorizer.runtime is runtime and colorizer.saturation == 1.0  # per call only
    np.testing.assert_allclose(vivid.ab, 1.5 * plain.ab, rtol=1e-5, atol=1e-5)
    assert (vivid.saturation, plain.saturation) == (1.5, 1.0)
    # the same numbers as a colorizer built with that saturation
    built = Colorizer(working_size=64, saturation=1.5).colorize_full(gray)
    np.testing.assert_array_equal(built.image, vivid.image)
    # colorize(): one cached colorizer whatever the saturation
    _cached_colorizer.cache_clear()
    colorize(gray, saturation=1.0)
    colorize(gray, saturation=2.0)
    info = _cached_colorizer.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    for bad in (-0.5, 4.5, "2", float("nan"), True):
        with pytest.raises(InputError, match="saturation: expected a number from 0 to 4"):
            colorizer.colorize(gray, saturation=bad)
        with pytest.raises(InputError, match="saturation: expected a number from 0 to 4"):
            colorize(gray, saturation=bad)


def test_unreadable_paths_raise_and_leave_files_alone(colorizer, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        colorizer.colorize(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DecodeError):
        colorizer.colorize(corrupt)
    assert corrupt.read_bytes() == b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    with pytest.raises(InputError, match="numpy array"):
        colorizer.colorize(12345)


@pytest.mark.needs_data("eval/kodak24")
def test_default_weights_colorize_better_than_gray(data_dir):
    from instacolor.metrics import gray_baseline, psnr

    colorizer = Colorizer()  # the shipped, trained default: no UntrainedWeightsWarning
    gains = []
    for path in sorted((data_dir / "eval" / "kodak24").glob("*.png"))[:8]:
        truth = np.asarray(Image.open(path).convert("RGB"))
        gray = gray_baseline(truth)
        pred = colorizer.colorize(gray[:, :, 0])
        gains.append(psnr(pred, truth) - psnr(gray, truth))
    assert np.mean(gains) > 0.5, gains  # measured: see docs/model-card.md


def test_colorize_runs_a_given_colorizer_with_its_load_time_options(colorizer):
    import instacolor
    from instacolor import colorize_full

    gray = _gray()
    direct = colorizer.colorize_full(gray, saturation=1.5)
    given = colorize_full(gray, colorizer=colorizer, saturation=1.5)  # working size 64
    assert isinstance(given, ColorizeResult) and given.working_size == 64
    np.testing.assert_array_equal(given.image, direct.image)
    np.testing.assert_array_equal(colorize(gray, colorizer=colorizer, saturation=1.5), direct.image)
    assert isinstance(colorize(gray, colorizer=colorizer), np.ndarray)
    for clash in ({"weights": "instacolor-untrained-w16"}, {"device": "meta"},
                  {"detector": "torchvision"}, {"backend": "onnxruntime"}):  # fmt: skip
        with pytest.raises(InputError, match=r"either a Colorizer or the options.*received both"):
            colorize(gray, colorizer=colorizer, **clash)
    with pytest.raises(InputError, match="colorizer: expected a Colorizer or None, received str"):
        colorize(gray, colorizer="instacolor-untrained-w16")
    # one import path for the public names of the API
    assert {"Decoding", "colorize_full", "Colorizer"} <= set(instacolor.__all__)
    assert instacolor.Decoding is type(colorizer.decoding)
