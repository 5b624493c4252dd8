"""Frames out: PNG frame folders, and video files encoded in chunks then joined.

* **Frame folders** get one PNG a frame (8 or 16 bits, the source's precision): the
  input frame's name with ``.png`` for frame folders, ``000000.png``... for videos.
* **Video files**: each chunk of frames is encoded into its own segment (a ``.mov``
  file, which keeps the source's time base exactly) so that a killed run keeps its
  finished chunks; :func:`join_segments` then copies the segments' packets, and the
  source's audio and subtitle streams packet for packet (never re-encoded), into the
  output container, interleaved by time. The codec follows the output's extension
  (H.264 for mp4, mov and mkv, MPEG-4 Part 2 for avi); frames are converted to Y'CbCr
  with the BT.709 matrix and tagged so.

Example:
    >>> codec_for(Path("film.mkv"))
    'libx264'
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from instacolor.errors import DecodeError, InputError, UsageError
from instacolor.video.sources import SourceInfo, import_av

__all__ = ["CODECS", "SegmentWriter", "codec_for", "copied_streams", "join_segments", "write_png"]

#: Output video extensions and the encoder each gets.
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}
_COPIED = ("audio", "subtitle")


def codec_for(output: Path) -> str:
    """The encoder for an output video path (by its extension).

    Raises:
        UsageError: an extension that is not one of :data:`CODECS`.
    """
    codec = CODECS.get(output.suffix.lower())
    if codec is None:
        raise UsageError(
            f"{output.name}: expected an output ending in {', '.join(CODECS)} (a video) or a "
            f"folder for PNG frames, received the extension {output.suffix!r}"
        )
    return codec


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 or uint16 RGB frame as PNG (fast compression).

    Raises:
        InputError: a frame OpenCV cannot encode as PNG.
        OSError: the file cannot be written (from the file system: full disk, permissions).
    """
    ok, data = cv2.imencode(".png", rgb[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InputError(
            f"{path.name}: expected an (H, W, 3) uint8 or uint16 frame to encode as PNG, "
            f"received {rgb.shape} {rgb.dtype}"
        )
    with open(path, "wb") as handle:
        handle.write(data.tobytes())


def copied_streams(info: SourceInfo, output: Path) -> tuple[list[int], list[str]]:
    """Which source streams are copied into ``output``, and which are left out.

    Audio and subtitle streams are copied; a stream the output container cannot hold
    is refused before any frame is colorized.

    Returns:
        ``(indices, dropped)``: stream indices to copy, and ``"#index type codec"`` for
        the data and attachment streams that are not copied.

    Raises:
        UsageError: an audio or subtitle codec the output container cannot hold.
    """
    if info.kind != "video":
        return [], []
    av = import_av()
    container = av.open(str(info.path), "r")
    try:
        streams = [
            (s.index, s.type, s.codec_context.name if s.codec_context else None)
            for s in container.streams
        ]
        video_index = container.streams.video[0].index
    finally:
        container.close()
    probe = av.open(io.BytesIO(), "w", format=_format_name(output))
    try:
        supported = probe.supported_codecs
    finally:
        with contextlib.suppress(Exception):
            probe.close()
    indices, dropped = [], []
    for index, kind, name in streams:
        if kind in _COPIED:
            if name not in supported:
                raise UsageError(
                    f"{output.name}: the {output.suffix} container cannot hold the source's "
                    f"{kind} stream #{index} ({name}), which is copied untouched; choose an "
                    ".mkv output (it holds most codecs)"
                )
            indices.append(index)
        elif index != video_index:
            dropped.append(f"#{index} {kind} {name}")
    return indices, dropped


def _format_name(output: Path) -> str:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}[output.suffix.lower()]


class SegmentWriter:
    """Encodes one chunk of RGB frames into a ``.mov`` segment with the source's timestamps.

    Args:
        path: the segment file to write.
        info: the source (size, rate, time base).
        codec: encoder name (:func:`codec_for`).
        crf: constant rate factor for H.264 (lower: better and bigger), or quality
            for MPEG-4.
    """

    def __init__(self, path: Path, info: SourceInfo, codec: str, crf: int) -> None:
        av = import_av()
        self.info = info
        self.container = av.open(str(path), "w", format="mov")
        rate = info.rate or Fraction(24)
        stream = self.container.add_stream(codec, rate=rate)
        even = info.width % 2 == 0 and info.height % 2 == 0
        if not even and codec != "libx264":
            self.container.close()
            raise UsageError(
                f"{codec} needs an even frame size, the source is {info.width}x{info.height}; "
                "write an .mp4, .mov or .mkv output (or frames) instead"
            )
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self.time_base = info.time_base or Fraction(1, 1) / rate
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 1, 1, 1  # BT.709
        context.color_range = 1  # limited (MPEG) range
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium"}
        else:
            context.qmin, context.qmax = max(1, crf // 6), max(1, crf // 6) + 2
        self.stream = stream
        self.pix_fmt = stream.pix_fmt
        self.first_pts: int | None = None

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one ``(H, W, 3)`` uint8 or uint16 RGB frame at ``pts`` (source time base)."""
        av = import_av()
        if rgb.dtype == np.uint16:
            rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace="ITU709")
        frame.pts, frame.time_base = pts, self.time_base
        self.first_pts = pts if self.first_pts is None else min(self.first_pts, pts)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        """Close without flushing (the segment is discarded)."""
        with contextlib.suppress(Exception):  # the segment is redone anyway
            self.container.close()


def _packets(container, stream) -> Iterator:
    for packet in container.demux(stream):
        if packet.dts is None and packet.pts is None:
            continue  # the demuxer's end-of-stream packet
        yield packet


def _first_pts(path: Path) -> int:
    """The smallest packet pts of a segment's video stream (one pass over its packets)."""
    av = import_av()
    with av.open(str(path), "r") as container:
        stream = container.streams.video[0]
        return min(p.pts for p in _packets(container, stream) if p.pts is not None)


def _shifted(container, start: int, found: int) -> Iterator:
    """A segment's packets with the timestamps the frames were encoded with.

    The mov muxer stores a segment's start in an edit list in milliseconds, which moves
    the timestamps of a segment that does not start at 0 by up to half a millisecond;
    the shift is undone here, so the output keeps the source's timestamps exactly.
    """
    stream = container.streams.video[0]
    for packet in _packets(container, stream):
        if packet.pts is not None:
            packet.pts += start - found
        if packet.dts is not None:
            packet.dts += start - found
        yield packet


def _timed(packets: Iterator, order: int) -> Iterator[tuple[float, int, int, object]]:
    counter = itertools.count()
    for packet in packets:
        stamp = packet.dts if packet.dts is not None else packet.pts
        yield float(stamp * packet.time_base), order, next(counter), packet


def join_segments(
    segments: Sequence[Path],
    starts: Sequence[int],
    info: SourceInfo,
    copy: Sequence[int],
    output: Path,
) -> int:
    """Join the encoded segments and the source's copied streams into ``output``.

    Args:
        segments: the chunks' segment files, in order.
        starts: the first (smallest) timestamp each segment's frames were encoded with,
            in the segments' time base.
        info: the source.
        copy: indices of the source streams copied untouched (:func:`copied_streams`).
        output: the file to write (its format from its extension).

    Returns:
        The number of video packets written.

    Raises:
        DecodeError: a segment or the source cannot be read back.
    """
    av = import_av()
    opened = []
    try:
        parts = [av.open(str(path), "r") for path in segments]
        opened.extend(parts)
        source = av.open(str(info.path), "r") if copy else None
        if source is not None:
            opened.append(source)
        out = av.open(str(output), "w", format=_format_name(output))
        opened.append(out)
        template = parts[0].streams.video[0]
        video = out.add_stream_from_template(template)
        video.time_base = template.time_base
        mapping = {}
        for index in copy:
            src = source.streams[index]
            mapping[index] = out.add_stream_from_template(src)
            mapping[index].time_base = src.time_base
        shifted = (
            _shifted(part, start, _first_pts(path))
            for part, start, path in zip(parts, starts, segments, strict=True)
        )
        streams = [_timed(itertools.chain.from_iterable(shifted), 0)]
        if source is not None:  # one demuxer over the copied streams, in file order
            streams.append(_timed(_packets(source, [source.streams[i] for i in copy]), 1))
        written = 0
        for _, order, _, packet in heapq.merge(*streams):
            if order == 0:
                packet.stream = video
                written += 1
            else:
                packet.stream = mapping[packet.stream.index]
            out.mux(packet)
        out.close()
        return written
    except av.FFmpegError as exc:
        raise DecodeError(f"{output.name}: the output could not be assembled ({exc})") from exc
    finally:
        for container in opened:
            with contextlib.suppress(Exception):  # already closed, or failed
                container.close()
