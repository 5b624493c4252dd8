"""The stabiliser's innovation gate (``Stabilization.follow``): steady where the network
only flickers, quick where the colour really changes; its state survives ``--resume``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from instacolor import Colorizer
from instacolor.errors import InputError
from instacolor.video import Stabilization, colorize_video
from instacolor.video.temporal import Stabilizer, StabilizerState
from tests.video_clips import shapes_frame, to_gray

_FRAMES = [to_gray(shapes_frame(i)) for i in range(30)]
_BASE = np.zeros((72, 128, 2), np.float32)


def _run(settings: Stabilization, nets, state=None, start=0) -> list[np.ndarray]:
    stab = Stabilizer(settings, state)
    return [stab.step(gray, net).ab for gray, net in zip(_FRAMES[start:], nets, strict=True)]


def _noise(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_BASE + rng.normal(0.0, 0.5, _BASE.shape).astype(np.float32) for _ in _FRAMES]


def test_a_genuine_change_is_followed_within_a_few_frames_without_the_gate_lagging_it():
    change = [_BASE + (0.0 if i < 5 else 20.0) for i in range(len(_FRAMES))]
    plain = _run(Stabilization(memory=0.98, follow=0.0), change)
    gated = _run(Stabilization(memory=0.98, follow=2.0), change)
    band = (slice(2, 16), slice(None), 0)  # the static top band
    assert gated[4][band].mean() == 0.0
    assert plain[12][band].mean() < 4.0  # 8 frames on: memory 0.98 alone has hardly moved
    assert gated[12][band].mean() > 15.0  # the gate has followed most of the way
    assert 19.0 < gated[29][band].mean() <= 20.0


def test_the_gate_keeps_frame_to_frame_noise_out():
    nets = _noise(0)
    plain = _run(Stabilization(memory=0.98, follow=0.0), nets)
    gated = _run(Stabilization(memory=0.98, follow=2.0), nets)
    no_memory = _run(Stabilization(memory=0.0, follow=0.0), nets)

    def swing(out):
        return float(np.mean([np.abs(out[i] - out[i + 1])[2:16].mean() for i in range(20, 29)]))

    assert swing(gated) < 0.25 * swing(no_memory)  # noise of 0.5 Lab: still mostly carried
    assert swing(gated) < 2.0 * swing(plain)


def test_the_innovation_state_is_restored_exactly():
    nets = [net + (0.0 if i < 8 else 10.0) for i, net in enumerate(_noise(1))]
    settings = Stabilization(memory=0.98, follow=2.0)
    whole = _run(settings, nets)
    stab = Stabilizer(settings)
    for gray, net in zip(_FRAMES[:12], nets[:12], strict=True):
        stab.step(gray, net)
    assert stab.state.innovation is not None and stab.state.innovation.shape == (72, 128, 2)
    arrays = dict(stab.state.to_arrays())
    restored = StabilizerState.from_arrays(arrays)
    resumed = _run(settings, nets[12:], restored, start=12)
    for a, b in zip(whole[12:], resumed, strict=True):
        assert np.array_equal(a, b)
    without = StabilizerState.from_arrays({k: v for k, v in arrays.items() if k != "innovation"})
    differs = _run(settings, nets[12:], without, start=12)
    assert not np.array_equal(whole[13], differs[1])  # the state matters: it is not ignored


@pytest.mark.parametrize("bad", [-0.5, True, "2", 1e6])
def test_bad_follow_values_are_refused(bad):
    with pytest.raises(InputError, match="follow"):
        Stabilization(follow=bad)


def test_a_resumed_video_with_the_gate_equals_an_uninterrupted_one(tmp_path):
    torch.set_num_threads(1)
    colorizer = Colorizer(working_size=32)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(9):
        cv2.imwrite(str(folder / f"f{i}.png"), _FRAMES[i])
    settings = Stabilization(follow=2.0)
    colorize_video(folder, tmp_path / "whole", colorizer=colorizer, chunk=3, stabilize=settings)

    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(folder, tmp_path / "out", colorizer=colorizer, chunk=3,
                       stabilize=settings, progress=stop)  # fmt: skip
    with pytest.raises(Exception, match="cannot resume"):  # another follow: refused
        colorize_video(folder, tmp_path / "out", colorizer=colorizer, chunk=3, resume=True,
                       stabilize=Stabilization(follow=3.0))  # fmt: skip
    report = colorize_video(folder, tmp_path / "out", colorizer=colorizer, chunk=3,
                            resume=True, stabilize=settings)  # fmt: skip
    assert report.resumed_from == 3
    for i in range(9):
        whole = cv2.imread(str(tmp_path / "whole" / f"f{i}.png"), cv2.IMREAD_UNCHANGED)
        out = cv2.imread(str(tmp_path / "out" / f"f{i}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(whole, out)


def test_cli_defaults_are_the_library_defaults_and_a_bad_follow_exits_2(capsys):
    from instacolor.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["video", "in.mp4", "-o", "out.mp4"])
    default = Stabilization()
    assert (args.memory, args.follow) == (default.memory, default.follow)
    assert parser.parse_args(["video", "in", "-o", "out", "--follow", "0"]).follow == 0.0
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["video", "in", "-o", "out", "--follow", "-1"])
    assert exit_.value.code == 2
    assert "--follow" in capsys.readouterr().err
