"""One frame at a time: the network's chroma, carried along time, joined to the luminance.

For each frame, :class:`FrameColorizer`

1. shrinks its L to the flow grid (longer side ``Stabilization.flow_size``);
2. runs the per-frame colorizer (:meth:`instacolor.Colorizer.colorize_light`) on it and
   brings the predicted ab to the grid (a second run with the frame's keyframe hints,
   when it has some, and with the reference photographs on the first frame of a shot);
3. passes the gray grid frame and the chroma through the :class:`Stabilizer`
   (shot cuts, flow, reliability blend);
4. joins the stabilised chroma to the frame's full-resolution L with the image
   pipeline's guided upsampling (:func:`instacolor.reconstruct.reconstruct`), so the
   luminance of every frame is kept exactly as for a photograph; 8-bit frames are
   rounded keeping their chroma, with the previous frame's rounding error carried along
   the flow (:mod:`instacolor.video.rounding`).

:func:`colorize_frames` is the streaming API over a path or any iterable of frames.

Example:
    >>> import numpy as np
    >>> frames = [np.full((36, 64), 90 + 5 * i, np.uint8) for i in range(3)]
    >>> out = list(colorize_frames(frames, weights="instacolor-untrained-w16",
    ...                            working_size=32))  # doctest: +SKIP
    >>> out[0].shape, out[0].dtype  # doctest: +SKIP
    ((36, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import torch

from instacolor.errors import InputError
from instacolor.hints import Hints, as_hints, read_references
from instacolor.io.image import read_luminance, to_output
from instacolor.reconstruct import reconstruct
from instacolor.video.keyframes import (
    KeyframeFile,
    keyframes_of,
    read_keyframe_file,
    scale_hints,
    shot_references_of,
)
from instacolor.video.rounding import carry_error, round_frame
from instacolor.video.sources import open_source
from instacolor.video.temporal import Stabilization, Stabilizer, StabilizerState, Step

__all__ = ["FrameColorizer", "colorize_frames", "grid_size", "make_colorizer"]

#: Keyword arguments of :func:`make_colorizer` (those of :class:`instacolor.Colorizer`).
COLORIZER_OPTIONS = (
    "weights", "device", "working_size", "detector", "backend", "saturation", "decode",
)  # fmt: skip


def make_colorizer(colorizer=None, **options):
    """The given :class:`~instacolor.Colorizer`, or a new one from the options.

    Raises:
        InputError: an unknown option, or options given beside a ready colorizer.
    """
    from instacolor.colorizer import Colorizer

    unknown = sorted(set(options) - set(COLORIZER_OPTIONS))
    if unknown:
        raise InputError(f"unknown options {unknown}; expected some of {list(COLORIZER_OPTIONS)}")
    given = {k: v for k, v in options.items() if v is not None}
    if colorizer is not None:
        if given:
            raise InputError(
                f"expected either a colorizer or colorizer options, received both "
                f"(options {sorted(given)}); set them on the Colorizer"
            )
        return colorizer
    weights = given.pop("weights", "default")
    return Colorizer(weights, **given)


def grid_size(height: int, width: int, flow_size: int) -> tuple[int, int]:
    """``(h, w)`` of the flow grid: the frame shrunk so its longer side is ``flow_size``."""
    scale = min(1.0, flow_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class FrameColorizer:
    """Colorizes the frames of one video in order (see the module docstring).

    Args:
        colorizer: the per-frame :class:`~instacolor.Colorizer`.
        size: ``(H, W)`` of the frames.
        stabilization: the temporal settings.
        keyframes: ``{frame index: Hints}`` in frame pixels.
        out_dtype: ``numpy.uint8``, ``numpy.uint16`` or ``numpy.float32`` output.
        state: the stabiliser's state after the frame before the first one given
            (resuming), or None.
        references: colour photographs read by :func:`~instacolor.hints.read_references`:
            applied to the first frame of every shot and carried through the shot like
            keyframe hints, or None.
        shot_references: ``{frame index: references}``
            (:func:`~instacolor.video.keyframes.shot_references_of`): from that frame
            on they replace ``references`` (they act on that frame and on the first
            frame of every later shot), until a later frame's.
    """

    def __init__(
        self,
        colorizer,
        size: tuple[int, int],
        stabilization: Stabilization,
        keyframes: Mapping[int, Hints] | None = None,
        out_dtype=np.uint8,
        state: StabilizerState | None = None,
        references: tuple | None = None,
        shot_references: Mapping[int, tuple] | None = None,
    ) -> None:
        self.colorizer = colorizer
        self.references = references or None
        self.shot_references = dict(shot_references or {})
        self._changes = sorted(self.shot_references)
        self.size = size
        self.grid = grid_size(*size, stabilization.flow_size)
        self.keyframes = dict(keyframes or {})
        self.out_dtype = out_dtype
        self.stabilizer = Stabilizer(stabilization, state)

    @property
    def state(self) -> StabilizerState | None:
        """What the last frame left for the next one."""
        return self.stabilizer.state

    def references_at(self, index: int) -> tuple | None:
        """The references in effect at frame ``index``."""
        k = bisect.bisect_right(self._changes, index)
        return self.shot_references[self._changes[k - 1]] if k else self.references

    def _predict(self, light_grid: np.ndarray, hints: Any = None, reference: Any = None):
        result = self.colorizer.colorize_light(
            light_grid, hints=hints, out_dtype=None, reference=reference
        )  # the chroma only: the frame's image is joined after the stabiliser
        gh, gw = self.grid
        ab = cv2.resize(result.ab.transpose(1, 2, 0), (gw, gh), interpolation=cv2.INTER_LINEAR)
        return ab.astype(np.float32, copy=False), result.confidence

    def __call__(self, index: int, light: np.ndarray) -> tuple[np.ndarray, Step]:
        """Colorize frame ``index`` from its ``(H, W)`` float32 L.

        Returns:
            ``(rgb, step)``: the ``(H, W, 3)`` image of ``out_dtype`` and the stabiliser's
            step (cut, reliability).

        Raises:
            InputError: a frame of another size than the first.
        """
        if light.shape != self.size:
            raise InputError(
                f"frame {index}: expected {self.size[1]}x{self.size[0]} pixels like the first "
                f"frame, received {light.shape[1]}x{light.shape[0]}"
            )
        gh, gw = self.grid
        if (gh, gw) == self.size:
            light_grid = light
        else:
            light_grid = cv2.resize(light, (gw, gh), interpolation=cv2.INTER_AREA)
        gray = np.clip(light_grid * 2.55 + 0.5, 0, 255).astype(np.uint8)
        ab, confidence = self._predict(light_grid)
        hinted = None
        current = self.references_at(index)
        shot_start = current is not None and self.stabilizer.is_cut(gray)
        changed = index in self.shot_references
        if index in self.keyframes or shot_start or changed:
            sy, sx = gh / self.size[0], gw / self.size[1]
            points = self.keyframes.get(index)
            points = None if points is None else scale_hints(points, sx, sy)
            reference = current if shot_start or changed else None
            hinted, _ = self._predict(light_grid, points, reference)
        before = self.stabilizer.state
        step = self.stabilizer.step(gray, ab, confidence, hinted)
        chroma = torch.from_numpy(np.ascontiguousarray(step.ab.transpose(2, 0, 1)))
        settings = self.stabilizer.settings
        if self.out_dtype != np.uint8 or not (settings.enabled and settings.carry_rounding):
            rgb = reconstruct(  # 8 bits: chroma kept, steadier along time (docs/video.md)
                chroma, torch.from_numpy(light_grid), light, out_dtype=self.out_dtype,
                rounding="chroma",
            )  # fmt: skip
            return rgb, step
        exact = reconstruct(chroma, torch.from_numpy(light_grid), light, out_dtype=np.float32)
        previous = None if before is None else before.rounding
        carried = None
        if step.motion is not None and previous is not None and previous.shape[:2] == light.shape:
            carried = carry_error(previous, step.motion)
        rgb, error = round_frame(exact, light, carried)  # the rounding error carried along
        self.stabilizer.state = replace(self.stabilizer.state, rounding=error)
        return rgb, step


def _keyframes(hints: Any, size: tuple[int, int]) -> dict[int, Hints]:
    if hints is None:
        return {}
    if isinstance(hints, KeyframeFile):
        return keyframes_of(hints, size)
    if not isinstance(hints, Mapping):
        raise InputError(
            f"hints: expected None, a JSON-lines file or {{frame index: points}}, received "
            f"{type(hints).__name__}"
        )
    out = {}
    for frame, points in hints.items():
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise InputError(f"hints: expected frame indices >= 0, received {frame!r}")
        out[frame] = as_hints(points, size, None)
    return out


def colorize_frames(
    frames: str | os.PathLike | Iterable[Any],
    *,
    colorizer=None,
    stabilize: bool | Stabilization = True,
    hints: Any = None,
    reference: Any = None,
    color_tolerance: float | None = None,
    **options: Any,
) -> Iterator[np.ndarray]:
    """Colorize a sequence of gray frames, stabilised along time, one frame at a time.

    Args:
        frames: a video file or frame folder (see :mod:`instacolor.video.sources`), or
            an iterable of frames as :meth:`~instacolor.Colorizer.colorize` takes them
            (numpy arrays uint8, uint16 or float in ``[0, 1]``, or PIL images; RGB frames
            must be gray within ``color_tolerance``). Read lazily: memory holds one frame.
        colorizer: a ready :class:`~instacolor.Colorizer`, or None to build one from
            ``options``.
        stabilize: True (default settings), False (plain per-frame colour) or a
            :class:`Stabilization`.
        hints: keyframe hints: a JSON-lines file (:mod:`instacolor.video.keyframes`; its
            lines may also name references per shot) or ``{frame index: points}`` in
            frame pixels.
        reference: colour photograph(s) to take colours from (a path, an array, a PIL
            image or a list of them, as for :func:`instacolor.colorize`): applied to the
            first frame of every shot and carried through the shot.
        color_tolerance: for iterables of arrays: the gray test's tolerance (None: the
            colorizer's).
        **options: ``weights``, ``device``, ``working_size``, ``detector``, ``backend``,
            ``saturation``, ``decode`` as for :class:`instacolor.Colorizer`.

    Yields:
        ``(H, W, 3)`` colorized frames: for paths uint8 or uint16 (the source's
        precision); for arrays the input's dtype; for PIL images PIL ``RGB`` images.

    Raises:
        InputError: bad options, hints, or a frame (colour, wrong size or dtype).
        DecodeError: a file that cannot be decoded.
    """
    settings = _stabilization(stabilize)
    references = read_references(reference)  # a bad reference: refused before any frame
    if isinstance(hints, str | os.PathLike):
        hints = read_keyframe_file(hints)  # read once: its references now, its points below
    shots = shot_references_of(hints) if isinstance(hints, KeyframeFile) else {}
    colorizer = make_colorizer(colorizer, **options)
    tolerance = colorizer.color_tolerance if color_tolerance is None else color_tolerance
    if isinstance(frames, str | os.PathLike):
        info, source = open_source(frames)
        dtype = np.uint16 if info.bit_depth == 16 else np.uint8
        engine = FrameColorizer(
            colorizer, (info.height, info.width), settings,
            _keyframes(hints, (info.height, info.width)), dtype, references=references,
            shot_references=shots,
        )  # fmt: skip
        try:
            for frame in source:
                yield engine(frame.index, frame.light)[0]
        finally:
            source.close()
        return
    engine = None
    for index, image in enumerate(frames):
        light, kind = read_luminance(image, color_tolerance=tolerance)
        if engine is None:
            size = (int(light.shape[0]), int(light.shape[1]))
            engine = FrameColorizer(
                colorizer, size, settings, _keyframes(hints, size), kind.dtype,
                references=references, shot_references=shots,
            )  # fmt: skip
        yield to_output(engine(index, light)[0], kind)


def _stabilization(stabilize: bool | Stabilization) -> Stabilization:
    if isinstance(stabilize, Stabilization):
        return stabilize
    if isinstance(stabilize, bool):
        return Stabilization(enabled=stabilize)
    raise InputError(f"stabilize: expected True, False or a Stabilization, received {stabilize!r}")
