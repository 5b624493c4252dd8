"""Random ground-truth hints for training (Zhang et al. 2017): sampling, batches, a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.errors import InputError
from instacolor.hints import reference_hint_channels
from instacolor.train.data import (
    HINT_PATCH_SIZES,
    ColorImages,
    WithHints,
    batch_hints,
    sample_hint_patches,
    sample_rng,
)

ROOT = Path(__file__).resolve().parents[1]


def test_patches_follow_the_reference_sampling():
    rng = np.random.default_rng(0)
    assert all(sample_hint_patches(rng, (32, 40), 1.0) == [] for _ in range(50))  # p = 1: none
    counts, sides = [], set()
    for _ in range(4000):
        patches = sample_hint_patches(rng, (32, 40), 1 / 8)
        counts.append(len(patches))
        for row, col, p in patches:
            assert 0 <= row <= 32 - p and 0 <= col <= 40 - p
            sides.add(p)
    assert abs(np.mean(counts) - 7.0) < 0.4  # geometric: (1 - p) / p points on average
    assert np.mean(np.array(counts) == 0) == pytest.approx(1 / 8, abs=0.02)
    assert sides == set(HINT_PATCH_SIZES)


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    rng = np.random.default_rng(3)
    files = []
    for i in range(6):
        img = np.empty((40, 48, 3), np.uint8)
        img[:] = rng.integers(40, 215, 3)
        img[10:30, 8:30] = rng.integers(0, 255, 3)
        files.append(tmp_path / f"p{i}.png")
        Image.fromarray(img).save(files[-1])
    return files


def test_with_hints_adds_the_reference_channels_and_batches_shift_the_mask(photos):
    base = ColorImages(photos, 32, augment=False)
    data = WithHints(base, 1 / 8, seed=4)
    data.set_epoch(2)
    sample = data[3]
    assert torch.equal(sample["ab"], base[3]["ab"])  # the stage's own sample, untouched
    patches = sample_hint_patches(sample_rng(4 + 7919, 2, 3), (32, 32), 1 / 8)
    expected = reference_hint_channels(sample["ab"].numpy(), patches, mask_cent=0.0)
    np.testing.assert_array_equal(sample["hints"].numpy(), expected)
    batch = {"hints": torch.stack([sample["hints"], data[4]["hints"]])}
    shifted = batch_hints(batch, -0.5, "cpu")
    assert set(np.unique(shifted[:, 2].numpy())) <= {-0.5, 0.5}
    assert torch.equal(shifted[:, :2], batch["hints"][:, :2])
    one = batch_hints({"hints": list(batch["hints"])}, 0.0, "cpu", index=1)
    assert one.shape == (1, 3, 32, 32) and torch.equal(one[0], batch["hints"][1])
    assert batch_hints({}, -0.5, "cpu") is None
    with pytest.raises(InputError, match=r"expected a number in \(0, 1\]"):
        WithHints(base, 0.0)


@pytest.mark.slow
def test_train_with_hints_runs_and_without_the_flag_sees_none(photos, tmp_path):
    folder = photos[0].parent
    common = [
        sys.executable, str(ROOT / "tools" / "train.py"), "--stage", "1", "--data", str(folder),
        "--width", "4", "--size", "32", "--batch", "2", "--steps", "2", "--threads", "1",
        "--workers", "0", "--holdout-every", "6", "--val-every", "6",
    ]  # fmt: skip
    for flag in (["--hint-sample-p", "0.125"], ["--hint-sample-p", "0"]):
        run = subprocess.run(
            [*common, "--out", str(tmp_path / flag[1]), *flag],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        if flag[1] == "0":
            assert run.returncode != 0 and "expected a number in (0, 1]" in run.stderr
        else:
            assert run.returncode == 0, run.stderr
            assert (tmp_path / "0.125" / "stage1" / "latest.pt").is_file()
