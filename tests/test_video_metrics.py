"""instacolor.video.metrics.warp_error: the flow of the input (``guide=``) or of each output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from instacolor.color import lab_to_rgb
from instacolor.errors import InputError
from instacolor.video.metrics import _ab, chroma_warp_error, warp_error

H, W, N = 64, 96, 5


def _texture(seed: int) -> np.ndarray:
    """A smooth random texture, wider than a frame so that it can slide."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (H // 4 + 1, (W + 4 * N) // 4 + 1)).astype(np.float32)
    return cv2.resize(coarse, (W + 4 * N, H), interpolation=cv2.INTER_CUBIC)


def _clip(output_light_moves: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Input L planes sliding 3 px a frame; outputs whose chroma slides with them.

    The output's own L slides with the input (``True``) or is another, still texture
    (``False``): then the flow on the output's L says "nothing moves" while its colours move.
    """
    moving, still = _texture(0), _texture(1)
    lights, frames = [], []
    for i in range(N):
        light = 30.0 + 40.0 * moving[:, 3 * i : 3 * i + W]
        out_light = light if output_light_moves else 30.0 + 40.0 * still[:, :W]
        a = -25.0 + 50.0 * moving[:, 3 * i : 3 * i + W]  # the colour follows the content
        lab = torch.from_numpy(np.stack([out_light, a, np.full_like(a, 10.0)])).double()
        rgb = lab_to_rgb(lab).clamp(0, 1).permute(1, 2, 0).numpy()
        lights.append(light.astype(np.float32))
        frames.append(np.round(rgb * 65535.0).astype(np.uint16))
    return lights, frames


def test_two_outputs_of_one_input_are_measured_along_the_input_flow():
    lights, follows = _clip(output_light_moves=True)
    _, still = _clip(output_light_moves=False)
    own = [warp_error(follows), warp_error(still)]
    along = [warp_error(follows, guide=lights), warp_error(still, guide=lights)]
    # on its own L the second output seems not to move: its moving colours count as flicker
    assert own[1] > 4 * own[0] and own[1] > 1.0
    # along the input's flow both outputs follow the content: low and nearly equal
    assert along[1] < 0.25 * own[1]
    assert abs(along[0] - along[1]) < 0.1
    assert along[0] == pytest.approx(own[0], abs=0.05)  # output L = input L: same flow


def test_guide_as_gray_levels_float_light_or_rgb_gives_one_score():
    lights, frames = _clip(output_light_moves=False)
    gray = [np.clip(x * 2.55 + 0.5, 0, 255).astype(np.uint8) for x in lights]
    rgb = [np.repeat(g[..., None], 3, axis=2) for g in gray]
    scores = {warp_error(frames, guide=g) for g in (lights, gray)}
    assert len(scores) == 1
    assert warp_error(frames, guide=rgb) == pytest.approx(scores.pop(), abs=0.02)


@pytest.mark.parametrize("count", [N - 1, N + 1])
def test_guide_of_another_count_is_refused(count):
    lights, frames = _clip(output_light_moves=True)
    guide = (lights * 2)[:count]
    with pytest.raises(InputError, match=rf"expected one guide frame per frame.*received {count}"):
        warp_error(frames, guide=guide)


def test_guide_of_another_size_or_kind_is_refused():
    lights, frames = _clip(output_light_moves=True)
    small = [x[:-2] for x in lights]
    with pytest.raises(
        InputError, match=rf"expected guide frame 0 .*{W}x{H}; received {W}x{H - 2}"
    ):
        warp_error(frames, guide=small)
    with pytest.raises(InputError, match=r"expected guide frames as .*received int64"):
        warp_error(frames, guide=[x.astype(np.int64) for x in lights])


def test_without_guide_the_flow_runs_on_each_output():
    _, frames = _clip(output_light_moves=True)
    frames8 = [(f >> 8).astype(np.uint8) for f in frames]
    assert warp_error(frames8) == pytest.approx(warp_error(frames8, guide=frames8), abs=1e-9)


def test_chroma_planes_score_as_the_frames_holding_them():
    lights, frames = _clip(output_light_moves=True)
    planes = [_ab(f) for f in frames]
    assert chroma_warp_error(planes, lights) == warp_error(frames, guide=lights)
    with pytest.raises(InputError, match="one guide frame per chroma plane"):
        chroma_warp_error(planes, lights[:-1])
