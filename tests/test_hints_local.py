"""A hint stays on its object; many hints that agree still correct the whole image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from instacolor import Colorizer, Hints, Lab
from instacolor.color import rgb_to_lab
from instacolor.hints import WORKING_REACH, HintSettings
from instacolor.hints.apply import spread
from instacolor.hints.reference import ReferenceMatch


def _ab(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(torch.from_numpy(rgb / 255.0).permute(2, 0, 1)).numpy()[1:]


@pytest.fixture(scope="module")
def shipped():
    return Colorizer("default", working_size=64)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 96x128 L plane: a bright disk (the object) on a textured darker ground."""
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (yy - 48) ** 2 + (xx - 40) ** 2 < 16**2
    rng = np.random.default_rng(0)
    ground = 35.0 + 10.0 * yy / h + rng.normal(0, 0.5, (h, w))
    return np.where(disk, 70.0, ground).astype(np.float32), disk


def _change(colorizer, light, hints) -> np.ndarray:
    plain = colorizer.colorize_light(light, out_dtype=np.uint8).image
    hinted = colorizer.colorize_light(light, hints=hints, out_dtype=np.uint8).image
    return np.sqrt(((_ab(hinted) - _ab(plain)) ** 2).sum(0))


def test_one_hint_colours_its_object_and_not_the_rest(shipped):
    light, disk = _scene()
    delta = _change(shipped, light, [(40, 48, "#d02020", 1)])
    outside = ~ndimage.binary_dilation(disk, iterations=4)
    assert delta[disk].mean() >= 15.0
    assert (delta[outside] > 6.0).mean() <= 0.10


def test_one_hint_fades_with_distance_in_a_flat_image(shipped):
    light = np.full((96, 96), 55.0, np.float32)
    delta = _change(shipped, light, [(8, 8, Lab(40.0, 40.0))])
    assert delta[6:11, 6:11].max() > 25.0  # the hinted spot (guided upsampling blurs it)
    assert delta[60:, 60:].max() < 3.0  # no edge in between: distance alone stops it


def test_the_old_global_reach_would_recolour_the_ground(shipped):
    """The measurement above can fail: one grid side of reach spreads the hint everywhere."""
    light, disk = _scene()
    wide = Colorizer("default", working_size=64)
    wide.hinting = HintSettings(reach=1.0)
    delta = _change(wide, light, [(40, 48, "#d02020", 1)])
    outside = ~ndimage.binary_dilation(disk, iterations=4)
    assert (delta[outside] > 6.0).mean() > 0.5
    assert WORKING_REACH < 0.5


def test_many_agreeing_hints_correct_the_whole_image(shipped):
    light = np.tile(np.linspace(40, 70, 96, dtype=np.float32), (96, 1))
    points = [(x, y, Lab(30.0, 30.0)) for x in (10, 48, 85) for y in (10, 85)]
    delta = _change(shipped, light, Hints(points=points))
    # the centre is far from every point (beyond the local reach), yet moves: the fit
    assert delta[40:56, 20:76].mean() > 15.0


def test_the_fall_off_length_grows_with_the_square_root_of_the_points():
    settings = HintSettings()
    assert settings.length(1, 128) == pytest.approx(WORKING_REACH * 128)
    assert settings.length(4, 128) == pytest.approx(2 * WORKING_REACH * 128)
    assert settings.length(1000, 128) == 128.0
    assert HintSettings(reach=None).length(3, 128) is None


def _matched(blocks: list[tuple[int, int]], s: int = 64) -> ReferenceMatch:
    """Reference matches fixing ``(2, s, s)`` cells to one blue in the given 8x8-cell blocks."""
    known = np.zeros((s, s), bool)
    for by, bx in blocks:
        known[by * 8 : by * 8 + 4, bx * 8 : bx * 8 + 4] = True
    ab = np.where(known, np.array([10.0, -40.0], np.float32)[:, None, None], 0.0)
    return ReferenceMatch(known=known, ab=ab.astype(np.float32), confidence=known * 1.0)


def _moved(match: ReferenceMatch) -> np.ndarray:
    s = match.known.shape[0]
    ab = torch.zeros(2, s, s)
    light = np.full((s, s), 55.0, np.float32)
    out = HintSettings().propagate(ab, light, None, None, (s, s), match=match)
    return np.sqrt((out.numpy() ** 2).sum(0))


def test_matches_in_one_region_colour_that_region_and_not_the_whole_image():
    # 16 cells of one region (a wall of a reference): no global fit, no reach across
    moved = _moved(_matched([(0, 0), (0, 1)]))
    assert moved[:4, :4].min() > 40.0
    assert moved[40:, 40:].max() < 3.0
    assert spread(_matched([(0, 0), (0, 1)]).known) == 2


def test_matches_spread_over_the_image_still_correct_all_of_it():
    moved = _moved(_matched([(0, 0), (0, 7), (7, 0), (7, 7), (3, 3)]))
    assert moved[28:36, 10:20].mean() > 15.0  # between the regions, beyond a point's reach
