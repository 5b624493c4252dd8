"""The encoder as reference matching runs it: folded, without the head."""

from __future__ import annotations

import torch

from instacolor.hints.reference import _encoder
from instacolor.models.encoder import EfficientNetLite0, load_encoder


def test_features_without_the_head_are_the_first_four():
    net = EfficientNetLite0().eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        full, taps = net.features(x), net.features(x, head=False)
    assert len(full) == 5 and len(taps) == 4
    for a, b in zip(full[:4], taps):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_matching_encoder_is_the_pretrained_one_folded():
    x = torch.randn(1, 1, 96, 96)
    with torch.inference_mode():
        want = load_encoder().features(x)[:4]
        got = _encoder().features(x, head=False)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in _encoder().modules())


def test_the_bfloat16_study_encoder_is_the_same_network_in_bfloat16():
    x = torch.rand(1, 1, 96, 96) - 0.5
    with torch.inference_mode():
        want = _encoder().features(x, head=False)
        got = _encoder(torch.bfloat16).features(x.to(torch.bfloat16), head=False)
    for a, b in zip(want, got):
        assert b.dtype == torch.bfloat16 and b.shape == a.shape
        cosine = torch.nn.functional.cosine_similarity(a.flatten(1), b.float().flatten(1))
        assert cosine.min() > 0.99
