"""The classification head's grid, soft encoding, annealed mean, confidence and decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instacolor import Colorizer
from instacolor.decode import Decoding, confidence_at, decode
from instacolor.errors import InputError
from instacolor.models.classes import (
    AB_CLASSES,
    AB_GRID,
    annealed_mean,
    bin_centers,
    bin_index,
    class_prior,
    confidence,
    rebalance_weights,
    soft_encode,
    soft_encoded_cross_entropy,
)
from instacolor.structures import NetOutput


def _ab(a: float, b: float) -> torch.Tensor:
    return torch.tensor([float(a), float(b)]).view(1, 2, 1, 1)


def _one_hot(index: int, size: int = 1) -> torch.Tensor:
    logits = torch.full((1, AB_CLASSES, size, size), -1e4)
    logits[0, index] = 0.0
    return logits


def test_grid_is_the_references_23_by_23_bins():
    assert (AB_GRID, AB_CLASSES) == (23, 529)
    centers = bin_centers()
    assert centers[0].tolist() == [-110, -110] and centers[-1].tolist() == [110, 110]
    assert centers[1].tolist() == [-110, -100] and centers[23].tolist() == [-100, -110]
    # index = round((a + 110) / 10) * 23 + round((b + 110) / 10), by hand:
    # (33, -12): round(14.3) = 14, round(9.8) = 10 -> 14 * 23 + 10 = 332
    assert bin_index(_ab(33, -12)).item() == 332
    assert bin_index(_ab(-200, 500)).item() == 22  # clamped to the grid
    assert centers[332].tolist() == [30, -10]


def test_soft_encoding_matches_hand_computed_gaussian_weights():
    target = soft_encode(_ab(33, -12))[0, :, 0, 0]
    assert target.sum().item() == pytest.approx(1.0) and int((target > 0).sum()) == 5
    # squared distances to the 5 nearest centres (30,-10), (40,-10), (30,-20), (40,-20),
    # (30,0): 13, 53, 73, 113, 153 (next: (20,-10) at 173); weights exp(-d / 50), normalised
    d = torch.tensor([13.0, 53.0, 73.0, 113.0, 153.0])
    want = torch.exp(-d / 50) / torch.exp(-d / 50).sum()
    got = target[[332, 355, 331, 354, 333]]
    torch.testing.assert_close(got, want)


def test_annealed_mean_of_one_hot_is_the_bin_centre_and_temperature_limits():
    assert annealed_mean(_one_hot(332), 0.38).flatten().tolist() == [30.0, -10.0]
    logits = torch.randn(1, AB_CLASSES, 2, 2, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(logits, 1)
    mean = torch.einsum("bqhw,qc->bchw", p, bin_centers())
    torch.testing.assert_close(annealed_mean(logits, 1.0), mean)  # T = 1: the mean
    mode = bin_centers()[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(annealed_mean(logits, 1e-3), mode)  # T -> 0: the mode
    with pytest.raises(InputError, match="temperature: expected a number > 0"):
        annealed_mean(logits, 0.0)


def test_prior_and_rebalancing_weights():
    ab = torch.cat([_ab(0, 0)] * 3 + [_ab(60, 60)], dim=3)  # 3 gray pixels, 1 coloured
    prior = class_prior(ab)
    assert prior.sum().item() == pytest.approx(1.0)
    assert prior[bin_index(_ab(0, 0))].item() > prior[bin_index(_ab(60, 60))].item() > 0
    w = rebalance_weights(prior, 0.5)
    assert (prior * w).sum().item() == pytest.approx(1.0, abs=1e-5)
    assert w[bin_index(_ab(60, 60))].item() > w[bin_index(_ab(0, 0))].item()
    assert (w[prior == 0] == 0).all()


def test_cross_entropy_is_lowest_at_the_soft_target():
    ab = _ab(33, -12)
    target = soft_encode(ab)
    best = soft_encoded_cross_entropy(torch.log(target.clamp_min(1e-30)), ab)
    other = soft_encoded_cross_entropy(_one_hot(0), ab)
    entropy = -(target * torch.log(target.clamp_min(1e-30))).sum()
    assert best.item() == pytest.approx(entropy.item(), rel=1e-5) and other > best


def test_confidence_is_in_unit_range_and_high_where_peaked():
    peaked = _one_hot(332)
    flat = torch.zeros(1, AB_CLASSES, 1, 1)
    for kind in ("mass", "entropy"):
        high = confidence(peaked, _ab(30, -10), kind).item()
        low = confidence(flat, _ab(30, -10), kind).item()
        assert 0.0 <= low < 0.1 and high == pytest.approx(1.0, abs=1e-4)
    # mass: 9 of 529 bins lie within 15 Lab units of a bin centre
    assert confidence(flat, _ab(30, -10), "mass").item() == pytest.approx(9 / 529)
    assert confidence(peaked, _ab(-50, 50), "mass").item() < 1e-3  # peaked elsewhere
    assert confidence(flat, _ab(0, 0), "entropy").item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(InputError, match="confidence kind"):
        confidence(flat, _ab(0, 0), "variance")


def test_decode_regression_and_annealed_mean():
    s = 16
    logits = _one_hot(332, size=s // 4).repeat(1, 1, 1, 1)
    out = NetOutput(ab=np.full((1, 2, s, s), 0.5, np.float32), class_logits=logits.numpy())
    ab, conf = decode(out, Decoding("regression"))
    assert ab.shape == (2, s, s) and float(ab.max()) == pytest.approx(55.0)
    assert conf.shape == (s // 4, s // 4) and float(conf.max()) < 1e-3  # 55, 55 is far away
    ab, conf = decode(out, Decoding("annealed-mean", 0.38))
    assert ab[:, 0, 0].tolist() == [30.0, -10.0] and float(conf.min()) > 0.99
    full = confidence_at(conf, (37, 53))
    assert full.shape == (37, 53) and full.dtype == np.float32
    assert full.min() >= 0.0 and full.max() <= 1.0
    no_head = NetOutput(ab=out.ab)
    assert decode(no_head, Decoding())[1] is None
    with pytest.raises(InputError, match=r"annealed-mean.*trained classification head"):
        decode(no_head, Decoding("annealed-mean"))
    for bad in ({"mode": "mode"}, {"temperature": 0}, {"temperature": math.inf}):
        with pytest.raises(InputError):
            Decoding(**bad)


def test_weights_without_a_trained_head_refuse_annealed_mean():
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    with pytest.raises(InputError, match=r"annealed-mean.*head is untrained"):
        Colorizer(working_size=64, decode="annealed-mean")
    colorizer = Colorizer(working_size=64)
    assert colorizer.decoding == Decoding("regression", 0.38)
    with pytest.raises(InputError, match=r"annealed-mean.*head is untrained"):
        colorizer.colorize(gray, decode="annealed-mean")
    result = colorizer.colorize(gray, full_result=True)
    assert (result.decode, result.temperature, result.confidence) == ("regression", None, None)
