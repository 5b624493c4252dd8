"""Small generated clips for the video tests: moving shapes of known colours, a cut, audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: Colours of the shapes (sRGB 0-255) and the background.
RED, BLUE, BACKGROUND = (200, 40, 30), (40, 60, 200), (90, 140, 70)


def shapes_frame(index: int, height: int = 72, width: int = 128, scene: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8 colour frame: a red square and a blue disc moving on green."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:] = BACKGROUND if scene == 0 else (150, 150, 40)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb[(yy // 8 + xx // 8) % 2 == 0] //= 2  # texture, so that the flow has something to see
    x0 = 8 + 2 * index
    rgb[20:44, x0 : x0 + 24] = RED
    cx, cy = width - 30 - index, 48
    rgb[(xx - cx) ** 2 + (yy - cy) ** 2 < 12**2] = BLUE
    return rgb


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB uint8 frame (as a video's Y would carry it)."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def write_clip(
    path: Path,
    frames: int = 12,
    *,
    cut_at: int | None = None,
    audio: bool = False,
    subtitles: bool = False,
    rate: int = 24,
    gray: bool = True,
) -> None:
    """Write a clip with PyAV (H.264 in mp4/mkv/mov, MPEG-4 in avi; AAC audio)."""
    import av

    container = av.open(str(path), "w")
    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    video = container.add_stream(codec, rate=rate)
    video.width, video.height, video.pix_fmt = 128, 72, "yuv420p"
    sound = None
    if audio:
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
    text = None
    if subtitles:  # an ASS stream (FFmpeg's subrip encoder refuses raw packets)
        text = container.add_stream("ass")
        text.time_base = text.codec_context.time_base = Fraction(1, 1000)
    for i in range(frames):
        scene = 1 if cut_at is not None and i >= cut_at else 0
        rgb = shapes_frame(i, scene=scene)
        if gray:
            rgb = np.repeat(to_gray(rgb)[..., None], 3, axis=2)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if sound is not None:
        samples = 48000 * frames // rate
        tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[None, start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    if text is not None:
        packet = av.Packet(b"0,0,Default,,0,0,0,,hello")
        packet.stream, packet.pts, packet.dts, packet.duration = text, 0, 0, 500
        packet.time_base = Fraction(1, 1000)
        container.mux(packet)
    container.close()
