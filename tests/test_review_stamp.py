"""The review stamp: a decision written into a colorized file's metadata, pixels untouched."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instacolor.io.archival.provenance import read_provenance
from instacolor.review.stamp import read_review
from tests.review_helpers import sha


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_stamp_keeps_pixels_and_provenance(tmp_path, suffix):
    import tifffile

    from instacolor.io.archival import read_scan
    from instacolor.io.archival.provenance import Provenance
    from instacolor.io.archival.write import write_colorized
    from instacolor.review.stamp import stamp_review

    source = tmp_path / f"scan{suffix}"
    gray = (np.linspace(0, 65535, 48 * 64).reshape(48, 64)).astype(np.uint16)
    if suffix == ".tif":
        tifffile.imwrite(source, gray)
    else:
        Image.fromarray((gray >> 8).astype(np.uint8)).save(source, quality=95)
    scan = read_scan(source)
    rng = np.random.default_rng(0)
    dtype = np.uint16 if scan.bit_depth == 16 else np.uint8
    rgb = rng.integers(0, np.iinfo(dtype).max, (48, 64, 3)).astype(dtype)
    made = Provenance(model="m", weights_sha256="a" * 64, input_sha256=scan.sha256)
    output = write_colorized(tmp_path / f"out{suffix}", rgb, provenance=made, source=scan)
    before = output.read_bytes()
    review = {"decision": "accept", "reviewer": "ada", "time": "2026-01-02T03:04:05Z",
              "reviewed_sha256": sha(output), "comment": "ok <&> \u00e9"}  # fmt: skip
    stamp_review(output, source, review)
    stamp_review(output, source, {**review, "comment": "again"})  # replaces the first
    assert read_review(output) == {**review, "comment": "again"}
    assert read_provenance(output) == made
    if suffix == ".jpg":  # only the XMP segment changed: the compressed data is the same
        assert (
            before[before.index(b"\xff\xda") :]
            == output.read_bytes()[output.read_bytes().index(b"\xff\xda") :]
        )
    else:
        stored = tifffile.imread(output)
        assert stored.dtype == np.uint16 and np.array_equal(stored, rgb)
