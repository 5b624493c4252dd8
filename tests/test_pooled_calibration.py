"""The pooled confidence calibration: Spearman and deciles of given confidence and error maps."""

import numpy as np
import pytest

from instacolor.evaluation.folder import pooled_calibration


def test_pooled_calibration_ranks_and_deciles_over_all_images():
    rng = np.random.default_rng(0)
    err = [rng.uniform(0, 40, (8, 10)).astype(np.float32) for _ in range(3)]
    conf = [1 - e / 40 for e in err]  # perfectly confident where the error is small
    calib = pooled_calibration(conf, err, 3)
    assert (calib.images, calib.pixels) == (3, 240)
    assert calib.spearman == pytest.approx(-1.0)
    assert [d.decile for d in calib.deciles] == list(range(1, 11))
    assert sum(d.pixels for d in calib.deciles) == 240
    errors = [d.ab_error for d in calib.deciles]
    assert errors == sorted(errors, reverse=True)  # the least confident tenth errs most
    assert "Spearman correlation (confidence, ab error): -1.000" in calib.markdown()
    # pooled, not averaged per image: a constant map per image ranks images only
    flat = [np.full_like(e, i) for i, e in enumerate(err)]
    shifted = [e + 100 * i for i, e in enumerate(err)]
    assert pooled_calibration(flat, shifted, 3).spearman > 0.8
