"""instacolor.video: flow, stabiliser, frame folders, video files with audio, errors, resume."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from instacolor import Colorizer  # noqa: E402
from instacolor.color import rgb_to_l  # noqa: E402
from instacolor.errors import DecodeError, InputError, UsageError  # noqa: E402
from instacolor.video import Stabilization, colorize_frames, colorize_video  # noqa: E402
from instacolor.video.flow import FlowSettings, estimate_motion  # noqa: E402
from instacolor.video.metrics import _ab, cdc, js_divergence, warp_error  # noqa: E402
from instacolor.video.temporal import Stabilizer  # noqa: E402
from tests.video_clips import shapes_frame, to_gray, write_clip  # noqa: E402


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    torch.set_num_threads(1)
    return Colorizer(working_size=32)


def _gray_frames(n: int, cut_at: int | None = None) -> list[np.ndarray]:
    return [
        to_gray(shapes_frame(i, scene=int(cut_at is not None and i >= cut_at))) for i in range(n)
    ]


def _light(rgb: np.ndarray) -> np.ndarray:
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return rgb_to_l(torch.from_numpy(rgb.astype(np.float64) / scale).permute(2, 0, 1))[0].numpy()


def _write_folder(folder: Path, frames: list[np.ndarray], depth: int = 8) -> None:
    folder.mkdir()
    for i, gray in enumerate(frames):
        plane = gray.astype(np.uint16) * 257 if depth == 16 else gray
        cv2.imwrite(str(folder / f"frame{i}.png"), plane)


def test_flow_follows_a_moving_square_and_masks_what_appears():
    previous, current = np.full((48, 64), 60, np.uint8), np.full((48, 64), 60, np.uint8)
    yy, xx = np.mgrid[0:48, 0:64]
    texture = ((yy // 4 + xx // 4) % 2 * 80 + 100).astype(np.uint8)
    previous[10:30, 10:30] = texture[10:30, 10:30]
    current[10:30, 14:34] = texture[10:30, 10:30]
    motion = estimate_motion(previous, current, FlowSettings(preset="medium"))
    inside = motion.map_x[14:26, 18:30] - np.arange(18, 30)[None, :]
    assert abs(float(np.median(inside)) + 4) < 0.5  # came from 4 pixels to the left
    assert motion.reliability[14:26, 18:30].mean() > 0.8
    assert motion.reliability.min() >= 0 and motion.reliability.max() <= 1


def test_stabilizer_halves_flicker_and_resets_at_a_cut():
    frames = _gray_frames(12, cut_at=8)
    stab = Stabilizer(Stabilization(memory=0.85))
    base = np.zeros((72, 128, 2), np.float32)
    outputs, cuts = [], []
    for i, gray in enumerate(frames):
        net = base + (12.0 if i % 2 else -12.0)  # the network flickers by 24 Lab units
        step = stab.step(gray, net)
        outputs.append(step.ab)
        cuts.append(step.cut)
    assert cuts == [True] + [False] * 7 + [True] + [False] * 3
    swing = np.abs(outputs[6] - outputs[7])[30:40, 60:70].mean()
    assert swing < 12.0  # at least half the per-frame swing of 24 is gone
    assert np.array_equal(outputs[8], base - 12.0)  # the cut takes the network's colour


def test_default_memory_is_steadier_than_0_85_and_follows_a_real_change_at_once():
    frames = [to_gray(shapes_frame(i)) for i in range(40)]
    base = np.zeros((72, 128, 2), np.float32)

    def run(settings: Stabilization, nets) -> list[np.ndarray]:
        stab = Stabilizer(settings)
        return [stab.step(gray, net).ab for gray, net in zip(frames, nets, strict=True)]

    flicker = [base + (12.0 if i % 2 else -12.0) for i in range(40)]
    settings = [Stabilization(), Stabilization(follow=0.0), Stabilization(memory=0.85, follow=0.0)]
    swings = [np.abs(out[20] - out[21])[2:16].mean() for out in (run(s, flicker) for s in settings)]
    assert (Stabilization().memory, Stabilization().follow) == (0.99, 4.0)
    assert Stabilization().flow.preset == "medium"
    assert swings[1] < 0.5 * swings[2]  # the static top band: 0.2 against 2.0 Lab
    # a 24 Lab flicker is departure enough to open the innovation gate a little: 3.2 Lab left
    assert swings[0] < 0.2 * 24.0
    change = [base + (0.0 if i < 5 else 20.0) for i in range(40)]  # the colour really changes
    out, plain = run(Stabilization(), change), run(settings[1], change)
    assert out[4][2:16].mean() == 0.0
    assert out[8][2:16, ..., 0].mean() > 18.0  # the gate: most of the way 3 frames on
    assert plain[8][2:16, ..., 0].mean() < 2.0  # memory 0.99 alone: hardly moved
    assert 19.5 < out[39][2:16, ..., 0].mean() <= 20.0


def test_8_bit_rounding_leaves_a_warp_error_floor_that_16_bits_do_not():
    from instacolor.reconstruct import reconstruct

    rng = np.random.default_rng(0)
    lights = [  # with a little grain, as on film: the luminance under a point changes
        np.clip(_light(np.stack([to_gray(shapes_frame(i))] * 3, axis=2)), 1, 99).astype(np.float32)
        + rng.normal(0, 0.3, (72, 128)).astype(np.float32)
        for i in range(6)
    ]
    chroma = torch.zeros(2, 72, 128)
    chroma[0], chroma[1] = 10.0, 20.0  # one steady colour on every pixel of every frame
    errors = [
        warp_error([reconstruct(chroma, torch.from_numpy(x), x, out_dtype=dt) for x in lights])
        for dt in (np.uint8, np.uint16)
    ]
    assert errors[0] > 0.05  # 8-bit RGB moves the chroma as the luminance under it moves
    assert errors[1] < 0.25 * errors[0]


def test_keyframe_hint_correction_is_carried_through_the_shot():
    frames = _gray_frames(5)
    stab = Stabilizer(Stabilization(memory=0.0))  # no memory: only the hint is carried
    net = np.zeros((72, 128, 2), np.float32)
    hinted = net.copy()
    hinted[..., 0] = 30.0
    stab.step(frames[0], net, hinted=hinted)
    later = [stab.step(frame, net).ab for frame in frames[1:]]
    assert later[-1][5:15, 5:15, 0].mean() > 25.0  # static background keeps the hint
    assert abs(later[-1][..., 1]).max() < 1e-4


def test_metrics_rank_flicker_above_steady_colour():
    steady = [np.stack([to_gray(shapes_frame(i))] * 3, axis=2) for i in range(6)]
    tint, swing = np.array([20, 0, -20]), np.array([-30, 10, 30])
    steady = [np.clip(f.astype(int) + tint, 0, 255).astype(np.uint8) for f in steady]
    flicker = [
        np.clip(f.astype(int) + (i % 2) * swing, 0, 255).astype(np.uint8)
        for i, f in enumerate(steady)
    ]
    assert warp_error(steady) < 0.5 * warp_error(flicker)
    assert cdc(steady) < cdc(flicker)
    p = np.full(256, 1 / 256)
    assert js_divergence(p, p) == 0.0


@pytest.mark.parametrize("depth", [8, 16])
def test_frame_folder_keeps_names_depth_and_luminance(tmp_path, colorizer, depth):
    frames = _gray_frames(6)
    _write_folder(tmp_path / "in", frames, depth)
    report = colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, chunk=4)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"frame{i}.png" for i in range(6))
    assert report.frames == 6 and report.shots == 1
    for i, gray in enumerate(frames):
        rgb = cv2.imread(str(tmp_path / "out" / f"frame{i}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
        assert rgb.dtype == (np.uint16 if depth == 16 else np.uint8)
        source = gray.astype(np.uint16) * 257 if depth == 16 else gray
        expected = _light(np.stack([source] * 3, axis=2))
        # the image pipeline's guarantee: L kept up to the output's quantisation
        assert np.abs(_light(rgb) - expected).max() < (0.6 if depth == 8 else 0.01)
    assert not list(tmp_path.glob(".out*"))  # parts and partial folder gone
    record = json.loads((tmp_path / "out.manifest.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "done" and len(record["input_sha256"]) == 64
    assert record["settings"]["weights"] == colorizer.loaded.name
    assert record["weights_sha256"] == colorizer.loaded.sha256


def test_video_keeps_timestamps_and_copies_audio_packets(tmp_path, colorizer):
    source = tmp_path / "in.mp4"
    write_clip(source, 10, audio=True)
    colorize_video(source, tmp_path / "out.mp4", colorizer=colorizer, chunk=4)

    def streams(path):
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            pts = [f.pts * f.time_base for f in c.decode(v)]
        with av.open(str(path)) as c:
            a = c.streams.audio[0]
            audio = [(bytes(p), p.pts * p.time_base) for p in c.demux(a) if p.size]
        return pts, audio

    pts_in, audio_in = streams(source)
    pts_out, audio_out = streams(tmp_path / "out.mp4")
    assert pts_out == pts_in and len(pts_in) == 10
    assert audio_out == audio_in and audio_in


def test_colorize_frames_api_streams_arrays_of_the_input_dtype(colorizer):
    frames = _gray_frames(4)
    plain = list(colorize_frames(frames, colorizer=colorizer, stabilize=False))
    steady = list(colorize_frames(iter(frames), colorizer=colorizer))
    assert [f.shape for f in steady] == [(72, 128, 3)] * 4 and steady[0].dtype == np.uint8
    assert np.array_equal(plain[0], steady[0])  # the first frame of a shot is the network's
    with pytest.raises(InputError, match="either a colorizer or colorizer options"):
        next(colorize_frames(frames, colorizer=colorizer, saturation=2.0))


def test_unreadable_input_and_unknown_codec_are_clear_errors(tmp_path, colorizer):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(DecodeError, match="cannot open"):
        colorize_video(bad, tmp_path / "out.mp4", colorizer=colorizer)
    truncated = tmp_path / "cut.mp4"
    write_clip(tmp_path / "whole.mp4", 6)
    truncated.write_bytes((tmp_path / "whole.mp4").read_bytes()[:200])
    with pytest.raises(DecodeError):
        colorize_video(truncated, tmp_path / "out.mp4", colorizer=colorizer)
    with pytest.raises(UsageError, match="extension"):
        colorize_video(tmp_path / "whole.mp4", tmp_path / "out.webm", colorizer=colorizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "notes.mp4", "whole.mp4"]


def test_existing_output_and_unholdable_subtitles_are_refused_untouched(tmp_path, colorizer):
    source = tmp_path / "in.mkv"
    write_clip(source, 4, subtitles=True)
    existing = tmp_path / "out.mkv"
    existing.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="already exists"):
        colorize_video(source, existing, colorizer=colorizer)
    assert existing.read_bytes() == b"keep me"
    original = source.read_bytes()
    with pytest.raises(UsageError, match="must not be the input"):  # even with overwrite
        colorize_video(source, tmp_path / "." / "in.mkv", colorizer=colorizer, overwrite=True)
    assert source.read_bytes() == original
    with pytest.raises(UsageError, match="subtitle stream"):
        colorize_video(source, tmp_path / "new.mp4", colorizer=colorizer)  # ASS: not in mp4
    assert not (tmp_path / "new.mp4").exists() and not list(tmp_path.glob(".new*"))
    colorize_video(source, tmp_path / "new.mkv", colorizer=colorizer)  # mkv holds it

    def subtitles(path):
        with av.open(str(path)) as c:
            return [(bytes(p), p.pts) for p in c.demux(c.streams.subtitles[0]) if p.size]

    assert subtitles(tmp_path / "new.mkv") == subtitles(source) != []


def test_bad_hints_lines_are_named(tmp_path, colorizer):
    _write_folder(tmp_path / "in", _gray_frames(2))
    hints = tmp_path / "hints.jsonl"
    hints.write_text('{"frame": 0, "points": [[5, 5, "#ff0000"]]}\n{"frame": -1, "points": []}\n')
    with pytest.raises(UsageError, match="line 2"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, hints=hints)
    hints.write_text('{"frame": 0, "points": [[500, 5, "#ff0000"]]}\n')
    with pytest.raises(UsageError, match="line 1"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, hints=hints)
    assert not (tmp_path / "out").exists()


def test_interrupted_run_resumes_to_the_same_frames(tmp_path, colorizer):
    _write_folder(tmp_path / "in", _gray_frames(10))
    colorize_video(tmp_path / "in", tmp_path / "whole", colorizer=colorizer, chunk=4)

    def stop(done, total):
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, chunk=4,
                       progress=stop)  # fmt: skip
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="resume"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, chunk=4)
    with pytest.raises(UsageError, match="cannot resume"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, chunk=5,
                       resume=True)  # fmt: skip
    report = colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, chunk=4,
                            resume=True)  # fmt: skip
    assert report.resumed_from == 4  # chunk 0 kept, chunk 1 (frames 4-7) redone
    for i in range(10):
        name = f"frame{i}.png"
        whole = cv2.imread(str(tmp_path / "whole" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED), whole)


def test_frames_that_would_share_a_png_name_and_overlong_outputs_are_refused(tmp_path, colorizer):
    frames = _gray_frames(2)
    _write_folder(tmp_path / "in", frames)
    cv2.imwrite(str(tmp_path / "in" / "frame0.tif"), frames[1])  # frame0.png and frame0.tif
    with pytest.raises(UsageError, match=r"'frame0\.png' and 'frame0\.tif'"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer)
    (tmp_path / "in" / "frame0.tif").unlink()
    with pytest.raises(UsageError, match="at most 240 bytes"):
        colorize_video(tmp_path / "in", tmp_path / ("é" * 121), colorizer=colorizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("kind", ["fifo", "dangling link", "folder"])
def test_a_frame_name_that_is_not_a_file_is_refused_before_anything_is_written(
    tmp_path, colorizer, kind
):
    _write_folder(tmp_path / "in", _gray_frames(3))
    odd = tmp_path / "in" / "frame 0001b.png"  # would sort between the frames
    if kind == "fifo":
        os.mkfifo(odd)  # never opened: nobody writes it
    elif kind == "dangling link":
        odd.symlink_to(tmp_path / "gone.png")
    else:
        odd.mkdir()
    with pytest.raises(InputError, match=r"'frame 0001b.png', which is not a regular file"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_reference_colours_the_shot_start_and_are_carried_through_the_shot(colorizer):
    frames = _gray_frames(6)
    plain = list(colorize_frames(frames, colorizer=colorizer))
    guided = list(colorize_frames(frames, colorizer=colorizer, reference=shapes_frame(0)))
    for i in (0, 5):  # chroma error (Lab) against the scene's true colours
        truth = _ab(shapes_frame(i))
        error_plain = np.linalg.norm(_ab(plain[i]) - truth, axis=2).mean()
        error_guided = np.linalg.norm(_ab(guided[i]) - truth, axis=2).mean()
        assert error_guided < 0.6 * error_plain, (i, error_guided, error_plain)


def test_gray_or_missing_reference_is_refused_before_anything_is_written(tmp_path, colorizer):
    _write_folder(tmp_path / "in", _gray_frames(2))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), _gray_frames(1)[0])
    with pytest.raises(InputError, match="expected a colour photograph"):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer, reference=gray)
    with pytest.raises(InputError):
        colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer,
                       reference=tmp_path / "missing.png")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.png", "in"]
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), shapes_frame(0)[..., ::-1])
    report = colorize_video(tmp_path / "in", tmp_path / "out", colorizer=colorizer,
                            reference=[colour])  # fmt: skip
    digest = hashlib.sha256(colour.read_bytes()).hexdigest()
    assert report.record["settings"]["references_sha256"] == [digest]
