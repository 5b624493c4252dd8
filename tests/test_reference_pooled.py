"""The pooled propagation of a reference's matches: exact at the matches, edge-aware,
close to the full solve, and used only where no hint is given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor import InputError
from instacolor.hints import Hints, HintSettings, decay_for_length, propagate
from instacolor.hints.apply import _pooling
from instacolor.hints.propagation import propagate_pooled
from instacolor.hints.reference import ReferenceMatch


def _matches(s: int, seed: int = 0):
    """Known cells at the centres of a 32x32 grid's cells (a reference's matches), one in
    three kept, with values on each side of the edge of :func:`_light`."""
    rng = np.random.default_rng(seed)
    centres = ((np.arange(32) + 0.5) * s / 32).astype(int)
    known = np.zeros((s, s), bool)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    keep = rng.random((32, 32)) < 1 / 3
    known[cy[keep], cx[keep]] = True
    values = np.zeros((2, s, s), np.float32)
    left = np.arange(s)[None, :] < s // 2
    values[0] = np.where(left, 20.0, -30.0)
    values[1] = np.where(left, -10.0, 15.0)
    return known, values


def _light(s: int) -> np.ndarray:
    light = np.full((s, s), 30.0, np.float32)
    light[:, s // 2 :] = 80.0  # a strong edge down the middle
    return light


@pytest.mark.parametrize("step", [2, 4])
def test_pooled_keeps_the_matches_and_the_edge_and_is_close_to_the_full_solve(step):
    s = 128
    light, (known, values) = _light(s), _matches(s)
    decay = decay_for_length(40.0)
    full = propagate(light, known, values, decay=decay)
    pooled = propagate_pooled(light, known, values, decay=decay, step=step)
    assert pooled.dtype == np.float32 and pooled.shape == values.shape
    np.testing.assert_array_equal(pooled[:, known], values[:, known])
    # away from the edge each side keeps its own colour, as the full solve does
    inner = np.ones((s, s), bool)
    inner[:, s // 2 - step - 2 : s // 2 + step + 2] = False
    assert np.abs(pooled - full)[:, inner].max() < 1.5
    assert pooled[0, :, : s // 2 - 8].min() > 15.0 and pooled[0, :, s // 2 + 8 :].max() < -25.0


def test_step_one_is_the_full_solve_and_bad_steps_are_refused():
    s = 64
    light, (known, values) = _light(s), _matches(s)
    np.testing.assert_array_equal(
        propagate_pooled(light, known, values, step=1), propagate(light, known, values)
    )
    for step in (0, 3, 2.0, "2"):
        with pytest.raises(InputError, match="step: expected"):
            propagate_pooled(light, known, values, step=step)
    with pytest.raises(InputError, match="of one size"):
        propagate_pooled(light, known[:-2, :-2], values, step=2)


def test_the_pooling_never_goes_coarser_than_the_matching_grid():
    assert [_pooling(s) for s in (16, 32, 64, 96, 128, 256)] == [1, 1, 2, 3, 4, 4]


def test_matches_alone_are_pooled_and_with_a_hint_solved_in_full():
    s = 128
    light, (known, values) = _light(s), _matches(s, seed=1)
    match = ReferenceMatch(known=known, ab=values, confidence=torch.zeros(s, s))
    ab = torch.zeros(2, s, s)
    settings = HintSettings(fit=False)
    out = settings.propagate(ab, light, None, None, (s, s), match).numpy()
    decay = decay_for_length(settings.length(int(known.sum()), s))
    np.testing.assert_allclose(
        out, propagate_pooled(light, known, values, decay=decay, step=4), atol=1e-5
    )
    # a hint too: the full solve (the hint's own cells exact)
    hints = Hints(points=[(5, 5, "#ff0000")])
    with_hint = settings.propagate(ab, light, hints, None, (s, s), match).numpy()
    np.testing.assert_array_equal(with_hint[:, known], values[:, known])
    assert not np.allclose(with_hint[:, ~known], out[:, ~known], atol=1e-3)
