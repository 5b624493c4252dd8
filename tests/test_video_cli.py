"""``instacolor video`` as a user runs it: a real subprocess, a kill, --resume, exit codes."""

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

av = pytest.importorskip("av")

from tests.video_clips import write_clip  # noqa: E402

pytestmark = pytest.mark.slow

_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


def _video(args: list[str], **kwargs) -> subprocess.Popen:
    command = [sys.executable, "-m", "instacolor", "video", *args, "--working-size", "32"]
    return subprocess.Popen(
        [*command, "--threads", "1", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
        **kwargs,
    )


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_cli_unreadable_input_exits_2_with_one_clear_line(tmp_path):
    bad = tmp_path / "film.mov"
    bad.write_bytes(b"\0" * 100)
    run = _video([str(bad), "-o", str(tmp_path / "out.mp4")])
    _out, err = run.communicate(timeout=300)
    assert run.returncode == 2
    assert "error:" in err and "film.mov" in err and "video" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mov"]


def test_cli_killed_run_resumes_to_the_uninterrupted_output(tmp_path):
    source = tmp_path / "in.mp4"
    # 12 chunks: after the second one the run has ten more to go, time enough to be killed
    write_clip(source, 48, cut_at=9, audio=True)
    whole = _video([str(source), "-o", str(tmp_path / "whole.mp4"), "--chunk", "4"])
    _out, err = whole.communicate(timeout=900)
    assert whole.returncode == 0, err

    killed = _video([str(source), "-o", str(tmp_path / "out.mp4"), "--chunk", "4"])
    marker = tmp_path / ".out.mp4.parts" / "chunk-000001.json"
    deadline = time.monotonic() + 900
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert marker.exists(), "the run ended before its second chunk was finished"
    assert not (tmp_path / "out.mp4").exists()  # never an incomplete output in place

    resumed = _video([str(source), "-o", str(tmp_path / "out.mp4"), "--chunk", "4", "--resume"])
    _out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    record = json.loads((tmp_path / "out.mp4.manifest.jsonl").read_text().splitlines()[-1])
    assert record["resumed_from_frame"] >= 8 and record["frames"] == 48
    assert record["cuts"] == [0, 9] and record["copied_streams"] == [1]
    ours, reference = _frames(tmp_path / "out.mp4"), _frames(tmp_path / "whole.mp4")
    assert len(ours) == len(reference) == 48
    for a, b in zip(ours, reference):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # same frames, same encoder
    assert not list(tmp_path.glob(".out*"))


def _png_gray() -> bytes:
    import cv2

    _ok, data = cv2.imencode(".png", np.full((16, 16), 128, np.uint8))
    return data.tobytes()


def test_cli_hostile_inputs_fail_clearly_and_overwrite_nothing(tmp_path):
    odd = "reel 1 'ü' $(touch pwned);\nx"  # spaces, quotes, non-ASCII, shell syntax, newline
    good = tmp_path / f"{odd}.mkv"
    write_clip(good, 4, audio=True)
    text = tmp_path / "notes.txt"
    text.write_text("a shopping list, not a film\n")
    broken = tmp_path / f"{odd} broken.mp4"
    broken.write_bytes(good.read_bytes()[:300])
    existing = tmp_path / "kept.mp4"
    existing.write_bytes(b"an earlier result")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    gray = tmp_path / "gray reference.png"
    gray.write_bytes(_png_gray())
    cases = [  # (input, output, more arguments, words the one error line must hold)
        (text, tmp_path / "a.mp4", [], ["notes.txt", "video"]),
        (broken, tmp_path / "b.mp4", [], ["broken.mp4", "cannot open"]),
        (good, existing, [], ["kept.mp4", "already exists", "--overwrite"]),
        (good, tmp_path / "c.webm", [], ["c.webm", ".mp4"]),
        (good, tmp_path / "missing" / "d.mp4", [], ["does not exist"]),
        (good, tmp_path / "e.mp4", ["--reference", str(gray)], ["expected a colour photograph"]),
    ]
    before[gray.name] = gray.read_bytes()
    for source, output, more, words in cases:
        run = _video([str(source), "-o", str(output), *more])
        _out, err = run.communicate(timeout=300)
        assert run.returncode == 2, (source.name, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("instacolor: error:"), err
        assert all(word in lines[0] for word in words), (words, lines[0])
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written

    output = tmp_path / f"{odd} colour.mkv"
    run = _video([str(good), "-o", str(output)])
    _out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert len(_frames(output)) == 4
    record = json.loads((tmp_path / f"{odd} colour.mkv.manifest.jsonl").read_text())
    assert record["input"] == str(good) and record["output"] == str(output)
    assert not (tmp_path / "pwned").exists() and not (Path.cwd() / "pwned").exists()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before


def test_cli_a_folder_as_hints_file_fails_at_once(tmp_path):
    clip = tmp_path / "clip.mkv"
    write_clip(clip, 4)
    run = _video([str(clip), "-o", str(tmp_path / "out.mp4"), "--hints", str(tmp_path)])
    _out, err = run.communicate(timeout=120)
    assert run.returncode == 2 and "not a regular file (a folder)" in err, err
    assert "--hints" in err and not (tmp_path / "out.mp4").exists()
