"""References per shot for video: ``"reference"`` lines of the keyframe hints file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("av")

from instacolor import Colorizer
from instacolor.errors import InputError, UsageError
from instacolor.video import colorize_frames, colorize_video
from instacolor.video.keyframes import (
    keyframes_of,
    read_keyframe_file,
    read_keyframes,
    read_shot_references,
    record_digests,
    shot_references_of,
)
from instacolor.video.metrics import _ab
from tests.cli_helpers import cli_env, run_cli
from tests.video_clips import shapes_frame, to_gray

CUT = 4


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    torch.set_num_threads(1)
    return Colorizer(working_size=32)


def _scene(i: int) -> int:
    return int(i >= CUT)


def _frames(n: int = 8) -> list[np.ndarray]:
    return [to_gray(shapes_frame(i, scene=_scene(i))) for i in range(n)]


def _folder(folder: Path, n: int = 8) -> Path:
    folder.mkdir()
    for i, gray in enumerate(_frames(n)):
        cv2.imwrite(str(folder / f"frame{i}.png"), gray)
    return folder


def _colour(path: Path, frame: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), shapes_frame(frame, scene=_scene(frame))[..., ::-1])
    return path


def _hints(path: Path, *lines: dict) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def _error(frames: list[np.ndarray], i: int) -> float:
    truth = _ab(shapes_frame(i, scene=_scene(i)))
    return float(np.linalg.norm(_ab(frames[i]) - truth, axis=2).mean())


def test_a_reference_line_replaces_the_run_references_from_its_frame_on(tmp_path, colorizer):
    first = _colour(tmp_path / "refs" / "first.png", 0)
    second = _colour(tmp_path / "refs" / "second.png", CUT)
    hints = _hints(tmp_path / "keys.jsonl", {"frame": CUT, "reference": "refs/second.png"})
    frames = _frames()
    plain = list(colorize_frames(frames, colorizer=colorizer))
    only_global = list(colorize_frames(frames, colorizer=colorizer, reference=first))
    per_shot = list(colorize_frames(frames, colorizer=colorizer, reference=first, hints=hints))
    for i in range(CUT):  # the first shot: the run's reference, as without the line
        assert np.array_equal(per_shot[i], only_global[i])
    for i in (CUT, len(frames) - 1):  # the second shot: its own reference, carried
        assert _error(per_shot, i) < 0.8 * _error(plain, i), i
        assert _error(per_shot, i) < _error(only_global, i), i
    # the line alone: no reference before its frame
    alone = list(colorize_frames(frames, colorizer=colorizer, hints=hints))
    assert all(np.array_equal(alone[i], plain[i]) for i in range(CUT))
    assert np.array_equal(alone[CUT], per_shot[CUT])
    assert read_shot_references(hints)[CUT][0].source == str(second.resolve())
    assert read_keyframes(hints, (72, 128)) == {}  # a line of references only: no points


def test_a_keyframe_file_is_read_once_for_its_points_references_and_digest(tmp_path):
    ref = _colour(tmp_path / "refs" / "a.png", CUT)
    hints = _hints(
        tmp_path / "keys.jsonl",
        {"frame": 0, "points": [[5, 5, "#c03020"]]},
        {"frame": CUT, "reference": "refs/a.png"},
        {"frame": 6, "reference": ["refs/a.png"]},
    )
    whole = hashlib.sha256(hints.read_bytes()).hexdigest()
    read = read_keyframe_file(hints)
    hints.unlink()  # all below comes from the one reading
    assert read.sha256 == whole
    assert sorted(keyframes_of(read, (72, 128))) == [0]
    shots = shot_references_of(read)
    assert sorted(shots) == [CUT, 6] and shots[CUT][0] is shots[6][0]  # one photo read once
    digest = hashlib.sha256(ref.read_bytes()).hexdigest()
    pixels = np.zeros((2, 2, 3), np.uint8)
    assert record_digests([str(ref), pixels], shots) == (
        [digest, hashlib.sha256(pixels.tobytes()).hexdigest()],
        {str(CUT): [digest], "6": [digest]},
    )
    assert record_digests(None, {}) == (None, None)


def test_the_run_record_names_each_shot_reference_and_resume_checks_them(tmp_path, colorizer):
    _folder(tmp_path / "in")
    ref = _colour(tmp_path / "shot1.png", 0)
    hints = _hints(
        tmp_path / "keys.jsonl",
        {"frame": 1, "reference": ["shot1.png"], "points": [[5, 5, "#c03020"]]},
    )
    run = dict(colorizer=colorizer, chunk=CUT, hints=hints)
    whole = colorize_video(tmp_path / "in", tmp_path / "whole", **run)
    digest = hashlib.sha256(ref.read_bytes()).hexdigest()
    assert whole.record["settings"]["shot_references_sha256"] == {"1": [digest]}

    def stop(done, total):
        if done == CUT + 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(tmp_path / "in", tmp_path / "out", progress=stop, **run)
    # the same hints file naming a changed photo: the settings differ, no resume
    original = ref.read_bytes()
    _colour(ref, 2)
    with pytest.raises(UsageError, match="cannot resume"):
        colorize_video(tmp_path / "in", tmp_path / "out", resume=True, **run)
    ref.write_bytes(original)
    report = colorize_video(tmp_path / "in", tmp_path / "out", resume=True, **run)
    assert report.resumed_from == CUT  # the cut at 4 takes frame 1's reference again
    for i in range(8):
        name = f"frame{i}.png"
        out = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(out, cv2.imread(str(tmp_path / "whole" / name), -1)), name


def test_bad_shot_references_are_refused_before_anything_is_written(tmp_path, colorizer):
    _folder(tmp_path / "in", 2)
    cv2.imwrite(str(tmp_path / "gray.png"), _frames(1)[0])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    outside = _colour(tmp_path.parent / f"{tmp_path.name}-outside.png", 0)
    cases = {
        "gray.png": (InputError, r"line 2: reference .*gray\.png: .*colour photograph"),
        "missing.png": (InputError, r"line 2: reference .*missing\.png.*does not exist"),
        "broken.jpg": (Exception, r"line 2: reference .*broken\.jpg: .*could not decode"),
        str(outside): (UsageError, r"line 2: .*is an absolute path"),
        f"../{outside.name}": (UsageError, r"line 2: .*leads out of the hints file's folder"),
        "": (UsageError, r"line 2: .*empty"),
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    for path, (kind, message) in cases.items():
        hints = _hints(
            tmp_path / "keys.jsonl",
            {"frame": 0, "points": [[5, 5, "#c03020"]]},
            {"frame": 1, "reference": path},
        )
        with pytest.raises(kind, match=message):
            colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, hints=hints)
        with pytest.raises(kind, match=message):
            next(colorize_frames(tmp_path / "in", colorizer=colorizer, hints=hints))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "keys.jsonl"])
    hints = _hints(tmp_path / "keys.jsonl", {"frame": 1, "reference": []})
    with pytest.raises(UsageError, match="a path or a non-empty list"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, hints=hints)


@pytest.mark.slow
def test_cli_shot_references_with_a_hostile_name(tmp_path):
    _folder(tmp_path / "in")
    name = "shot \"two\"\n'é' $(x).png"
    ref = _colour(tmp_path / name, CUT)
    hints = _hints(tmp_path / "keys.jsonl", {"frame": CUT, "reference": name})
    env = cli_env(tmp_path)
    fast = ["--weights", "instacolor-untrained-w16", "--working-size", "32", "--no-progress"]
    run = run_cli(env, "video", tmp_path / "in", "-o", tmp_path / "out", "--hints", hints, *fast)
    assert run.returncode == 0, run.stderr
    (record,) = map(json.loads, (tmp_path / "out.manifest.jsonl").read_text().splitlines())
    digest = hashlib.sha256(ref.read_bytes()).hexdigest()
    assert record["settings"]["shot_references_sha256"] == {str(CUT): [digest]}
    cv2.imwrite(str(tmp_path / "gray-ish.png"), _frames(1)[0])
    _hints(hints, {"frame": CUT, "reference": "gray-ish.png"})
    run = run_cli(env, "video", tmp_path / "in", "-o", tmp_path / "out2", "--hints", hints, *fast)
    assert run.returncode == 2
    assert "gray-ish.png" in run.stderr and "colour photograph" in run.stderr
    assert not (tmp_path / "out2").exists()
