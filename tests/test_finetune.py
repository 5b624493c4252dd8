"""``instacolor finetune``: a generated coloured-shapes domain the default weights get
wrong, the time limit, resume after a kill, and bad input (nothing written or lost)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from instacolor.errors import InputError
from instacolor.metrics import psnr
from instacolor.models.network import InstColorNet
from instacolor.train.finetune import MIN_PHOTOS, finetune
from instacolor.weights import DEFAULT_WEIGHTS, read_safetensors_metadata, save_safetensors

ROOT = Path(__file__).resolve().parents[1]
#: The domain: a teal ground, magenta discs and yellow squares (colour follows shape).
GROUND, DISC, SQUARE = (0, 120, 110), (220, 40, 160), (240, 210, 40)


def shapes_photo(rng: np.random.Generator, side: int = 96) -> np.ndarray:
    im = Image.new("RGB", (side, side), GROUND)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 5))):
        r = int(rng.integers(side // 10, side // 4))
        x, y = (int(v) for v in rng.integers(r, side - r, 2))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=DISC)
        else:
            draw.rectangle((x - r, y - r, x + r, y + r), fill=SQUARE)
    noise = rng.normal(0, 3, (side, side, 3))
    return np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8)


def write_collection(folder: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(count):  # some in a sub-folder: the folder is searched recursively
        where = folder / "sub" if i % 3 == 0 else folder
        Image.fromarray(shapes_photo(rng)).save(where / f"p{i:03d}.png")
    return folder


def _mean_psnr(weights, photos, boxes=None) -> float:
    from instacolor.colorizer import Colorizer

    colorizer = Colorizer(weights)
    scores = []
    for rgb in photos:
        gray = np.asarray(Image.fromarray(rgb).convert("L").convert("RGB"))
        out = colorizer.colorize(gray, instances=boxes)
        scores.append(psnr(np.asarray(out), rgb))
    return float(np.mean(scores))


def _small_base(folder: Path, guided: bool = False) -> Path:
    """Random width-8 weights at working size 64 (fast steps), saved in ``folder``."""
    import torch

    torch.manual_seed(0)
    name = "guided" if guided else "plain"
    return save_safetensors(
        InstColorNet(8, guided=guided).eval(), folder / f"{name}.safetensors", name=name,
        extra={"working_size": "64"},
    )  # fmt: skip


@pytest.mark.slow
def test_finetune_learns_a_domain_the_default_weights_get_wrong(tmp_path):
    photos = write_collection(tmp_path / "photos", 60)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", (64, 64), (120, 120, 120)).save(photos / "gray.png")
    Image.new("RGB", (64, 64), (121, 120, 119)).save(photos / "near_gray.png")
    out = tmp_path / "shapes.safetensors"
    t0 = time.perf_counter()
    # a small synthetic domain: a larger step than the default learns it in 120 steps (a
    # fixed number, not a time: the result must not depend on how busy the machine is)
    report = finetune(photos, out, minutes=4, steps=120, lr=1e-3, progress=False)
    assert time.perf_counter() - t0 < 240 + 30  # the budget plus a short export
    assert (report.photos, report.held_out, report.train_photos) == (60, 10, 50)
    assert (report.skipped_gray, report.skipped_unreadable) == (2, 1)
    assert report.improved and report.after.psnr > report.before.psnr + 1.0
    assert report.after.colorfulness > report.before.colorfulness
    assert report.seconds <= 240 and report.steps == 120
    meta = read_safetensors_metadata(out)
    assert meta["finetuned_from"] == DEFAULT_WEIGHTS
    assert len(meta["finetuned_from_sha256"]) == 64
    assert meta["collection_sha256"] == report.collection_digest
    assert meta["collection_photos"] == "60"
    assert float(meta["held_out_psnr_after"]) == pytest.approx(report.after.psnr, abs=1e-3)
    assert json.loads(report.report.read_text())["steps"] == report.steps
    grid = np.asarray(Image.open(report.grid))
    assert grid.shape == (4 * 128, 4 * 128, 3)
    assert not Path(str(out) + ".work").exists()
    # other photos of the domain, through the public API at full size: better than default
    rng = np.random.default_rng(99)
    fresh = [shapes_photo(rng) for _ in range(8)]
    default, tuned = _mean_psnr("default", fresh), _mean_psnr(out, fresh)
    assert tuned > default + 1.0
    # with instances the fusion network uses the same fine-tuned decoder: better too (by
    # less than without: the instance network's guidance sees each crop, which the
    # fine-tuning's whole-photo steps never showed it)
    boxes = np.array([[10.0, 10.0, 60.0, 60.0], [40.0, 30.0, 90.0, 90.0]])
    assert _mean_psnr(out, fresh, boxes) > _mean_psnr("default", fresh, boxes) + 0.5
    shown = _instacolor("models", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"fine-tuned from: {DEFAULT_WEIGHTS}" in shown.stdout
    assert f"collection sha256: {report.collection_digest}" in shown.stdout


@pytest.mark.slow
def test_the_same_steps_give_the_same_weights(tmp_path):
    import torch

    from instacolor.weights import load_weights

    base = _small_base(tmp_path)
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        report = finetune(photos, out, base=base, minutes=3, steps=6, guide=False, lr=1e-3,
                          progress=False)  # fmt: skip
        assert report.steps == 6
        runs.append((report, load_weights(out).net.state_dict()))
    (first, a), (second, b) = runs
    assert first.improved and first.after.psnr == second.after.psnr
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match=r"steps: expected a positive integer or None, "
                       r"received 0"):  # fmt: skip
        finetune(photos, tmp_path / "c.safetensors", base=base, steps=0, progress=False)
    assert not (tmp_path / "c.safetensors").exists()


@pytest.mark.slow
def test_finetune_guided_weights_cache_the_encoder(tmp_path):
    base = _small_base(tmp_path, guided=True)
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS)
    out = tmp_path / "tuned.safetensors"
    report = finetune(photos, out, base=base, minutes=0.4, progress=False)
    assert report.steps > 0 and report.after.psnr >= report.before.psnr
    meta = read_safetensors_metadata(out)
    assert meta["encoder"] == "efficientnet-lite0" and meta["working_size"] == "64"
    from instacolor.colorizer import Colorizer

    colorizer = Colorizer(out)
    rgb = shapes_photo(np.random.default_rng(5), 64)
    assert np.asarray(colorizer.colorize(rgb.mean(2).astype(np.uint8))).shape[:2] == (64, 64)


@pytest.mark.slow
def test_guide_gives_an_unguided_base_the_encoder(tmp_path):
    base = _small_base(tmp_path)
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS)
    out = tmp_path / "guided.safetensors"
    report = finetune(photos, out, base=base, minutes=0.4, guide=True, progress=False)
    assert report.steps > 0 and report.after.psnr >= report.before.psnr
    assert read_safetensors_metadata(base).get("encoder") is None
    meta = read_safetensors_metadata(out)
    assert meta["encoder"] == "efficientnet-lite0"
    assert meta["finetuned_from"].endswith("plain.safetensors")
    from instacolor.colorizer import Colorizer

    rgb = shapes_photo(np.random.default_rng(5), 64)
    assert np.asarray(Colorizer(out).colorize(rgb.mean(2).astype(np.uint8))).shape[:2] == (64, 64)


@pytest.mark.slow
def test_too_few_photos_is_refused_and_writes_nothing(tmp_path):
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS - 3)
    (photos / "x.png").write_bytes(b"not a png")
    out = tmp_path / "out.safetensors"
    with pytest.raises(InputError, match=rf"at least {MIN_PHOTOS}.*found {MIN_PHOTOS - 3}.*1 unr"):
        finetune(photos, out, minutes=0.1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.slow
def test_empty_and_all_gray_folders_are_refused_with_the_counts(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.safetensors"
    with pytest.raises(InputError, match=r"found 0 in .*skipped 0 gray or near-gray, 0 unr"):
        finetune(empty, out, progress=False)
    gray = tmp_path / "gray"
    gray.mkdir()
    rng = np.random.default_rng(1)
    for i in range(MIN_PHOTOS + 5):  # scans of black-and-white prints, some slightly toned
        level = rng.integers(0, 256, (48, 48, 1))
        tone = np.array([1, 1, 1]) if i % 2 else np.array([1.0, 0.99, 0.97])
        Image.fromarray(np.clip(level * tone, 0, 255).astype(np.uint8)).save(gray / f"{i}.png")
    with pytest.raises(InputError, match=rf"found 0 .*skipped {MIN_PHOTOS + 5} gray"):
        finetune(gray, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "gray"]


def test_models_describes_a_weights_file_and_refuses_a_bad_one(tmp_path, capsys):
    import torch

    from instacolor.cli.main import main

    torch.manual_seed(0)
    path = save_safetensors(
        InstColorNet(4).eval(),
        tmp_path / "tuned\nfake.safetensors",
        name="tuned",
        extra={"finetuned_from": "base\nforged: yes", "collection_photos": "42"},
    )
    assert main(["models", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "fine-tuned from: base\\nforged: yes" in shown and "collection photos: 42" in shown
    assert "\nforged" not in shown  # a newline in metadata cannot forge a line
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    assert main(["models", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
    assert bad.read_bytes() == b"not weights"


@pytest.mark.slow
def test_existing_outputs_are_refused_and_kept(tmp_path):
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS)
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="exists; expected a new path"):
        finetune(photos, out, minutes=0.1, progress=False)
    assert out.read_bytes() == b"precious"
    other = tmp_path / "other.safetensors"
    (tmp_path / "other.finetune.json").write_text("keep")
    with pytest.raises(InputError, match=r"other\.finetune\.json"):
        finetune(photos, other, minutes=0.1, progress=False)
    assert not other.exists() and (tmp_path / "other.finetune.json").read_text() == "keep"
    with pytest.raises(InputError, match=r"ending in \.safetensors"):
        finetune(photos, tmp_path / "x.pt", minutes=0.1, progress=False)


@pytest.mark.slow
def test_bad_options_and_folders_are_refused(tmp_path):
    photos = write_collection(tmp_path / "photos", 3)
    out = tmp_path / "o.safetensors"
    with pytest.raises(InputError, match="holdout"):
        finetune(photos, out, holdout=0.9, progress=False)
    with pytest.raises(InputError, match="minutes"):
        finetune(photos, out, minutes=0, progress=False)
    with pytest.raises(InputError, match=r"loss: expected one of \['huber', 'l2'\]"):
        finetune(photos, out, loss="l1", progress=False)
    with pytest.raises(InputError, match="does not exist"):
        finetune(tmp_path / "nope", out, progress=False)
    (tmp_path / "o.safetensors.work").mkdir()
    with pytest.raises(InputError, match="resume"):
        finetune(photos, out, progress=False)
    assert not out.exists()


def _instacolor(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instacolor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        **kw,
    )


@pytest.mark.slow
def test_cli_resumes_after_a_kill_within_the_budget(tmp_path):
    photos = write_collection(tmp_path / "photos", MIN_PHOTOS)
    out = tmp_path / "o.safetensors"
    args = [sys.executable, "-m", "instacolor", "finetune", str(photos), "-o", str(out)]
    args += ["--minutes", "1", "--no-progress"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = Path(str(out) + ".work") / "latest.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.is_file() and not out.exists()
    again = _instacolor("finetune", str(photos), "-o", str(out), "--minutes", "1")
    assert again.returncode == 2 and "--resume" in again.stderr  # refused without --resume
    t0 = time.perf_counter()
    done = _instacolor(*args[3:], "--resume")
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - t0 < 60 + 40  # what was left of the minute plus export
    report = json.loads((tmp_path / "o.finetune.json").read_text())
    assert report["seconds"] <= 61 and report["steps"] > 0
    assert "held-out PSNR" in done.stdout
    assert read_safetensors_metadata(out)["finetune_steps"] == str(report["steps"])


def test_learning_rate_warms_up_then_decays_to_zero():
    from instacolor.train.finetune import _learning_rate

    rates = [_learning_rate(1.0, t / 100) for t in range(0, 121)]
    assert rates[0] == 0.0 and rates[5] < rates[10] < rates[15]  # warm-up
    assert max(rates) == pytest.approx(rates[15], rel=1e-6) and rates[15] > 0.9
    assert rates[50] > rates[90] > rates[100] == pytest.approx(0.0, abs=1e-12)
    assert rates[120] == pytest.approx(0.0, abs=1e-12)  # past the budget (a resumed run)


def test_collection_docstring_example_runs():
    import doctest

    from instacolor.train import collection

    result = doctest.testmod(collection, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
