"""The one batch procedure (:mod:`instacolor.batch.run`), called in this process.

Real files, the untrained compact weights at working size 64; the CLI's runs of the same
procedure are in ``tests/test_cli*.py``, Ray's in ``tests/test_batch_ray.py``.
"""

from __future__ import annotations

import doctest
import hashlib
import warnings
from pathlib import Path

import pytest

from instacolor.batch import worker as worker_module
from instacolor.batch.manifest import Record
from instacolor.batch.run import Plan, Runner, colorize_batch
from instacolor.batch.worker import Settings, load_worker
from instacolor.errors import (
    DetectorUnavailableWarning,
    InputError,
    UntrainedWeightsWarning,
    UsageError,
    WeightsError,
)
from tests.cli_helpers import file_hashes, gray_ramp, write_png

SETTINGS = Settings(weights="instacolor-untrained-w16", working_size=64, threads=1)


def test_a_batch_in_this_process_records_everything_then_resumes(tmp_path, offline):
    src = tmp_path / "in"
    write_png(src / "a.png", gray_ramp())
    write_png(src / "sub" / "b.png", gray_ramp(seed=1))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    before = file_hashes(src)
    plans: list[Plan] = []
    seen: list[Record] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        counts = colorize_batch(
            [src], tmp_path / "out", SETTINGS, on_start=plans.append, on_record=seen.append
        )
    assert counts == {"done": 2, "failed": 1}
    manifest = tmp_path / "out" / "manifest.jsonl"
    assert plans == [Plan(total=3, manifest=manifest, removed=())]
    assert manifest.read_text().splitlines() == [r.to_json() for r in seen]
    for record in seen:
        if record.status == "done":
            digest = hashlib.sha256(Path(record.output).read_bytes()).hexdigest()
            assert digest == record.output_sha256
            assert record.working_size == 64
    assert (tmp_path / "out" / "sub" / "b.png").is_file()

    # a temporary file a killed run left is removed; complete outputs are skipped
    stale = tmp_path / "out" / "sub" / ".b.png.0badcafe.tmp"
    stale.write_bytes(b"partial")
    plans.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        again = colorize_batch(
            [src], tmp_path / "out", SETTINGS, resume=True, on_start=plans.append
        )
    assert again == {"skipped-complete": 2, "failed": 1}
    assert plans[0].removed == (stale,) and not stale.exists()
    assert file_hashes(src) == before


def test_bad_outputs_and_runners_are_refused_before_anything_is_written(tmp_path, offline):
    src = tmp_path / "in"
    write_png(src / "a.png", gray_ramp())
    taken = tmp_path / "taken"
    taken.write_bytes(b"not a folder")
    with pytest.raises(UsageError, match="expected a folder, received an existing file"):
        colorize_batch([src], taken, SETTINGS)
    assert taken.read_bytes() == b"not a folder"
    with pytest.raises(InputError, match="workers and chunk: expected integers >= 1"):
        Runner(workers=0)
    with pytest.raises(InputError, match="workers and chunk: expected integers >= 1"):
        Runner(chunk=0)
    with pytest.raises(InputError, match=r"num_gpus: expected a fraction in \[0, 1\]"):
        Runner(ray=True, num_gpus=2)
    with pytest.raises(WeightsError, match="no-such-weights"):
        colorize_batch([src], tmp_path / "out", Settings(weights="no-such-weights"))
    assert not (tmp_path / "out").exists()  # the networks load before the folder is made
    pytest.importorskip("ray")
    with pytest.raises(InputError, match="add --device cuda"):
        colorize_batch([src], tmp_path / "out", SETTINGS, runner=Runner(ray=True, num_gpus=0.5))
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "taken"]


def test_an_unavailable_detector_is_warned_about_loudly_by_its_category(offline):
    settings = Settings(weights="instacolor-untrained-w16", working_size=64, detector="torchvision")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = load_worker(settings)
    loud = [w for w in caught if issubclass(w.category, DetectorUnavailableWarning)]
    assert len(loud) == 1
    text = str(loud[0].message)
    assert text.startswith("DETECTOR 'torchvision' UNAVAILABLE - every image is colorized ")
    assert "WITHOUT instances" in text and worker.colorizer.detector_error in text
    assert worker.colorizer.detector is None
    assert any(issubclass(w.category, UntrainedWeightsWarning) for w in caught)  # passed on


def test_settings_example_runs():
    result = doctest.testmod(worker_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.slow
def test_a_batch_in_the_callers_process_restores_its_threads(tmp_path):
    """colorize_files in a fresh process: threads as before the run, malloc untouched."""
    import subprocess
    import sys

    src = tmp_path / "in"
    write_png(src / "a.png", gray_ramp())
    script = (
        "import sys, warnings, torch\n"
        "warnings.simplefilter('ignore')\n"
        "from instacolor.batch.run import colorize_files\n"
        "from instacolor.runtime import allocator\n"
        "torch.set_num_threads(1)\n"
        "counts = colorize_files(sys.argv[1], sys.argv[2], threads=2, working_size=64,\n"
        "                        weights='instacolor-untrained-w16')\n"
        "print(dict(counts), torch.get_num_threads(), allocator._applied)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["{'done':", "1}", "1", "None"]
