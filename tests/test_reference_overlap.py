"""Reference matching beside the networks: the same matches, torch's threads restored, a bad
reference read in the side lane refused as the reader refuses it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.color import rgb_to_lab
from instacolor.errors import DecodeError, InputError, InstacolorError
from instacolor.hints import match_beside, match_references, read_references


def _photo() -> np.ndarray:
    """A 96x128 colour photo stand-in: stripes, checks and grain in four colours."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128]
    tex = np.where(
        xx < 64, 0.5 + 0.4 * np.sin(xx / 3.0), 0.5 + 0.2 * rng.standard_normal((96, 128))
    )
    hue = np.where((yy < 48)[..., None], [1.0, 0.4, 0.3], [0.3, 0.5, 1.0])
    return (np.clip(tex, 0.05, 0.95)[..., None] * hue * 255).astype(np.uint8)


def _light(rgb: np.ndarray, side: int = 64) -> np.ndarray:
    small = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BILINEAR)) / 255.0
    return rgb_to_lab(torch.from_numpy(small).permute(2, 0, 1))[0].numpy().astype(np.float32)


@pytest.fixture
def two_threads(torch_threads):
    torch_threads(2)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.known, b.known)
    np.testing.assert_array_equal(a.ab, b.ab)


def test_beside_gives_the_matches_of_one_thread_and_restores_the_threads(two_threads):
    photo = _photo()
    reference = np.ascontiguousarray(photo[8:, ::-1])
    light = _light(photo)
    torch.set_num_threads(1)
    want = match_references(light, read_references(reference))
    torch.set_num_threads(2)
    seen = {}

    def networks():
        seen["threads"] = torch.get_num_threads()
        seen["thread"] = threading.current_thread()
        return "out"

    out, new = match_beside(light, read_references(reference), networks)
    assert out == "out" and seen["thread"] is threading.current_thread()
    assert seen["threads"] == 1  # the two lanes share the two cores
    assert torch.get_num_threads() == 2
    assert new.known.sum() > 10
    _same(new, want)
    kept = read_references(reference)
    for _ in range(2):  # encoded beside the first time, the target's pass beside then
        _, got = match_beside(light, kept, lambda: None)
        _same(got, want)
    assert set(kept[0]._cells) == {64}
    assert torch.get_num_threads() == 2


def test_one_torch_thread_runs_the_two_in_turn(torch_threads):
    torch_threads(1)
    names = []
    photo = _photo()
    _, got = match_beside(
        _light(photo), read_references(photo), lambda: names.append(threading.current_thread())
    )
    assert names == [threading.current_thread()] and torch.get_num_threads() == 1
    _same(got, match_references(_light(photo), read_references(photo)))


def test_an_error_of_the_networks_is_raised_and_the_threads_restored(two_threads):
    def broken():
        raise RuntimeError("the networks failed")

    kept = read_references(_photo())
    with pytest.raises(RuntimeError, match="the networks failed"):
        match_beside(_light(_photo()), kept, broken)
    assert torch.get_num_threads() == 2
    assert 64 in kept[0]._cells  # the side lane finished before the error came out


def test_a_colorizer_with_two_threads_matches_as_with_one(two_threads):
    from instacolor import Colorizer

    colorizer = Colorizer("default", working_size=64)
    photo = _photo()
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    reference = np.ascontiguousarray(photo[8:, ::-1])
    two = colorizer.colorize_full(gray, reference=reference)
    torch.set_num_threads(1)
    one = colorizer.colorize_full(gray, reference=reference)
    assert torch.get_num_threads() == 1
    np.testing.assert_array_equal(two.reference_map > 0, one.reference_map > 0)
    assert two.reference_map.max() > 0
    np.testing.assert_allclose(two.ab, one.ab, atol=0.05)


def test_more_threads_are_shared_between_the_lanes(torch_threads):
    torch_threads(4)
    seen = []
    photo = _photo()
    match_beside(
        _light(photo), read_references(photo), lambda: seen.append(torch.get_num_threads())
    )
    assert seen == [2] and torch.get_num_threads() == 4


# ---------------------------------------------------------------- reading in the side lane


def test_the_side_lane_reads_paths_arrays_and_pil_images_as_the_caller_would(two_threads, tmp_path):
    photo = _photo()
    path = tmp_path / "reference.png"
    Image.fromarray(np.ascontiguousarray(photo[8:, ::-1])).save(path)
    light = _light(photo)
    torch.set_num_threads(1)
    want = match_references(light, read_references([path, photo]))
    torch.set_num_threads(2)
    assert want.known.sum() > 10
    for given in ([path, photo], (str(path), Image.fromarray(photo))):
        _, got = match_beside(light, given, lambda: None)
        _same(got, want)
    assert torch.get_num_threads() == 2


def _bad_references(tmp_path) -> dict:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    return {
        "gray": np.full((48, 64, 3), 90, np.uint8),
        "gray second": [_photo(), np.full((48, 64, 3), 90, np.uint8)],
        "empty list": [],
        "missing file": tmp_path / "nowhere.jpg",
        "undecodable file": broken,
        "wrong type": 3,
    }


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "case", ["gray", "gray second", "empty list", "missing file", "undecodable file", "wrong type"]
)
def test_a_bad_reference_raises_the_readers_error_beside_or_not(
    torch_threads, tmp_path, threads, case
):
    torch_threads(threads)
    bad = _bad_references(tmp_path)[case]
    with pytest.raises(InstacolorError) as serial:
        read_references(bad)
    ran = []
    with pytest.raises(type(serial.value)) as beside:
        match_beside(_light(_photo()), bad, lambda: ran.append(torch.get_num_threads()))
    assert str(beside.value) == str(serial.value)  # the same clear message
    # two threads: read in the side lane, the error once the networks are done; one
    # thread: read first, nothing run
    assert ran == ([1] if threads == 2 else [])
    assert torch.get_num_threads() == threads
    assert (tmp_path / "broken.jpg").read_bytes() == b"not an image at all"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]  # nothing written


def test_a_colorizer_refuses_a_bad_reference_read_beside_and_writes_nothing(two_threads, tmp_path):
    from instacolor import Colorizer

    colorizer = Colorizer("default", working_size=64)
    gray = np.asarray(Image.fromarray(_photo()).convert("L"))
    bad = _bad_references(tmp_path)
    with pytest.raises(InputError, match="reference 0: expected a colour photograph"):
        colorizer.colorize_full(gray, reference=bad["gray"])
    with pytest.raises(DecodeError, match="could not decode"):
        colorizer.colorize(gray, reference=[bad["undecodable file"]])
    assert torch.get_num_threads() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]
    assert (tmp_path / "broken.jpg").read_bytes() == b"not an image at all"
    good = colorizer.colorize_full(gray, reference=_photo())  # the colorizer goes on
    assert good.reference_map.max() > 0
