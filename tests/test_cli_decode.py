"""`instacolor colorize --decode SPEC/--confidence` as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor import Decoding
from instacolor.batch.worker import Settings, Worker
from instacolor.io.archival import read_provenance
from instacolor.models.network import InstColorNet
from instacolor.weights import save_safetensors
from tests.cli_helpers import cli_env, run_cli


def _run(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    return run_cli(cli_env(tmp_path), *args)


def _head_weights(path: Path) -> Path:
    """Random width-4 networks whose file declares a trained class head (plumbing only)."""
    torch.manual_seed(0)
    net = InstColorNet(4).eval()
    extra = {"class_head": "trained", "decode": "annealed-mean", "temperature": "0.38"}
    return save_safetensors(net, path, name="head-w4", extra={**extra, "working_size": "32"})


def _inputs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:40, 0:56]
    for i in range(2):
        Image.fromarray(((x * 3 + y * 2 + 40 * i) % 256).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _head_batch(tmp_path: Path, out_name: str, *options: str) -> tuple[Path, Path, Path]:
    """``(weights, inputs, out)``: the CLI run with head weights and ``options`` succeeded."""
    weights = tmp_path / "head.safetensors"
    if not weights.exists():
        _head_weights(weights)
    src = tmp_path / "in" if (tmp_path / "in").exists() else _inputs(tmp_path / "in")
    out = tmp_path / out_name
    run = _run(tmp_path, "colorize", src, "-o", out, "--weights", weights, *options,
               "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stderr
    return weights, src, out


@pytest.mark.slow
def test_confidence_files_and_manifest_fields(tmp_path):
    _, _, out = _head_batch(tmp_path, "out", "--confidence", "--decode", "annealed-mean:0.5")
    for record in _records(out):
        assert record["status"] == "done"
        assert (record["decode"], record["temperature"]) == ("annealed-mean", 0.5)
        conf_path = Path(record["confidence"])
        assert conf_path == out / f"{Path(record['input']).stem}.confidence.png"
        conf = np.asarray(Image.open(conf_path))
        assert conf.shape == (40, 56) and conf.dtype == np.uint8
        assert abs(conf.mean() / 255 - record["mean_confidence"]) < 0.01
    assert not list(out.glob(".*partial"))
    # regression decoding of the same weights: still a confidence, other colours
    _, _, out2 = _head_batch(tmp_path, "out2", "--decode", "regression")
    record = _records(out2)[0]
    assert record["decode"] == "regression" and record["temperature"] is record["mix"] is None
    assert record["mean_confidence"] is not None and record["confidence"] is None
    assert not list(out2.glob("*.confidence.png"))


@pytest.mark.slow
def test_annealed_mean_without_a_head_and_bad_temperature_exit_2(tmp_path):
    src = _inputs(tmp_path / "in")
    before = {p: p.read_bytes() for p in src.iterdir()}
    run = _run(tmp_path, "colorize", src, "-o", tmp_path / "out", "--decode", "annealed-mean",
               "--no-progress")  # fmt: skip
    assert run.returncode == 2 and "trained classification head" in run.stderr
    assert not (tmp_path / "out" / "0.png").exists()
    for spec in ("annealed-mean:0", "annealed-mean:x", "mean", "regression:1"):
        run = _run(tmp_path, "colorize", src, "-o", tmp_path / "out", "--decode", spec)
        assert run.returncode == 2 and "argument --decode: " in run.stderr, spec
    assert (
        "temperature: expected a number in (0, 10]"
        in _run(
            tmp_path, "colorize", src, "-o", tmp_path / "out", "--decode", "annealed-mean:0"
        ).stderr
    )
    assert {p: p.read_bytes() for p in src.iterdir()} == before
    # default weights: regression, no confidence, recorded as such
    out = tmp_path / "plain"
    run = _run(tmp_path, "colorize", src, "-o", out, "--confidence", "--working-size", "64",
               "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = _records(out)[0]
    assert record["decode"] == "regression" and record["mean_confidence"] is None
    assert not list(out.glob("*.confidence.png"))


@pytest.mark.slow
def test_mix_is_recorded_and_a_bad_mix_exits_2_writing_nothing(tmp_path):
    weights, src, out = _head_batch(tmp_path, "out", "--decode", "annealed-mean:0.38:0.5")
    got = [(r["status"], r["decode"], r["temperature"], r["mix"]) for r in _records(out)]
    assert got == [("done", "annealed-mean", 0.38, 0.5)] * 2
    bad = tmp_path / "bad"
    run = _run(tmp_path, "colorize", src, "-o", bad, "--weights", weights, "--decode",
               "annealed-mean:0.38:2")  # fmt: skip
    assert run.returncode == 2
    assert [ln for ln in run.stderr.splitlines() if "error" in ln] == [
        "instacolor colorize: error: argument --decode: mix: expected a number from 0 to 1, "
        "received 2.0; use 1 for the annealed mean alone, 0 for the regression alone, in "
        "between (e.g. 0.75) for a blend"
    ]
    assert not bad.exists()


def test_worker_settings_carry_the_mix_into_the_records(tmp_path):
    weights = str(_head_weights(tmp_path / "head.safetensors"))
    facts = Worker(Settings(weights=weights, decode="annealed-mean:0.38:0.25")).facts
    assert (facts["decode"], facts["temperature"], facts["mix"]) == ("annealed-mean", 0.38, 0.25)
    assert Worker(Settings(weights=weights)).facts["mix"] == 1.0
    blend = Decoding("annealed-mean", 0.5, 0.25)
    assert Worker(Settings(weights=weights, decode=blend)).colorizer.decoding == blend
    facts = Worker(Settings(weights=weights, decode="regression")).facts
    assert (facts["decode"], facts["temperature"], facts["mix"]) == ("regression", None, None)


@pytest.mark.slow
def test_review_engine_keeps_the_batch_decoding(tmp_path):
    """The review app re-colorizes with the batch's decoding, not the weights' default."""
    from instacolor.review.engine import Engine
    from instacolor.review.state import Batch

    # the weights' default decoding is annealed-mean T 0.38 mix 1
    _, _, out = _head_batch(tmp_path, "out", "--decode", "annealed-mean:0.6:0.25")
    settings = read_provenance(out / "0.png").settings.split(";")  # embedded in the file
    assert {"decode=annealed-mean", "temperature=0.6", "mix=0.25"} <= set(settings)
    assert "saturation=1.0" in settings and not any(x.startswith("hints") for x in settings)
    engine = Engine(Batch(out))
    decoding = engine.colorizer.decoding
    assert (decoding.mode, decoding.temperature, decoding.mix) == ("annealed-mean", 0.6, 0.25)
    assert engine.worker.facts["mix"] == 0.25 and engine.mismatch is None
    _, _, out2 = _head_batch(tmp_path, "out2", "--decode", "regression")
    assert Engine(Batch(out2)).colorizer.decoding.mode == "regression"
    settings = read_provenance(out2 / "1.png").settings
    assert "decode=regression" in settings and "temperature" not in settings


@pytest.mark.slow
def test_review_shows_the_confidence_of_weights_with_a_trained_head(tmp_path):
    """A batch made with a class head: the review app serves its confidence overlay."""
    import io

    from instacolor.review.server import ReviewServer
    from tests.review_helpers import Client

    _, _, out = _head_batch(tmp_path, "out", "--confidence", "--decode", "annealed-mean:0.38:0.5")
    with ReviewServer.start(out, port=0, reviewer="ada") as server:
        client = Client(server)
        info = json.loads(client.get("/api/batch")[1])
        assert info["confidence"] is True and info["confidence_note"] is None
        item = info["items"][0]
        assert item["mean_confidence"] is not None and 0 <= item["mean_confidence"] <= 1
        status, data = client.get(f"/api/images/{item['index']}/confidence.png")
        assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
        overlay = np.asarray(Image.open(io.BytesIO(data)))
        assert overlay.shape[:2] == (40, 56) and overlay.std() > 0  # a map, not a flat fill


def test_colorize_files_takes_every_settings_option_and_refuses_unknown_ones(tmp_path):
    from instacolor.batch.run import colorize_files
    from instacolor.errors import InputError

    weights = _head_weights(tmp_path / "head.safetensors")
    src, out = _inputs(tmp_path / "in"), tmp_path / "out"
    with pytest.raises(InputError, match=r"expected options among .*received \['temprature'\]"):
        colorize_files(src, out, weights=str(weights), temprature=0.5)
    with pytest.raises(InputError, match="mix: expected a number from 0 to 1"):
        colorize_files(src, out, weights=str(weights), decode="annealed-mean:0.38:2")
    assert not out.exists()  # refused before anything was written
