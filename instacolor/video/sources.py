"""Frames in: a video file through PyAV, or a folder of PNG/TIFF frames.

A source yields :class:`Frame` objects one at a time (never the whole film in memory):
the frame's CIE L at full resolution, its index and its presentation timestamp.

* **Video files** (mp4, mov, mkv, avi, anything FFmpeg demuxes): the first video
  stream is decoded; each frame's gray level (FFmpeg's luma, 8 bits, or 16 bits for
  sources of more than 8 bits a sample) is turned into L as for a neutral sRGB gray
  (:func:`~instacolor.color.gray_to_l`), so a gray film keeps its tones and a colour film
  gives its luma. The stream's time base, frame rate and every frame's timestamp are
  kept for the output.
* **Frame folders**: the PNG and TIFF files directly in the folder, in natural order of
  their names (``frame2`` before ``frame10``), each read by the archival reader
  (:func:`~instacolor.io.archival.read_scan`: ICC to sRGB, 8 or 16 bits kept). Every
  frame must have the size of the first.

Example:
    >>> import numpy as np
    >>> LUT8.shape, round(float(LUT8[128]), 2)
    ((256,), 53.59)
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from instacolor.color import gray_to_l
from instacolor.errors import DecodeError, InputError, MissingDependencyError

__all__ = ["FRAME_SUFFIXES", "Frame", "SourceInfo", "file_sha256", "frame_names", "open_source"]

FRAME_SUFFIXES = (".png", ".tif", ".tiff")
LUT8 = gray_to_l(torch.arange(256, dtype=torch.float64) / 255.0).float().numpy()
_LUT16: np.ndarray | None = None


def _lut16() -> np.ndarray:
    global _LUT16
    if _LUT16 is None:
        _LUT16 = gray_to_l(torch.arange(65536, dtype=torch.float64) / 65535.0).float().numpy()
    return _LUT16


def import_av():
    """PyAV, or a :class:`MissingDependencyError` saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            f"video needs PyAV (FFmpeg bindings), which did not import ({exc}); install it "
            "with: pip install av"
        ) from exc
    return av


@dataclass(frozen=True, eq=False)
class Frame:
    """One input frame.

    Attributes:
        index: position in the source, from 0.
        light: ``(H, W)`` float32 CIE L in ``[0, 100]``.
        pts: presentation timestamp in the source's time base (None for frame folders
            and frames without one).
        name: file name of the frame (frame folders), else None.
    """

    index: int
    light: np.ndarray
    pts: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What is known about a source before its frames are read.

    Attributes:
        path: the input path.
        kind: ``"video"`` or ``"folder"``.
        width, height: frame size in pixels.
        frames: number of frames (video: the container's count or an estimate from the
            duration; 0 when unknown).
        rate: frames per second (None when unknown).
        time_base: time base of the video stream's timestamps (None for folders).
        bit_depth: 8 or 16, the precision outputs get.
    """

    path: Path
    kind: str
    width: int
    height: int
    frames: int
    rate: Fraction | None
    time_base: Fraction | None
    bit_depth: int


def file_sha256(path: Path) -> str:
    """sha256 of a file, or for a frame folder of its frames' names and digests."""
    if path.is_dir():
        digest = hashlib.sha256()
        for name in frame_names(path):
            digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
            digest.update(bytes.fromhex(file_sha256(path / name)) + b"\n")
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_names(folder: Path) -> list[str]:
    """The PNG/TIFF file names directly in ``folder``, in natural order.

    Raises:
        InputError: a name with a frame's suffix is not a regular file (a FIFO, a device,
            a folder, a dangling link): a frame would go missing without a word.
    """
    names = []
    for entry in os.scandir(folder):
        if not entry.name.lower().endswith(FRAME_SUFFIXES):
            continue
        if not entry.is_file():
            raise InputError(
                f"{folder}: expected every .png, .tif and .tiff name of a frame folder to be "
                f"a frame file, received {entry.name[:200]!r}, which is not a regular file "
                "(a FIFO, device, folder or dangling link): move it out of the folder"
            )
        names.append(entry.name)
    return sorted(names, key=_natural)


def _open_container(path: Path):
    av = import_av()
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(
            f"{path}: expected a video file FFmpeg can read (mp4, mov, mkv, avi...) or a folder "
            f"of PNG/TIFF frames, received a file it cannot open ({exc}); check that the file "
            "is complete and is a video"
        ) from exc
    if not container.streams.video:
        container.close()
        raise DecodeError(
            f"{path}: expected a file with a video stream, received one without any "
            f"(streams: {[s.type for s in container.streams]})"
        )
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise DecodeError(f"{path}: the video stream's codec is not supported by this FFmpeg")
    return container, stream


def _video_info(path: Path) -> SourceInfo:
    container, stream = _open_container(path)
    try:
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        frames = int(stream.frames or 0)
        if not frames and stream.duration and rate:
            frames = round(float(stream.duration * stream.time_base * rate))
        depth = 16 if _deep(context.format) else 8
        if not context.width or not context.height:
            raise DecodeError(f"{path}: the video stream has no frame size; is it complete?")
        return SourceInfo(
            path, "video", context.width, context.height, frames,
            Fraction(rate) if rate else None, Fraction(stream.time_base), depth,
        )  # fmt: skip
    finally:
        container.close()


def _deep(video_format) -> bool:
    """Whether a pixel format has more than 8 bits a sample."""
    if video_format is None:
        return False
    return any(component.bits > 8 for component in video_format.components)


def _folder_info(path: Path, names: list[str]) -> SourceInfo:
    from instacolor.io.archival import read_scan

    first = read_scan(path / names[0], color_threshold=None)
    height, width = first.light.shape
    return SourceInfo(path, "folder", width, height, len(names), None, None, first.bit_depth)


def open_source(path: str | os.PathLike) -> tuple[SourceInfo, Iterator[Frame]]:
    """Open a video file or frame folder.

    Args:
        path: the video file or the folder of frames.

    Returns:
        ``(info, frames)``: the source's :class:`SourceInfo` and a lazy iterator of its
        frames (decoded one at a time; close it, or exhaust it, to release the file).

    Raises:
        InputError: ``path`` does not exist, or the folder holds no PNG/TIFF frame.
        DecodeError: the file is not a video FFmpeg can read, or has no video stream;
            while iterating: a frame that cannot be decoded, or a frame of another size.
        MissingDependencyError: PyAV is not installed (video files only).
    """
    path = Path(path)
    if path.is_dir():
        names = frame_names(path)
        if not names:
            raise InputError(
                f"{path}: expected a video file or a folder of PNG/TIFF frames, received a "
                "folder without .png, .tif or .tiff files"
            )
        info = _folder_info(path, names)
        return info, _folder_frames(info, names)
    if not path.is_file():
        raise InputError(f"{path}: expected an existing video file or frame folder; not found")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: expected a video file, received an empty file")
    info = _video_info(path)
    return info, _video_frames(info)


def _folder_frames(info: SourceInfo, names: list[str]) -> Iterator[Frame]:
    from instacolor.io.archival import read_scan

    for index, name in enumerate(names):
        scan = read_scan(info.path / name, color_threshold=None)
        if scan.light.shape != (info.height, info.width):
            raise DecodeError(
                f"{info.path / name}: expected a frame of {info.width}x{info.height} like the "
                f"first, received {scan.light.shape[1]}x{scan.light.shape[0]}; every frame of "
                "a folder must have one size"
            )
        yield Frame(index=index, light=scan.light, name=name)


def _video_frames(info: SourceInfo) -> Iterator[Frame]:
    av = import_av()
    container, stream = _open_container(info.path)
    stream.thread_type = "AUTO"
    lut = _lut16() if info.bit_depth == 16 else LUT8
    gray = "gray16le" if info.bit_depth == 16 else "gray"
    index = 0
    try:
        try:
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (info.width, info.height):
                    raise DecodeError(
                        f"{info.path}: frame {index} is {frame.width}x{frame.height}, expected "
                        f"{info.width}x{info.height}; streams that change size are not supported"
                    )
                plane = frame.to_ndarray(format=gray)
                yield Frame(index=index, light=lut[plane], pts=frame.pts)
                index += 1
        except av.FFmpegError as exc:
            raise DecodeError(
                f"{info.path}: frame {index} could not be decoded ({exc}); the file may be "
                "damaged or truncated there"
            ) from exc
    finally:
        container.close()


def check_readable(info: SourceInfo) -> None:
    """Raise if the source's frame size cannot be colorized."""
    if info.width < 2 or info.height < 2:
        raise InputError(
            f"{info.path}: expected frames of at least 2x2 pixels, received "
            f"{info.width}x{info.height}"
        )
