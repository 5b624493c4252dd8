"""Ray Data batches (:mod:`instacolor.batch.ray`) on a real local Ray instance.

A few small gray PNGs (8 and 16 bit) and one corrupt file; the untrained compact weights
at working size 64 and 1 thread per actor keep it fast. A plain CLI run of the same
folder is the reference: Ray gives the same records (times, timings and the output's
sha256 aside: the provenance carries the second it was written) and the same pixels.
Checked: the CLI's ``--ray``, SIGTERM to its driver, :func:`colorize_files` with resume,
list and manifest inputs, an actor that dies, actors that cannot start, and Ray missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from instacolor.batch import ray as ray_runner
from instacolor.batch import run as batch_run
from instacolor.batch.jobs import Job, classify_inputs, discover
from instacolor.batch.manifest import Record
from instacolor.batch.worker import Settings
from instacolor.cli import main
from instacolor.errors import InputError
from instacolor.io.archival import read_provenance
from tests.cli_helpers import cli_env
from tests.signal_helpers import LARGE, SMALL, stop_while_writing, write_inputs

ray = pytest.importorskip("ray")

WEIGHTS = "instacolor-untrained-w16"
FAST = ["--weights", WEIGHTS, "--working-size", "64", "--threads", "1", "--no-progress"]
LIB = {"weights": WEIGHTS, "working_size": 64, "threads": 1}
VARYING = ("time", "timings", "output", "output_sha256")  # differ from run to run


def _env(root: Path) -> dict[str, str]:
    return {**cli_env(root), "RAY_USAGE_STATS_ENABLED": "0"}


def _cli(root: Path, *args, code: str | None = None) -> subprocess.CompletedProcess:
    head = ["-c", code] if code else ["-m", "instacolor"]
    return subprocess.run(
        [sys.executable, *head, *map(str, args)],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _records(outdir: Path) -> list[dict]:
    text = (outdir / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _comparable(records: list[dict], outdir: Path) -> dict[str, dict]:
    """Records by input, without what varies, with the output relative to ``outdir``."""
    found = {}
    for record in records:
        rel = str(Path(record["output"]).relative_to(outdir))
        found[record["input"]] = {k: v for k, v in record.items() if k not in VARYING} | {
            "rel": rel
        }
    return found


def _pixels(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))


def _assert_same_outputs(records: list[dict], outdir: Path, reference: Path) -> None:
    done = [r for r in records if r["status"] == "done"]
    assert done
    for record in done:
        out = Path(record["output"])
        assert hashlib.sha256(out.read_bytes()).hexdigest() == record["output_sha256"]
        ref = reference / out.relative_to(outdir)
        assert (
            np.array_equal(_pixels(out), _pixels(ref)) and _pixels(out).dtype == _pixels(ref).dtype
        )
        ours, theirs = read_provenance(out), read_provenance(ref)
        assert ours.input_sha256 == theirs.input_sha256 == record["input_sha256"]
        assert (ours.model, ours.weights_sha256) == (theirs.model, theirs.weights_sha256)
    assert not [p for p in outdir.rglob("*") if p.name.startswith(".")]  # no temporary files


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A folder of inputs and the plain CLI's run of it (the reference)."""
    root = tmp_path_factory.mktemp("ray")
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    y, x = np.mgrid[0:40, 0:56]
    for k in range(3):
        Image.fromarray(((x * 3 + y * 2 + k * 40) % 256).astype(np.uint8)).save(src / f"g{k}.png")
    ramp = (np.arange(40 * 56, dtype=np.int64) * 65535 // (40 * 56 - 1)).astype(np.uint16)
    Image.fromarray(ramp.reshape(40, 56)).save(src / "sub" / "deep16.png")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00broken" * 20)
    reference = root / "cli"
    run = _cli(root, "colorize", src, "-o", reference, *FAST)
    assert run.returncode == 1, run.stderr  # the corrupt file fails
    return root, src, reference


@pytest.fixture(scope="module")
def local_ray():
    """A small local Ray instance for the in-process tests (started after the CLI's)."""
    if ray.is_initialized():  # pragma: no cover - another module left one open
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_missing_ray_is_a_clear_error_in_the_library_and_exit_2_in_the_cli(batch):
    root, src, _ = batch
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from instacolor.batch.run import colorize_files\n"
        "from instacolor.errors import MissingDependencyError\n"
        "try:\n"
        "    colorize_files(sys.argv[1], sys.argv[2])\n"
        "except MissingDependencyError as exc:\n"
        "    assert isinstance(exc, ImportError); print('LIB', exc)\n"
        "from instacolor.cli import main\n"
        "sys.exit(main(['colorize', sys.argv[1], '-o', sys.argv[2], '--ray']))\n"
    )
    out = root / "never"
    run = _cli(root, src, out, code=code)
    assert run.returncode == 2, run.stderr
    assert "LIB" in run.stdout and 'pip install "instacolor[ray]"' in run.stdout
    assert "error: distributed batches need Ray Data" in run.stderr
    assert 'pip install "instacolor[ray]"' in run.stderr
    assert not out.exists()


@pytest.mark.slow
def test_cli_ray_gives_the_records_and_pixels_of_the_plain_cli(batch):
    root, src, reference = batch
    out = root / "cli-ray"
    run = _cli(root, "colorize", src, "-o", out, "--ray", "--workers", 2, *FAST)
    assert run.returncode == 1, run.stderr
    assert "FAILED" in run.stderr and "4 done, 1 failed" in run.stderr
    records = _records(out)
    assert len(records) == 5  # one line per input
    assert _comparable(records, out) == _comparable(_records(reference), reference)
    assert _comparable(records, out)[str(src / "sub" / "deep16.png")]["bit_depth"] == 16
    _assert_same_outputs(records, out, reference)


@pytest.mark.slow
def test_cli_ray_usage_errors(batch, capsys):
    root, src, _ = batch
    assert main(["colorize", "--ray", str(src), "-o", str(root / "x"), *FAST]) == 2
    assert "put --ray after the inputs" in capsys.readouterr().err
    assert main(["colorize", str(src), "-o", str(root / "x"), "--ray", "--ray-gpus", ".5"]) == 2
    assert "add --device cuda" in capsys.readouterr().err
    assert not (root / "x").exists()


@pytest.mark.slow
def test_sigterm_stops_a_ray_batch_cleanly_and_resume_finishes(tmp_path):
    src = tmp_path / "in"
    write_inputs(src)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "instacolor", "colorize", str(src), "-o", str(out), *FAST]
    proc = subprocess.Popen(
        [*args, "--ray", "--workers", "1", "--batch", "1"],
        env=_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:  # ray.init replaces the driver's SIGTERM handler: ours must be back
        seen = stop_while_writing(proc, out, "b.png", lambda: proc.send_signal(signal.SIGTERM))
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert seen, "the batch ended before the large output was being written"
    assert proc.returncode == 143, stderr
    assert "instacolor: terminated (SIGTERM)" in stderr
    assert not list(out.rglob("*.tmp"))
    records = _records(out)
    assert records and {r["status"] for r in records} == {"done"}
    for record in records:
        digest = hashlib.sha256(Path(record["output"]).read_bytes()).hexdigest()
        assert digest == record["output_sha256"]
    resumed = subprocess.run(
        [*args, "--resume"], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in out.glob("*.png")) == sorted(SMALL + LARGE)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_colorize_files_same_records_then_resume_rewrites_nothing(batch, local_ray):
    root, src, reference = batch
    out = root / "lib"
    seen: list[Record] = []
    counts = batch_run.colorize_files(src, out, workers=2, on_record=seen.append, **LIB)
    assert counts == {"done": 4, "failed": 1} and len(seen) == 5
    records = _records(out)
    assert [Record(**r) for r in records] == seen  # the manifest holds what was streamed
    assert _comparable(records, out) == _comparable(_records(reference), reference)
    _assert_same_outputs(records, out, reference)
    assert ray.is_initialized()  # the session it found is left open

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = batch_run.colorize_files(src, out, workers=2, resume=True, **LIB)
    assert again == {"skipped-complete": 4, "failed": 1}
    second = {Path(r["input"]).name: r for r in _records(out)[5:]}
    assert second["corrupt.png"]["status"] == "failed"  # a failed input is retried
    for name in ("g0.png", "g1.png", "g2.png", "deep16.png"):
        first = next(r for r in records if r["input"] == second[name]["input"])
        assert second[name]["status"] == "skipped-complete"
        assert second[name]["output_sha256"] == first["output_sha256"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


@pytest.mark.slow
def test_inputs_a_folder_a_list_of_paths_a_text_list_or_a_manifest(batch, tmp_path):
    _, src, reference = batch
    folder = [str(src)], None, []
    assert classify_inputs(src) == classify_inputs(str(src)) == folder
    assert classify_inputs([src / "g0.png", src]) == (
        [str(src / "g0.png"), str(src)],
        None,
        [],
    )
    listing = tmp_path / "todo.txt"
    listing.write_text(f"{src / 'g1.png'}\n")
    assert classify_inputs(listing) == ([], str(listing), [])
    names, list_file, listed = classify_inputs(reference / "manifest.jsonl")
    assert (names, list_file) == ([], None) and len(listed) == 5
    assert str(src / "sub" / "deep16.png") in listed
    jobs, _ = discover(names, list_file, tmp_path / "out", None, listed=listed)
    assert jobs[0].output.parent == tmp_path / "out"  # listed files keep their names only
    (tmp_path / "empty.jsonl").write_text("not json\n")
    with pytest.raises(InputError, match="expected JSON lines with an 'input' field"):
        classify_inputs(tmp_path / "empty.jsonl")


def _dies_on(name: str, actor: type) -> type:
    """An ``actor`` whose process dies (as if killed for memory) on the input ``name``."""

    class DiesOn:  # a local class: shipped to the actors by value
        def __init__(self, settings):
            self.inner = actor(settings)

        def __call__(self, batch):
            if any(str(source).endswith(name) for source in batch["source"]):
                os._exit(1)
            return self.inner(batch)

    return DiesOn


@pytest.mark.slow
def test_a_dead_actor_fails_its_images_and_the_others_finish(batch, local_ray, monkeypatch):
    root, src, _ = batch
    out = root / "dies"
    jobs = [Job(src / f"g{k}.png", out / f"g{k}.png") for k in range(3)]
    jobs.append(Job(src / "missing.png", out / "missing.png"))
    settings = Settings(WEIGHTS, "cpu", 64, None, None, False, False, None, threads=1)
    records: list[Record] = []
    actor = _dies_on("g1.png", ray_runner._ColorizeActor)
    monkeypatch.setattr(ray_runner, "_ColorizeActor", actor)
    ray_runner.run_ray(settings, jobs, workers=2, chunk=1, on_record=records.append)
    status = {Path(r.input).name: (r.status, r.error) for r in records}
    assert len(records) == 4
    assert status["g0.png"][0] == status["g2.png"][0] == "done"
    assert status["g1.png"] == ("failed", ray_runner._LOST)
    assert status["missing.png"][0] == "failed" and "no file" in status["missing.png"][1]
    assert sorted(p.name for p in out.iterdir()) == ["g0.png", "g2.png"]


@pytest.mark.slow
def test_actors_that_cannot_start_fail_every_image_with_the_reason(batch, local_ray):
    root, src, _ = batch
    jobs = [Job(src / "g0.png", root / "nope" / "g0.png")]
    settings = Settings("no-such-weights", "cpu", 64, None, None, False, False, None, threads=1)
    records: list[Record] = []
    ray_runner.run_ray(settings, jobs, workers=1, chunk=1, on_record=records.append)
    (record,) = records
    assert record.status == "failed" and "the Ray run stopped" in record.error
    assert "WeightsError: unknown weights 'no-such-weights'" in record.error
    assert record.error.endswith("run again with --resume")
