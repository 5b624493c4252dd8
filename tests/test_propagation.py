"""The direct propagation solve: its nested-dissection order and its agreement with SuperLU's
default (pivoting, column-ordered) factorisation of the same system."""

from __future__ import annotations

import numpy as np
import pytest

from instacolor.hints import decay_for_length, propagate
from instacolor.hints.propagation import dissection_order, system


def _reference_solve(light, known, values, decay):
    """The same system solved by SuperLU with its default ordering and pivoting."""
    from scipy.sparse.linalg import splu

    matrix = system(light, decay)
    k = known.ravel()
    a = matrix[~k][:, ~k].tocsc()
    given = values.reshape(values.shape[0], -1)[:, k].astype(np.float64)
    out = values.reshape(values.shape[0], -1).astype(np.float64)
    out[:, ~k] = splu(a).solve(-(matrix[~k][:, k] @ given.T)).T
    return out.reshape(values.shape)


def _scene(h, w, seed):
    rng = np.random.default_rng(seed)
    light = rng.uniform(20, 40, (h, w))
    light[:, w // 2 :] += 45.0  # a strong edge
    light[h // 3, :] = 95.0  # a bright line across it
    return light.astype(np.float32)


def test_the_order_is_a_permutation_with_each_separator_after_its_halves():
    h, w = 5, 7  # wider than high: the middle column separates first
    order = dissection_order((h, w), np.arange(h * w))
    assert sorted(order) == list(range(h * w))
    last = order[-h:]
    assert (last % w == w // 2).all() and list(last // w) == list(range(h))
    # the left half is eliminated before the right half
    left = np.flatnonzero(order % w < w // 2)
    right = np.flatnonzero(order % w > w // 2)
    assert left.max() < right.min()


@pytest.mark.parametrize("shape", [(128, 128), (37, 53), (1, 9), (9, 1), (3, 3), (2, 200)])
def test_the_order_of_some_pixels_is_the_grids_order_restricted_to_them(shape):
    h, w = shape
    full = dissection_order(shape, np.arange(h * w))
    assert sorted(full) == list(range(h * w))
    some = np.flatnonzero(np.random.default_rng(0).random(h * w) < 0.7)
    ordered = some[dissection_order(shape, some)]
    np.testing.assert_array_equal(ordered, full[np.isin(full, some)])


@pytest.mark.parametrize("decay", [0.0, decay_for_length(10), decay_for_length(200)])
def test_the_direct_solve_agrees_with_a_pivoting_factorisation(decay):
    light = _scene(48, 40, 0)
    rng = np.random.default_rng(1)
    known = rng.random((48, 40)) < 0.01
    known[47, 0] = True  # one under the bright line, left of the edge
    known[10, 39] = True
    known[20, :] = True  # a whole row known: two problems that share nothing
    values = rng.normal(0, 30, (2, 48, 40)).astype(np.float32)
    got = propagate(light, known, values, decay=decay)
    expected = _reference_solve(light, known, values, decay)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert (got[:, known] == values[:, known]).all()  # exactly, not within tolerance
    assert got.dtype == np.float32 and np.isfinite(got).all()


def test_one_known_pixel_fills_a_flat_image_and_thin_grids_solve():
    light = np.full((3, 50), 50.0, np.float32)
    known = np.zeros((3, 50), bool)
    known[1, 10] = True
    values = np.zeros((1, 3, 50), np.float32)
    values[0, 1, 10] = 7.5
    np.testing.assert_allclose(propagate(light, known, values), 7.5, rtol=1e-6)
    column = propagate(light.T.copy(), known.T.copy(), values.transpose(0, 2, 1).copy())
    np.testing.assert_allclose(column, 7.5, rtol=1e-6)
