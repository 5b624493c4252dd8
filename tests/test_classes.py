"""The classification head's grid, soft encoding, annealed mean, confidence and decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from instacolor import Colorizer, colorize_full
from instacolor.decode import CONFIDENCE_KIND, CONFIDENCE_RADIUS, confidence_at, decode
from instacolor.errors import InputError, WeightsError
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
from instacolor.models.network import InstColorNet
from instacolor.structures import Decoding, NetOutput
from instacolor.train.budget import export_weights
from instacolor.weights import load_weights, save_safetensors


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
    result = colorizer.colorize_full(gray)
    assert (result.decoding, result.confidence) == (Decoding(), None)


def _random_output(s: int = 16, seed: int = 0) -> NetOutput:
    rng = np.random.default_rng(seed)
    ab = rng.uniform(-0.9, 0.9, (1, 2, s, s)).astype(np.float32)
    logits = rng.normal(0, 3, (1, AB_CLASSES, s // 4, s // 4)).astype(np.float32)
    return NetOutput(ab=ab, class_logits=logits)


def test_mix_is_validated_with_expected_received_and_advice():
    assert Decoding("annealed-mean", 0.38).mix == 1.0 and Decoding(mix=0).mix == 0
    for bad in (True, False, -0.01, 1.01, math.nan, "0.5", None):
        with pytest.raises(
            InputError, match=r"mix: expected a number from 0 to 1, received .*use 1"
        ):
            Decoding("annealed-mean", 0.38, bad)


def test_mix_blends_the_annealed_mean_with_the_regression():
    out = _random_output()
    logits = torch.from_numpy(out.class_logits)
    regression, regression_conf = decode(out, Decoding("regression"))
    # mix 1 (the default): bit-identical to the annealed mean as decoded before mix existed
    low = annealed_mean(logits, 0.38)
    before = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)[0]
    ab1, conf1 = decode(out, Decoding("annealed-mean", 0.38))
    assert torch.equal(ab1, before)
    assert torch.equal(decode(out, Decoding("annealed-mean", 0.38, 1.0))[0], before)
    assert torch.equal(conf1, confidence(logits, low, CONFIDENCE_KIND, CONFIDENCE_RADIUS)[0])
    # mix 0: exactly the regression, and its confidence
    ab0, conf0 = decode(out, Decoding("annealed-mean", 0.38, 0.0))
    assert torch.equal(ab0, regression) and torch.equal(conf0, regression_conf)
    # mix 0.5: the average, its confidence about the average at the head's resolution
    ab5, conf5 = decode(out, Decoding("annealed-mean", 0.38, 0.5))
    torch.testing.assert_close(ab5, (ab1 + regression) / 2, rtol=0, atol=1e-5)
    area = F.interpolate(regression[None], size=(4, 4), mode="area")
    want = confidence(logits, (low + area) / 2, CONFIDENCE_KIND, CONFIDENCE_RADIUS)[0]
    torch.testing.assert_close(conf5, want)
    assert not torch.equal(ab5, ab1) and not torch.equal(ab5, regression)
    # regression ignores mix
    assert torch.equal(decode(out, Decoding("regression", mix=0.3))[0], regression)


def _head_weights(path, mix=1.0):
    """Random width-4 networks whose file declares a trained class head (plumbing only)."""
    torch.manual_seed(0)
    return export_weights(InstColorNet(4).eval(), path, stages=3, working_size=32,
                          class_head=True, decoding=Decoding("annealed-mean", 0.38, mix),
                          trained_from="test")  # fmt: skip


def test_per_call_mix_changes_the_output_and_is_recorded(tmp_path):
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    colorizer = Colorizer(_head_weights(tmp_path / "head.safetensors"))
    assert colorizer.loaded.decoding == Decoding("annealed-mean", 0.38, 1.0)
    assert colorizer.decoding == Decoding("annealed-mean", 0.38)
    plain = colorizer.colorize_full(gray)
    same = colorizer.colorize_full(gray, decode="annealed-mean:0.38:1")
    half = colorizer.colorize_full(gray, decode=Decoding("annealed-mean", 0.38, 0.5))
    assert (plain.decoding.spec, half.decoding.spec) == (
        "annealed-mean:0.38:1", "annealed-mean:0.38:0.5",
    )  # fmt: skip
    assert plain.decoding.record() == {"decode": "annealed-mean", "temperature": 0.38, "mix": 1.0}
    assert np.array_equal(same.image, plain.image) and np.array_equal(same.ab, plain.ab)
    assert not np.array_equal(half.ab, plain.ab)
    assert colorizer.colorize_full(gray, decode="regression").decoding.record()["mix"] is None
    regression = colorizer.colorize_full(gray, decode="regression")
    np.testing.assert_array_equal(
        colorizer.colorize_full(gray, decode="annealed-mean:0.38:0").ab, regression.ab
    )
    blended = Colorizer(colorizer.loaded.name, decode="annealed-mean:0.38:0.5")
    assert np.array_equal(blended.colorize_full(gray).ab, half.ab)
    # a spec's missing parts come from the colorizer's decoding, then the weights'
    assert blended.colorize_full(gray, decode="annealed-mean:1").decoding.mix == 0.5
    assert blended.colorize_full(gray, decode="annealed-mean:0.38:1").decoding.mix == 1.0
    full = colorize_full(gray, weights=colorizer.loaded.name, decode="annealed-mean:0.38:0.5")
    assert full.decoding.mix == 0.5 and np.array_equal(full.ab, half.ab)
    with pytest.raises(InputError, match=r"mix: expected a number from 0 to 1, received 2\.0"):
        colorizer.colorize(gray, decode="annealed-mean:0.38:2")
    with pytest.raises(InputError, match="mix: expected"):
        Colorizer(colorizer.loaded.name, decode="annealed-mean:0.38:-1")
    for bad in ("annealed", "regression:0.5", "annealed-mean:hot", "annealed-mean:1:1:1", 3):
        with pytest.raises(InputError, match=r"decode: expected .*annealed-mean:T:MIX"):
            colorizer.colorize(gray, decode=bad)


def test_weights_metadata_mix_is_the_default(tmp_path):
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    path = _head_weights(tmp_path / "mixed.safetensors", mix=0.25)
    assert load_weights(path).decoding.mix == 0.25
    colorizer = Colorizer(path)
    assert colorizer.decoding == Decoding("annealed-mean", 0.38, 0.25)
    assert colorizer.colorize_full(gray).decoding.mix == 0.25
    assert colorizer.colorize_full(gray, decode="annealed-mean:1").decoding.mix == 0.25
    assert Colorizer(path, decode="annealed-mean:0.38:1").colorize_full(gray).decoding.mix == 1
    with pytest.raises(InputError, match="mix: expected"):
        _head_weights(tmp_path / "bad.safetensors", mix=1.5)
    net = InstColorNet(4)
    extra = {"class_head": "trained", "decode": "annealed-mean", "mix": "half"}
    bad = save_safetensors(net, tmp_path / "bad.safetensors", name="bad", extra=extra)
    with pytest.raises(
        WeightsError, match=r"metadata mix: expected a number from 0 to 1, received 'half'"
    ):
        load_weights(bad)
