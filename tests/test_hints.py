"""Colour hints: values, the siggraph17 encoding, edge-aware propagation, the API."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from instacolor import Colorizer, Hints, InputError, Lab, colorize
from instacolor.color import rgb_to_lab
from instacolor.hints import (
    VARIANCE_CAP,
    VARIANCE_FLOOR,
    VARIANCE_SCALE,
    HintPoint,
    as_lab,
    constraints,
    decay_for_length,
    fit_chroma,
    hints_from_json,
    propagate,
    read_hints_file,
    reference_hint_channels,
)
from instacolor.models.inputs import prepare_inputs
from instacolor.models.network import network_input
from instacolor.structures import Instances


def _lab_of(rgb: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float64 Lab of an ``(H, W, 3)`` uint8/uint16 image."""
    scale = 255.0 if rgb.dtype == np.uint8 else 65535.0
    return rgb_to_lab(torch.from_numpy(rgb / scale).permute(2, 0, 1)).numpy()


# ---------------------------------------------------------------- values and colours


def test_colours_parse_from_srgb_hex_and_lab():
    red = as_lab((255, 0, 0))
    assert red == as_lab("#ff0000") == as_lab("ff0000") == as_lab("#f00")
    assert red.a == pytest.approx(80.09, abs=0.01) and red.b == pytest.approx(67.20, abs=0.01)
    assert as_lab(np.array([128, 128, 128], np.uint8)) == Lab(0.0, 0.0)
    assert as_lab(Lab(10, -20)) == Lab(10.0, -20.0)
    hints = Hints(
        points=[(1, 2, "#f00"), (3, 4, Lab(5, 6), 2), {"x": 0, "y": 0, "color": (0, 0, 255)}],
        instance_colors={1: "#00ff00"},
    )
    assert len(hints) == 4 and hints.points[1] == HintPoint(3.0, 4.0, Lab(5.0, 6.0), 2.0)
    assert hints.sha256() == Hints(points=list(hints.points), instance_colors={1: "#0f0"}).sha256()
    assert hints.sha256() != Hints(points=hints.points[:2]).sha256()


BAD = {
    "point outside": ([(64, 5, "#f00")], "expected x in [0, 64)"),
    "negative y": ([(3, -1, "#f00")], "expected x in [0, 64) and y in [0, 48)"),
    "negative radius": ([(3, 4, "#f00", -1)], "radius: expected a number >= 0"),
    "nan x": ([(float("nan"), 4, "#f00")], "expected a finite number"),
    "bool x": ([(True, 4, "#f00")], "expected a finite number"),
    "bad hex": ([(3, 4, "#ff00zz")], "expected a hex colour"),
    "short hex": ([(3, 4, "#ff00")], "expected a hex colour"),
    "float rgb": ([(3, 4, (0.5, 0.2, 0.1))], "expected a colour"),
    "rgb above 255": ([(3, 4, (300, 0, 0))], "expected a colour"),
    "two numbers": ([(3, 4, (20, 30))], "Lab(a, b)"),
    "lab out of range": ([(3, 4, {"lab": 1})], "expected a colour"),
    "point too short": ([(3, 4)], "expected (x, y, color)"),
    "not a list": ("3,4,#f00", "expected a Hints value or a list"),
    "dict point, unknown key": ([{"x": 1, "y": 2, "colour": "#f00"}], "expected keys x, y, color"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_bad_hint_is_an_input_error_saying_what_was_expected(name, colorizer):
    value, expected = BAD[name]
    with pytest.raises(InputError, match="expected") as err:
        colorizer.colorize(np.full((48, 64), 100, np.uint8), hints=value)
    assert expected in str(err.value)


def test_bad_lab_and_instance_indices(colorizer):
    with pytest.raises(InputError, match=r"Lab.a: expected a finite number in \[-110, 110\]"):
        Lab(120, 0)
    image = np.full((48, 64), 100, np.uint8)
    with pytest.raises(InputError, match="no instances; pass instances="):
        colorizer.colorize(image, hints=Hints(instance_colors={0: "#f00"}))
    with pytest.raises(InputError, match=r"expected instance indices 0..0 of the 1 instances"):
        colorizer.colorize(
            image, instances=[[4, 4, 20, 20]], hints=Hints(instance_colors={1: "#f00"})
        )
    with pytest.raises(InputError, match="instance indices"):
        Hints(instance_colors={-1: "#f00"})
    with pytest.raises(InputError, match="hint_propagation: expected one of"):
        Colorizer("instacolor-untrained-w16", working_size=32, hint_propagation="everywhere")


def test_json_forms_and_files(tmp_path):
    data = {
        "input": "a.png",
        "points": [
            [1, 2, "#ff0000"],
            [3, 4, [0, 0, 255], 2],
            {"x": 5, "y": 6, "color": {"lab": [10, 20]}},
        ],
        "instance_colors": {"0": "#00ff00"},
    }
    hints = hints_from_json(data)
    assert hints.points[2].color == Lab(10.0, 20.0) and hints.points[1].radius == 2.0
    assert hints.instance_colors[0] == as_lab("#0f0")
    path = tmp_path / "a.hints.json"
    path.write_text(json.dumps(data))
    assert read_hints_file(path) == hints
    for bad, message in (
        ("{not json", "expected a readable JSON hints file"),
        ('{"points": {}}', "expected 'points' a list"),
        ('{"points": [[1, 2, "#zz0000"]]}', "expected a hex colour"),
        ('{"instance_colors": {"first": "#f00"}}', "expected index keys"),
        ("[1, 2]", "expected a JSON object"),
    ):
        path.write_text(bad)
        with pytest.raises(InputError, match=message) as err:
            read_hints_file(path)
        assert str(path) in str(err.value)
    with pytest.raises(InputError, match="expected a readable JSON"):
        read_hints_file(tmp_path / "missing.hints.json")


# ---------------------------------------------------------------- siggraph17 encoding


def test_point_hints_encode_as_siggraph17_add_color_patch():
    """A user point: ab/110 on its cells, the mask at mask_value + 1 there (hand-computed)."""
    light = np.full((16, 16), 50.0, np.float32)
    hints = Hints(points=[(5, 6, Lab(22.0, -33.0)), (15.9, 0, Lab(11.0, 55.0), 2.0)])
    for mask_value in (-0.5, 0.0):  # InstColorization's mask_cent 0.5; converted siggraph17 0
        channels = prepare_inputs(light, None, None, 8, hints=hints, mask_value=mask_value).hints
        expected = np.zeros((1, 3, 8, 8), np.float32)
        expected[0, 2] = mask_value
        expected[0, :, 3, 2] = [0.2, -0.3, mask_value + 1]  # (y, x) = (6, 5) // 2
        # x 13.9..17.9 -> cells 6..7; y -2..2 -> cells 0..1
        expected[0, 0, 0:2, 6:8], expected[0, 1, 0:2, 6:8] = 0.1, 0.5
        expected[0, 2, 0:2, 6:8] = mask_value + 1
        np.testing.assert_allclose(channels, expected, atol=1e-7)
    x = network_input(torch.zeros(1, 1, 8, 8), -0.5, torch.from_numpy(channels))
    assert torch.equal(x[:, 1:], torch.from_numpy(channels))
    auto = network_input(torch.zeros(1, 1, 8, 8), -0.5)
    assert torch.equal(auto[:, 1:3], torch.zeros(1, 2, 8, 8)) and bool((auto[:, 3] == -0.5).all())


def test_ground_truth_hints_are_the_reference_patch_means():
    """util.add_color_patches_rand_gt with use_avg: the P x P patch's mean ab from (h, w)."""
    ab = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5) / 100.0  # normalised ab
    out = reference_hint_channels(ab, [(1, 2, 2), (0, 0, 1)], mask_cent=0.5)
    expected = np.zeros((3, 4, 5), np.float32)
    expected[2] = -0.5
    # patch rows 1-2, columns 2-3: a = (7 + 8 + 12 + 13) / 4 / 100, b = that + 0.20
    expected[0, 1:3, 2:4], expected[1, 1:3, 2:4], expected[2, 1:3, 2:4] = 0.10, 0.30, 0.5
    expected[0, 0, 0], expected[1, 0, 0], expected[2, 0, 0] = 0.0, 0.20, 0.5
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_crop_hints_are_the_hints_in_crop_coordinates():
    light = np.full((16, 16), 50.0, np.float32)
    inst = Instances.from_boxes([[8, 0, 16, 16], [0, 0, 4, 4]], image_size=(16, 16))
    hints = Hints(points=[(12, 4, Lab(11.0, 22.0))])
    inputs = prepare_inputs(light, inst, None, 8, hints=hints, mask_value=-0.5)
    assert inputs.crop_hints.shape == (2, 3, 8, 8)
    # crop 0 spans x 8..16 (8 px -> 8 cells), y 0..16 (16 px -> 8 cells): cell (2, 4)
    assert np.argwhere(inputs.crop_hints[0, 2] > 0).tolist() == [[2, 4]]
    np.testing.assert_allclose(inputs.crop_hints[0, :2, 2, 4], [0.1, 0.2], atol=1e-7)
    assert (inputs.crop_hints[1, 2] == -0.5).all()  # the point is outside the second box
    assert np.argwhere(inputs.hints[0, 2] > 0).tolist() == [[2, 6]]


# ---------------------------------------------------------------- propagation


def _dense_solution(light, known, values, decay):
    """Levin's system built pixel by pixel from the documented formula, solved densely."""
    h, w = light.shape
    y = light.astype(np.float64) / 100.0
    var = np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            window = y[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]
            var[r, c] = window.var()
    n = h * w
    a = np.zeros((n, n))
    for r in range(h):
        for c in range(w):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < h and 0 <= cc < w:
                        sigma = VARIANCE_SCALE * (var[r, c] + var[rr, cc]) / 2
                        sigma = min(max(sigma, VARIANCE_FLOOR), VARIANCE_CAP)
                        weight = np.exp(-((y[r, c] - y[rr, cc]) ** 2) / sigma)
                        a[r * w + c, rr * w + cc] -= weight
                        a[r * w + c, r * w + c] += (1 + decay) * weight
    k = known.ravel()
    out = np.zeros(values.shape)
    for ch in range(values.shape[0]):
        v = values[ch].ravel().astype(np.float64)
        x = np.linalg.solve(a[~k][:, ~k], -a[~k][:, k] @ v[k])
        full = v.copy()
        full[~k] = x
        out[ch] = full.reshape(h, w)
    return out


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_propagation_equals_a_dense_direct_solve(decay):
    rng = np.random.default_rng(1)
    light = rng.uniform(0, 30, (6, 7)).astype(np.float32)
    light[:, 4:] += 50.0  # a strong edge between columns 3 and 4
    known = np.zeros((6, 7), bool)
    known[[0, 3, 5], [1, 6, 2]] = True
    values = rng.normal(0, 20, (2, 6, 7)).astype(np.float32)
    expected = _dense_solution(light, known, values, decay)
    for method in ("direct", "cg"):
        got = propagate(light, known, values, decay=decay, method=method, tol=1e-10)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got[:, known] == values[:, known]).all()  # exactly, not within tolerance


def test_a_hint_spreads_within_its_region_and_stops_at_a_strong_edge():
    rng = np.random.default_rng(0)
    light = np.where(np.arange(64)[None, :] < 32, 30.0, 80.0) + rng.normal(0, 0.5, (48, 64))
    known = np.zeros((48, 64), bool)
    known[24, 8] = True
    values = np.zeros((1, 48, 64), np.float32)
    values[0, 24, 8] = 40.0
    out = propagate(light.astype(np.float32), known, values, decay=decay_for_length(64))[0]
    left, right = out[:, :32], out[:, 32:]
    assert left.min() > 0.6 * 40.0  # the whole region, far corners included
    assert np.abs(right).max() < 0.02 * 40.0  # beyond the edge: nearly nothing
    assert out[24, 31] > 25 * max(np.abs(out[24, 32]), 1e-6)
    # Levin's system without decay: the same edge still separates two hints' regions
    known[24, 50] = True
    values[0, 24, 50] = -40.0
    both = propagate(light.astype(np.float32), known, values)[0]
    assert both[:, :32].min() > 38.0 and both[:, 32:].max() < -38.0


def test_a_hinted_pixel_gets_its_colour_exactly(shipped):
    light = np.tile(np.linspace(30, 80, 96, dtype=np.float32), (72, 1))
    color = Lab(35.0, -20.0)
    hints = [(41.0, 17.0, color), (70.5, 60.2, "#7fa0d0")]
    full = Colorizer("default", working_size=64, hint_propagation="full")
    result = full.colorize_light(light, hints=hints)
    lab = _lab_of(result.image)
    np.testing.assert_allclose(lab[1:, 17, 41], [35.0, -20.0], atol=0.05)
    target = as_lab("#7fa0d0")
    np.testing.assert_allclose(lab[1:, 60, 70], [target.a, target.b], atol=0.05)
    # working resolution: the hinted cells of result.ab carry the colour exactly
    working = shipped.colorize_light(light, hints=hints)
    known, ab = constraints(Hints(points=hints), None, light.shape, (64, 64))
    assert (working.ab[:, known] == ab[:, known]).all()
    assert working.hints == Hints(points=hints)
    # no image asked (video joins chroma and L itself): the same chroma, no image
    bare = shipped.colorize_light(light, hints=hints, out_dtype=None)
    assert bare.image is None and np.array_equal(bare.ab, working.ab)
    with pytest.raises(InputError, match=r"out_dtype: expected numpy.uint8, numpy.uint16 or None"):
        shipped.colorize_light(light, out_dtype=np.float32)


def test_instance_colours_land_inside_the_instance(shipped):
    h, w = 80, 96
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (yy - 40) ** 2 + (xx - 30) ** 2 < 18**2
    light = (np.where(disk, 60.0, 35.0) + 0.1 * xx).astype(np.float32)
    inst = Instances.from_masks(disk[None])
    plain = shipped.colorize_light(light, instances=inst, out_dtype=np.uint8)
    hinted = shipped.colorize_light(
        light, instances=inst, hints=Hints(instance_colors={0: Lab(30.0, 25.0)}), out_dtype=np.uint8
    )
    inside = (yy - 40) ** 2 + (xx - 30) ** 2 < 14**2
    lab = _lab_of(hinted.image)
    assert np.abs(lab[1][inside].mean() - 30.0) < 2 and np.abs(lab[2][inside].mean() - 25.0) < 2
    far = xx > 70  # the other side of the disk's strong edge
    change = np.abs(lab[1:, far] - _lab_of(plain.image)[1:, far]).mean()
    assert change < 5.0


def test_box_instances_without_masks_take_the_colour_in_their_middle(shipped):
    light = np.full((64, 64), 55.0, np.float32)
    result = shipped.colorize_light(
        light, instances=[[8, 8, 40, 40]], hints=Hints(instance_colors={0: Lab(-30.0, 30.0)})
    )
    np.testing.assert_allclose(_lab_of(result.image)[1:, 24, 24], [-30.0, 30.0], atol=0.5)


# ---------------------------------------------------------------- no hints: unchanged

#: sha256 of the uint8 output bytes of _fixed_gray() at 27580fd (before hints existed):
#: shipped weights, working size 64, full image alone / one box.
PINNED = {
    None: "5abe5713aa758ae8519c094a3a0bd35280e7efa38535f180d4b2c13630e03d09",
    "box": "9f7eab8d96d941b3609aef0a1456dad354deffe94d054520b7dedf15779cf09c",
}


def _fixed_gray() -> np.ndarray:
    rng = np.random.default_rng(17)
    h, w = 72, 96
    y, x = np.mgrid[0:h, 0:w]
    gray = ((x * 2 + y * 3) % 256).astype(np.float64)
    gray[20:50, 30:70] = 200
    return np.clip(gray + rng.normal(0, 4, (h, w)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("which", [None, "box"])
def test_without_hints_the_output_is_bit_identical_to_before(shipped, which):
    instances = [[30, 20, 70, 50]] if which else None
    for hints in (None, [], Hints()):
        out = shipped.colorize(_fixed_gray(), instances=instances, hints=hints)
        assert hashlib.sha256(out.tobytes()).hexdigest() == PINNED[which]


def test_colorize_function_and_hint_channels_option():
    gray = _fixed_gray()
    hints = [(10, 10, "#c03020", 2)]
    a = colorize(gray, hints=hints)
    assert not np.array_equal(a, colorize(gray))
    channels = Colorizer("default", working_size=64, hint_channels=True, hint_propagation="none")
    assert channels.hinting.channels and not Colorizer("default").hinting.channels
    out = channels.colorize_full(gray, hints=hints)
    assert not np.array_equal(out.ab, channels.colorize_full(gray).ab)


@pytest.fixture(scope="module")
def shipped():
    return Colorizer("default", working_size=64)


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer("instacolor-untrained-w16", working_size=32)


def test_the_chroma_fit_recovers_a_gain_and_offset_and_barely_moves_on_one_point():
    rng = np.random.default_rng(2)
    ab = rng.normal(0, 10, (2, 16, 16)).astype(np.float32)
    target = 1.8 * ab + np.float32([[[3.0]], [[-4.0]]])
    known = np.zeros((16, 16), bool)
    known[rng.integers(0, 16, 30), rng.integers(0, 16, 30)] = True
    fitted = fit_chroma(ab, known, target)
    np.testing.assert_allclose(fitted, target, atol=0.3)  # the 1 % prior shrinks a little
    one = np.zeros((16, 16), bool)
    one[3, 3] = True
    moved = fit_chroma(ab, one, target)
    assert np.abs(moved - ab).mean() < np.abs(target - ab).mean()
    assert fit_chroma(ab, np.zeros((16, 16), bool), target) is ab


def test_the_chroma_fit_with_light_recovers_per_channel_gains_offsets_and_slopes():
    rng = np.random.default_rng(3)
    ab = rng.normal(0, 10, (2, 16, 16)).astype(np.float32)
    light = rng.uniform(0, 100, (16, 16)).astype(np.float32)
    centred = light / 100 - 0.5
    target = np.stack([1.5 * ab[0] + 2.0 + 20.0 * centred, 0.8 * ab[1] - 3.0 - 30.0 * centred])
    known = np.zeros((16, 16), bool)
    known[rng.integers(0, 16, 60), rng.integers(0, 16, 60)] = True
    fitted = fit_chroma(ab, known, target, 0.001, light=light)
    np.testing.assert_allclose(fitted, target, atol=0.5)
    without = fit_chroma(ab, known, target, 0.001)  # one gain, no slope: cannot follow L
    assert np.abs(without - target).mean() > 5 * np.abs(fitted - target).mean()
    strong = fit_chroma(ab, known, target, 1e6, light=light)  # the prior wins: identity
    np.testing.assert_allclose(strong, ab, atol=0.05)
