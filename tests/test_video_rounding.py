"""instacolor.video.rounding: the 8-bit rounding error carried along the flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instacolor.color import half_level, rgb_to_lab
from instacolor.errors import InputError
from instacolor.reconstruct import reconstruct
from instacolor.video import Stabilization
from instacolor.video.flow import FlowSettings, Motion, estimate_motion
from instacolor.video.metrics import warp_error
from instacolor.video.rounding import carry_error, round_frame
from instacolor.video.temporal import StabilizerState
from tests.video_clips import shapes_frame, to_gray


def _grainy_clip(n: int, seed: int = 0):
    """Gray frames of the moving shapes with film grain: lights (float L), gray levels."""
    rng = np.random.default_rng(seed)
    lights = []
    for i in range(n):
        gray = to_gray(shapes_frame(i)).astype(np.float32)
        grain = rng.normal(0, 1.2, gray.shape).astype(np.float32)  # gray levels
        lights.append(np.clip((gray + grain) / 2.55, 1, 99).astype(np.float32))
    grays = [np.clip(x * 2.55 + 0.5, 0, 255).astype(np.uint8) for x in lights]
    return lights, grays


def _exact(light: np.ndarray) -> np.ndarray:
    """The exact colour of a = 12, b = 24 on ``light``: (H, W, 3) float32 sRGB."""
    chroma = torch.zeros(2, *light.shape)
    chroma[0], chroma[1] = 12.0, 24.0
    return reconstruct(chroma, torch.from_numpy(light), light, out_dtype=np.float32)


def test_carried_rounding_is_steadier_along_the_flow_than_rounding_each_frame():
    lights, grays = _grainy_clip(8)
    own, carried_frames = [], []
    previous = None
    for i, light in enumerate(lights):
        exact = _exact(light)
        own.append(round_frame(exact, light, None)[0])
        carried = None
        if previous is not None:
            motion = estimate_motion(grays[i - 1], grays[i], FlowSettings())
            carried = carry_error(previous, motion)
        rgb, previous = round_frame(exact, light, carried)
        carried_frames.append(rgb)
    alone = warp_error(own, guide=lights)
    together = warp_error(carried_frames, guide=lights)
    assert alone > 0.1  # grain moves the rounding of one steady colour from frame to frame
    assert together < 0.8 * alone
    assert np.array_equal(own[0], carried_frames[0])  # nothing to carry on the first frame


def test_first_frame_is_the_chroma_keeping_rounding_and_carried_frames_keep_l_and_levels():
    lights, grays = _grainy_clip(2, seed=1)
    exact = _exact(lights[0])
    chroma = torch.zeros(2, *lights[0].shape)
    chroma[0], chroma[1] = 12.0, 24.0
    plain = reconstruct(
        chroma, torch.from_numpy(lights[0]), lights[0], out_dtype=np.uint8, rounding="chroma"
    )
    rgb, error = round_frame(exact, lights[0], None)
    assert np.array_equal(rgb, plain)
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1) / 255.0).numpy()
    exact_ab = rgb_to_lab(torch.from_numpy(exact).permute(2, 0, 1)).numpy()[1:]
    assert np.allclose(error, (lab[1:] - exact_ab).transpose(1, 2, 0), atol=5e-3)  # 1st order

    motion = estimate_motion(grays[0], grays[1], FlowSettings())
    exact = _exact(lights[1])
    out, _ = round_frame(exact, lights[1], carry_error(error, motion))
    assert np.abs(out.astype(np.float32) - exact * 255.0).max() < 1.0  # at most a level off
    light_error = np.abs(
        rgb_to_lab(torch.from_numpy(out).permute(2, 0, 1) / 255.0)[0].numpy() - lights[1]
    )
    nearest = np.rint(exact * 255.0) / 255.0
    nearest_error = np.abs(
        rgb_to_lab(torch.from_numpy(nearest).permute(2, 0, 1).float())[0].numpy() - lights[1]
    )
    bound = np.maximum(nearest_error, half_level(torch.from_numpy(lights[1])).numpy())
    assert (light_error <= bound + 1e-3).all()  # L kept as well as nearest rounding keeps it


def test_carry_error_follows_a_smaller_grid_and_drops_what_the_flow_fails():
    error = np.zeros((40, 60, 2), np.float16)
    error[:, 30:, 0] = 0.5
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float32)
    reliability = np.ones((20, 30), np.float32)
    reliability[:10] = 0.0
    motion = Motion(xs - 2.0, ys, np.ones((20, 30), bool), reliability)  # 2 grid px = 4 px
    carried = carry_error(error, motion)
    assert carried.shape == (40, 60, 2) and carried.dtype == np.float32
    assert np.abs(carried[:18]).max() == 0.0  # unreliable half: nothing carried
    assert carried[30, 40, 0] == pytest.approx(0.5)
    assert carried[30, 31, 0] == pytest.approx(0.0)  # came from x = 27: no error there
    assert carried[30, 20, 0] == 0.0


def test_the_setting_is_checked_and_the_error_is_part_of_the_saved_state():
    with pytest.raises(InputError, match="carry_rounding: expected True or False"):
        Stabilization(carry_rounding="yes")
    assert Stabilization().record()["carry_rounding"] is True
    rounding = np.full((6, 8, 2), 0.25, np.float16)
    state = StabilizerState(np.zeros((3, 4), np.uint8), np.zeros((3, 4, 2), np.float32),
                            rounding=rounding)  # fmt: skip
    again = StabilizerState.from_arrays(state.to_arrays())
    assert again.rounding.dtype == np.float16 and np.array_equal(again.rounding, rounding)
    assert again.delta is None
    plain = StabilizerState.from_arrays(
        StabilizerState(state.gray, state.ab).to_arrays()
    )  # a state saved before the rounding was carried
    assert plain.rounding is None


def test_only_the_last_chunks_state_is_kept_and_resuming_from_it_gives_the_same_frames(
    tmp_path,
):
    import cv2

    from instacolor import Colorizer
    from instacolor.video import colorize_video

    torch.set_num_threads(1)
    colorizer = Colorizer(working_size=32)
    folder = tmp_path / "in"
    folder.mkdir()
    _, grays = _grainy_clip(9, seed=2)
    for i, gray in enumerate(grays):
        cv2.imwrite(str(folder / f"f{i}.png"), gray)
    colorize_video(folder, tmp_path / "whole", colorizer=colorizer, chunk=2)

    def stop(done, total):
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(folder, tmp_path / "out", colorizer=colorizer, chunk=2, progress=stop)
    parts = tmp_path / ".out.parts"
    markers = sorted(p.stem for p in parts.glob("chunk-*.json"))
    states = sorted(p.stem for p in parts.glob("chunk-*.npz"))
    assert len(markers) >= 2 and states == markers[-1:]  # one state: the last chunk's
    with np.load(parts / f"{states[0]}.npz") as arrays:
        assert arrays["rounding"].shape == (72, 128, 2)
        assert arrays["rounding"].dtype == np.float16
        assert np.abs(arrays["rounding"]).max() > 0  # 8-bit frames: a real rounding error
    report = colorize_video(folder, tmp_path / "out", colorizer=colorizer, chunk=2, resume=True)
    assert report.resumed_from == 2 * len(markers)
    for i in range(9):
        name = f"f{i}.png"
        whole = cv2.imread(str(tmp_path / "whole" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED), whole)
