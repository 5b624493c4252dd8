"""File names built from input names stay within the file-system limit (instacolor.io.names).

An input may be named with up to 255 bytes; the batch builds other names from it (the
output's hidden temporary file, the confidence map, later TIFF pages, the hints sidecar
it looks for). Real files in tmp_path, the real batch procedure.
"""

from __future__ import annotations

import doctest
import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from instacolor.batch.run import colorize_batch
from instacolor.batch.worker import Settings, confidence_path, page_path, write_confidence
from instacolor.errors import InputError, UntrainedWeightsWarning
from instacolor.io import names
from instacolor.io.names import NAME_MAX, fit_name, temp_name, temp_owner
from tests.cli_helpers import file_hashes, gray_ramp, write_png


def _size(name: str) -> int:
    return len(os.fsencode(name))


def test_short_names_are_kept_as_they_are():
    assert fit_name("scan", ".confidence.png") == "scan.confidence.png"
    assert temp_name("scan.png", "0badcafe") == ".scan.png.0badcafe.tmp"
    assert temp_owner("scan.png") == "scan.png"


@pytest.mark.parametrize("stem", ["a" * 251, "é" * 126, "a" + "日本" * 60, "x" * 300])
def test_long_names_fit_stay_distinct_and_whole_characters(stem):
    fitted = fit_name(stem, ".confidence.png")
    assert _size(fitted) <= NAME_MAX and fitted.endswith(".confidence.png") and "~" in fitted
    assert fit_name(stem, ".confidence.png") == fitted  # the same name gives the same result
    other = fit_name(stem[:-1] + "b", ".confidence.png")
    assert other != fitted  # two long names sharing their first 230 bytes stay apart
    fitted.encode("utf-8")  # no character cut in half
    assert fitted.startswith(stem[:20])
    hidden = temp_name(stem + ".png", "1a2b3c4d")
    assert _size(hidden) <= NAME_MAX and hidden.startswith(".") and hidden.endswith(".1a2b3c4d.tmp")
    assert hidden == f".{temp_owner(stem + '.png')}.1a2b3c4d.tmp"


def test_a_suffix_that_leaves_no_room_is_a_clear_error():
    with pytest.raises(InputError, match="expected a prefix and suffix shorter than"):
        fit_name("a" * 10, "." + "s" * 250)


def test_module_example_runs():
    result = doctest.testmod(names)
    assert result.attempted > 0 and result.failed == 0


def test_confidence_and_page_names_of_a_long_output_can_be_created(tmp_path):
    output = tmp_path / ("n" * 251 + ".png")  # 255 bytes: the longest valid name
    output.write_bytes(b"x")
    conf = confidence_path(output)
    assert _size(conf.name) <= NAME_MAX and conf.parent == tmp_path
    written = write_confidence(conf, np.linspace(0, 1, 12).reshape(3, 4))
    assert written == conf and np.asarray(Image.open(conf)).shape == (3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, conf.name])
    page = page_path(output, 1)
    assert _size(page.name) <= NAME_MAX and page.name.endswith(".page2.png")
    assert page != page_path(output, 2)


def test_a_batch_of_inputs_named_at_the_limit_completes(tmp_path, offline):
    src = tmp_path / "in"
    long_png = write_png(src / ("p" * 251 + ".png"), gray_ramp())  # 255 bytes
    long_utf8 = write_png(src / ("é" * 125 + "q.png"), gray_ramp(seed=1))  # 255 bytes, 2-byte chars
    pages = [Image.fromarray(gray_ramp(seed=k)) for k in range(2)]
    tiff = src / ("t" * 250 + ".tiff")
    pages[0].save(tiff, save_all=True, append_images=pages[1:])
    assert {_size(p.name) for p in (long_png, long_utf8, tiff)} == {255}
    before = file_hashes(src)
    out = tmp_path / "out"
    settings = Settings(weights="instacolor-untrained-w16", working_size=64, threads=1,
                        all_pages=True, confidence=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        counts = colorize_batch([src], out, settings)
        assert counts == {"done": 3}, (out / "manifest.jsonl").read_text()[-2000:]
        records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        for record in records:
            assert os.path.isfile(record["output"])
        later = [p for p in out.iterdir() if ".page2." in p.name]
        assert len(later) == 1 and _size(later[0].name) <= NAME_MAX
        assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".partial"))]
        # a temporary file a killed run left beside a long output is found and removed
        stale = out / temp_name(long_png.name, "0badcafe")
        stale.write_bytes(b"partial")
        again = colorize_batch([src], out, settings, resume=True)
    assert again == {"skipped-complete": 3} and not stale.exists()
    assert file_hashes(src) == before
