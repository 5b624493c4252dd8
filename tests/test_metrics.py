"""Evaluation metrics against scikit-image, published CIEDE2000 data and hand computations."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

import instacolor.metrics
from instacolor.errors import InputError
from instacolor.metrics import (
    boundary_bleeding,
    ciede2000,
    colorfulness,
    delta_e2000,
    evaluate_pair,
    gray_baseline,
    psnr,
    ssim,
)

# Rows of Sharma, Wu & Dalal (2005), Table 1: Lab 1, Lab 2, deltaE 2000 (checked with skimage).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0010), 7.1792),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
    ((50.0, -0.001, 2.49), (50.0, 0.0011, -2.49), 4.7461),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


def _random(seed: int, shape=(37, 53, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth(phase: float, shape=(48, 64)) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    channels = [np.sin(x / 7.0 + phase + k) * np.cos(y / 9.0 - k) for k in range(3)]
    return np.round(127.5 + 120.0 * np.stack(channels, axis=-1)).astype(np.uint8)


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )


def test_docstring_example_runs():
    result = doctest.testmod(instacolor.metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_identical_images():
    image = _random(0)
    assert psnr(image, image) == float("inf")
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert delta_e2000(image, image) == pytest.approx(0.0, abs=1e-9)


def test_psnr_constant_offset_and_float_input():
    image = _random(1) // 2
    assert psnr(image, image + 10) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert psnr(image / 255.0, (image + 10) / 255.0) == pytest.approx(20 * math.log10(25.5))


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        (_random(2), _random(3)),
        (_random(4, (11, 20, 3)), _random(5, (11, 20, 3))),
        (_smooth(0.0), _smooth(0.4)),
        (_smooth(0.0), np.clip(_smooth(0.0).astype(int) + _random(6, (48, 64, 3)) // 16, 0, 255)),
    ],
)
def test_ssim_matches_scikit_image(pred, target):
    target = target.astype(np.uint8)
    assert ssim(pred, target) == pytest.approx(_sk_ssim(pred, target), abs=1e-4)
    assert ssim(pred / 255.0, target / 255.0) == pytest.approx(_sk_ssim(pred, target), abs=1e-4)


def test_colorfulness_gray_is_zero():
    gray = np.repeat(_random(7, (20, 30, 1)), 3, axis=-1)
    assert colorfulness(gray) == pytest.approx(0.0, abs=1e-12)


def test_colorfulness_checkerboard_by_hand():
    board = np.zeros((8, 8, 3), np.uint8)
    red = (np.indices((8, 8)).sum(axis=0) % 2) == 0
    board[red] = (255, 0, 0)
    board[~red] = (0, 0, 255)
    # red: rg = 255, yb = 127.5; blue: rg = 0, yb = -255; half the pixels each.
    mean_rg, mean_yb = 127.5, (127.5 - 255.0) / 2
    std_rg, std_yb = 127.5, (127.5 + 255.0) / 2
    expected = math.sqrt(std_rg**2 + std_yb**2) + 0.3 * math.sqrt(mean_rg**2 + mean_yb**2)
    assert colorfulness(board) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_sharma_rows(lab1, lab2, expected):
    t1 = torch.tensor(lab1, dtype=torch.float64).view(3, 1, 1)
    t2 = torch.tensor(lab2, dtype=torch.float64).view(3, 1, 1)
    assert ciede2000(t1, t2).item() == pytest.approx(expected, abs=1e-4)
    assert ciede2000(t2, t1).item() == pytest.approx(expected, abs=1e-4)  # symmetric


def test_ciede2000_random_lab_matches_scikit_image():
    rng = np.random.default_rng(13)
    low, high = [0.0, -120.0, -120.0], [100.0, 120.0, 120.0]
    lab1, lab2 = rng.uniform(low, high, (2, 5000, 3))
    # hue differences of exactly 180 degrees (the formula is discontinuous there, so only
    # with hues that are exact in floating point: on the a axis)
    lab1[:100, 2], lab2[:100, 2], lab2[:100, 1] = 0.0, 0.0, -np.abs(lab1[:100, 1]) / 2
    lab1[:100, 1] = np.abs(lab1[:100, 1])
    lab2[100:200, 1:] = 0.0  # achromatic second colour
    ours = ciede2000(torch.from_numpy(lab1.T[:, None]), torch.from_numpy(lab2.T[:, None]))
    np.testing.assert_allclose(ours[0].numpy(), deltaE_ciede2000(lab1, lab2), atol=1e-9)


def test_ciede2000_batched_shape_and_dtype():
    lab1 = torch.tensor([row[0] for row in SHARMA], dtype=torch.float32).T.reshape(1, 3, 1, -1)
    lab2 = torch.tensor([row[1] for row in SHARMA], dtype=torch.float32).T.reshape(1, 3, 1, -1)
    out = ciede2000(lab1, lab2)
    assert out.shape == (1, 1, len(SHARMA)) and out.dtype == torch.float32
    np.testing.assert_allclose(out.view(-1).numpy(), [row[2] for row in SHARMA], atol=2e-3)


@pytest.mark.parametrize("seed", [8, 9])
def test_delta_e2000_matches_scikit_image(seed):
    pred, target = _random(seed), _random(seed + 100)
    reference = deltaE_ciede2000(rgb2lab(pred), rgb2lab(target)).mean()
    assert delta_e2000(pred, target) == pytest.approx(reference, abs=1e-4)
    near = np.clip(pred.astype(int) + 3, 0, 255).astype(np.uint8)  # small differences
    reference = deltaE_ciede2000(rgb2lab(pred), rgb2lab(near)).mean()
    assert delta_e2000(pred, near) == pytest.approx(reference, abs=1e-4)


def _square_mask(shape=(40, 50), rows=(10, 30), cols=(15, 35)) -> np.ndarray:
    mask = np.zeros((1, *shape), dtype=bool)
    mask[0, rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_boundary_bleeding_zero_when_equal():
    ab = np.random.default_rng(10).normal(0, 20, (2, 40, 50))
    assert boundary_bleeding(ab, ab.copy(), _square_mask()) == 0.0


@pytest.mark.parametrize("band", [1, 3, 5])
def test_boundary_bleeding_constant_error_inside_band(band):
    target = np.random.default_rng(11).normal(0, 20, (2, 40, 50))
    ring = np.zeros((40, 50), dtype=bool)  # square kernel: the rectangle grown minus shrunk
    ring[10 - band : 30 + band, 15 - band : 35 + band] = True
    ring[10 + band : 30 - band, 15 + band : 35 - band] = False
    pred = target.copy()
    pred[0][ring] += 3.0
    pred[1][ring] -= 4.0  # Euclidean distance 5 in the band
    pred[:, 20, 25] += 50.0  # deep inside the instance: outside the band, ignored
    pred[:, 0, 0] += 50.0  # far outside
    assert boundary_bleeding(pred, target, _square_mask(), band=band) == pytest.approx(5.0)
    wider = boundary_bleeding(pred, target, _square_mask(), band=band + 1)
    assert wider < 5.0  # the wider band holds error-free pixels
    single = target.copy()
    single[0, 10, 20] += 1.0  # one pixel on the inner side of the boundary
    expected = 1.0 / ring.sum()  # so the band is exactly the ring, both sides
    assert boundary_bleeding(single, target, _square_mask(), band=band) == pytest.approx(expected)


def test_boundary_bleeding_union_and_image_border():
    target = np.zeros((2, 40, 50))
    masks = np.concatenate([_square_mask(), _square_mask(rows=(12, 28), cols=(17, 33))])
    masks[1] |= _square_mask(rows=(0, 40), cols=(0, 5))[0]  # touches the image border
    pred = target.copy()
    pred[0] = 1.0
    assert boundary_bleeding(pred, target, masks) == pytest.approx(1.0)
    pred[0, :, 0] = 100.0  # image border column: not an instance boundary
    assert boundary_bleeding(pred, target, masks) == pytest.approx(1.0)
    pred[0, :, 7] = 100.0  # 3rd column right of the strip (columns 0-4): inside the band
    assert boundary_bleeding(pred, target, masks) > 1.0


def test_boundary_bleeding_empty_is_nan():
    ab = np.zeros((2, 20, 20))
    assert math.isnan(boundary_bleeding(ab, ab, np.zeros((0, 20, 20), dtype=bool)))
    assert math.isnan(boundary_bleeding(ab, ab, np.zeros((2, 20, 20), dtype=bool)))
    assert math.isnan(boundary_bleeding(ab, ab, np.ones((1, 20, 20), dtype=bool)))


def test_gray_baseline_keeps_lightness():
    image = _random(12)
    gray = gray_baseline(image)
    assert gray.shape == image.shape and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    lab, lab_gray = rgb2lab(image), rgb2lab(gray)
    assert np.abs(lab[..., 0] - lab_gray[..., 0]).max() < 1.0
    assert np.abs(lab_gray[..., 1:]).max() < 0.01  # skimage: R = G = B has |ab| ~ 0.005
    assert colorfulness(gray) == 0.0
    np.testing.assert_array_equal(gray_baseline(image / 255.0), gray)


def test_evaluate_pair():
    pred, target = _smooth(0.0), _smooth(0.3)
    masks = _square_mask((48, 64), rows=(10, 30), cols=(10, 40))
    out = evaluate_pair(pred, target, masks=masks)
    assert set(out) == {
        "psnr",
        "ssim",
        "colorfulness",
        "colorfulness_gt",
        "delta_e2000",
        "boundary_bleeding",
    }
    assert all(isinstance(v, float) for v in out.values())
    assert out["psnr"] == psnr(pred, target) and out["ssim"] == ssim(pred, target)
    assert out["colorfulness_gt"] == colorfulness(target)
    assert out["delta_e2000"] == pytest.approx(delta_e2000(pred, target), abs=1e-12)
    lab_p, lab_t = rgb2lab(pred).transpose(2, 0, 1), rgb2lab(target).transpose(2, 0, 1)
    bleed = boundary_bleeding(lab_p[1:], lab_t[1:], masks)
    assert out["boundary_bleeding"] == pytest.approx(bleed, abs=1e-6)
    assert "boundary_bleeding" not in evaluate_pair(pred, target)


@pytest.mark.parametrize(
    "call",
    [
        lambda: psnr(_random(0), _random(0, (37, 52, 3))),  # shape mismatch
        lambda: psnr(_random(0).astype(np.int32), _random(0)),  # wrong dtype
        lambda: ssim(_random(0, (20, 20, 4)), _random(0, (20, 20, 4))),  # 4 channels
        lambda: colorfulness(_random(0, (20, 20))),  # no channel axis
        lambda: colorfulness(np.full((4, 4, 3), 2.0)),  # float outside [0, 1]
        lambda: colorfulness(_random(0).tolist()),  # not an array
        lambda: ssim(_random(0, (10, 30, 3)), _random(0, (10, 30, 3))),  # below window
        lambda: delta_e2000(_random(0), _random(0, (53, 37, 3))),
        lambda: ciede2000(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)),
        lambda: ciede2000(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5)),
        lambda: ciede2000(torch.zeros(3, 4, 4, dtype=torch.int64), torch.zeros(3, 4, 4)),
        lambda: boundary_bleeding(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), _square_mask()),
        lambda: boundary_bleeding(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)), np.zeros((1, 8, 8))),
        lambda: boundary_bleeding(np.zeros((2, 40, 50)), np.zeros((2, 40, 50)), _square_mask()[0]),
        lambda: boundary_bleeding(
            np.zeros((2, 40, 50)), np.zeros((2, 40, 50)), _square_mask().astype(float)
        ),
        lambda: boundary_bleeding(
            np.zeros((2, 40, 50), np.int64), np.zeros((2, 40, 50)), _square_mask()
        ),
        lambda: boundary_bleeding(
            np.zeros((2, 40, 50)), np.zeros((2, 40, 50)), _square_mask(), band=0
        ),
        lambda: evaluate_pair(_random(0), _random(1), masks=np.zeros((1, 5, 5), dtype=bool)),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(InputError, match="expected"):
        call()
