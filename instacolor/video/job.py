"""A whole film to a file: chunks, ``resume``, the output renamed into place, the manifest.

:func:`colorize_video` reads the source once, in order, and writes the output in chunks
of ``chunk`` frames. Everything in progress lives beside the output, hidden:

* ``.NAME.parts/`` - ``job.json`` (input sha256 and settings), per finished chunk its
  encoded segment (video outputs), the stabiliser's state after its last frame
  (``chunk-K.npz``, kept for the last finished chunk only: it holds a full-resolution
  rounding error) and, written last, ``chunk-K.json``;
* ``.NAME.partial.EXT`` (video) or ``.NAME.partial/`` (frame folder) - the output being
  assembled.

Only when every frame is done is the output renamed to ``NAME`` (one rename), then the
parts are removed and one record is appended to the manifest (JSON lines, default
``NAME.manifest.jsonl`` beside the output). After a kill, ``resume=True`` checks that
the input and settings are the ones of ``job.json``, keeps the finished chunks, restores
the stabiliser's state and goes on from the first unfinished chunk: the output is the
one an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from instacolor import __version__
from instacolor.errors import InstacolorError, UsageError
from instacolor.hints import read_references
from instacolor.video.keyframes import (
    keyframes_of,
    read_keyframe_file,
    record_digests,
    shot_references_of,
)
from instacolor.video.pipeline import FrameColorizer, make_colorizer
from instacolor.video.sinks import (
    SegmentWriter,
    codec_for,
    copied_streams,
    join_segments,
    write_png,
)
from instacolor.video.sources import file_sha256, frame_names, open_source
from instacolor.video.temporal import Stabilization, StabilizerState

__all__ = ["VideoReport", "colorize_video"]

_JOB_VERSION = 1
#: Longest output name: the manifest ``NAME.manifest.jsonl`` and ``.NAME.parts`` must fit 255 bytes.
_NAME_MAX = 255 - len(".manifest.jsonl")


@dataclass(frozen=True)
class VideoReport:
    """What :func:`colorize_video` did.

    Attributes:
        output: the finished output.
        manifest: the manifest the record was appended to.
        frames: frames written.
        shots: shots found (cuts + 1).
        resumed_from: first frame colorized in this run (0 unless resumed).
        seconds: wall time of this run.
        record: the manifest record.
    """

    output: Path
    manifest: Path
    frames: int
    shots: int
    resumed_from: int
    seconds: float
    record: dict


def _paths(output: Path) -> tuple[Path, Path]:
    work = output.parent / f".{output.name}.parts"
    if output.suffix:
        partial = output.parent / f".{output.stem}.partial{output.suffix}"
    else:
        partial = output.parent / f".{output.name}.partial"
    return work, partial


def _check_output(source: Path, output: Path, overwrite: bool) -> None:
    if not output.parent.is_dir():
        raise UsageError(f"{output}: the output's folder does not exist; create it first")
    if len(os.fsencode(output.name)) > _NAME_MAX:
        raise UsageError(
            f"{output.name[:40]}...: expected an output name of at most {_NAME_MAX} bytes (its "
            "parts folder and manifest are named after it), received "
            f"{len(os.fsencode(output.name))}; choose a shorter name"
        )
    if output.resolve() == source.resolve():
        raise UsageError(f"{output}: the output must not be the input")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: already exists; pass overwrite (--overwrite) to replace it")
    if output.is_dir() and any(
        not entry.name.endswith(".png") or not entry.is_file() for entry in os.scandir(output)
    ):
        raise UsageError(
            f"{output}: the folder holds files other than PNG frames; it is not replaced"
        )


def _check_frame_names(info) -> None:
    """Refuse a frame folder two of whose frames would get one PNG name (``a.png``, ``a.tif``)."""
    if info.kind != "folder":
        return
    seen: dict[str, str] = {}
    for name in frame_names(info.path):
        png = Path(name).stem + ".png"
        if png in seen:
            raise UsageError(
                f"{info.path}: expected frames whose names differ before the extension, "
                f"received {seen[png]!r} and {name!r}, which would both be written as "
                f"{png!r}; rename one of them, or write a video"
            )
        seen[png] = name


def _read_job(work: Path) -> dict:
    try:
        return json.loads((work / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{work}: cannot read the interrupted run's job.json ({exc}); run without resume "
            "and with overwrite to start over"
        ) from exc


def _finished_chunks(work: Path, video: bool) -> int:
    """How many chunks from the first are complete (marker and segment, and the state of
    the last of them; 0 when that state is missing: everything is redone)."""
    count = 0
    while True:
        stem = work / f"chunk-{count:06d}"
        complete = stem.with_suffix(".json").is_file()
        if video:
            complete = complete and stem.with_suffix(".mov").is_file()
        if not complete:
            break
        count += 1
    if count and not (work / f"chunk-{count - 1:06d}.npz").is_file():
        return 0
    return count


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def _start(work: Path, job: dict, resume: bool, overwrite: bool, video: bool) -> int:
    """Prepare the parts folder; the first frame to colorize (resume) or 0."""
    if work.exists():
        if resume:
            found = _read_job(work)
            for key in ("input_sha256", "settings", "chunk"):
                if found.get(key) != job[key]:
                    raise UsageError(
                        f"cannot resume: the interrupted run had another {key} "
                        f"({json.dumps(found.get(key), sort_keys=True):.200}); run with the "
                        "same input and options, or without resume and with overwrite to "
                        "start over"
                    )
            return _finished_chunks(work, video) * job["chunk"]
        if not overwrite:
            raise UsageError(
                f"an interrupted run left {work.name} beside the output: pass resume "
                "(--resume) to go on from it, or overwrite (--overwrite) to start over"
            )
        shutil.rmtree(work)
    work.mkdir()
    _write_json(work / "job.json", job)
    return 0


def _settings(colorizer, stabilization: Stabilization, extra: dict) -> dict:
    return {
        "weights": colorizer.loaded.name,
        "working_size": colorizer.working_size,
        "saturation": colorizer.saturation,
        **colorizer.decoding.record(),
        "detector": None if colorizer.detector is None else type(colorizer.detector).__name__,
        "backend": colorizer.backend,
        "stabilization": stabilization.record(),
        **extra,
    }


def colorize_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    colorizer=None,
    stabilize: bool | Stabilization = True,
    hints: str | os.PathLike | None = None,
    reference: Any = None,
    chunk: int = 120,
    crf: int = 16,
    resume: bool = False,
    overwrite: bool = False,
    manifest: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> VideoReport:
    """Colorize a video file or frame folder into a video file or PNG frame folder.

    Args:
        source: the video file (mp4, mov, mkv, avi...) or folder of PNG/TIFF frames.
        output: a video file (``.mp4``, ``.mov``, ``.mkv``, ``.avi``: the container and
            codec) or a folder for PNG frames (any other name without extension).
        colorizer: a ready :class:`~instacolor.Colorizer`, or None to build one from
            ``options`` (``weights``, ``device``, ``working_size``, ``detector``,
            ``backend``, ``saturation``, ``decode``).
        stabilize: True, False (plain per-frame colour) or a :class:`Stabilization`.
        hints: keyframe hints file (:mod:`instacolor.video.keyframes`), or None.
        reference: colour photograph(s) to take colours from (a path or a list of paths;
            arrays and PIL images too): applied to the first frame of every shot and
            carried through the shot; a ``"reference"`` line of ``hints`` replaces them
            from its frame on (:mod:`instacolor.video.keyframes`).
        chunk: frames per chunk (the unit ``resume`` keeps), >= 1.
        crf: H.264 constant rate factor (0-51, lower is better).
        resume: go on from the finished chunks of an interrupted run.
        overwrite: replace an existing output, or start over an interrupted run.
        manifest: JSON-lines file the run's record is appended to.
        progress: called as ``progress(frames done, total or 0)`` after every frame.

    Returns:
        A :class:`VideoReport`.

    Raises:
        UsageError: a bad output path or extension, an existing output, a resume that
            does not match, a source stream the output container cannot hold.
        InputError: bad options or hints.
        DecodeError: an unreadable source or frame.
    """
    started = time.perf_counter()
    source, output = Path(source), Path(output)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise UsageError(f"chunk: expected an integer >= 1, received {chunk!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise UsageError(f"crf: expected an integer from 0 to 51, received {crf!r}")
    video = bool(output.suffix)
    codec = codec_for(output) if video else None
    settings = stabilize if isinstance(stabilize, Stabilization) else None
    settings = settings or Stabilization(enabled=bool(stabilize))
    manifest_path = Path(manifest) if manifest else output.parent / f"{output.name}.manifest.jsonl"
    references = read_references(reference)  # a bad reference: refused before any work
    info, frames = open_source(source)
    try:
        _check_output(source, output, overwrite)
        copy, dropped = copied_streams(info, output) if video else ([], [])
        if not video:
            _check_frame_names(info)
        hints_file = read_keyframe_file(hints) if hints else None  # read once
        keyframes = keyframes_of(hints_file, (info.height, info.width)) if hints_file else {}
        shots = shot_references_of(hints_file) if hints_file else {}
        colorizer = make_colorizer(colorizer, **options)
        digests, shot_digests = record_digests(reference, shots)
        extra = {"chunk": chunk, "codec": codec, "crf": crf if video else None,
                 "hints_sha256": hints_file.sha256 if hints_file else None,
                 "references_sha256": digests, "shot_references_sha256": shot_digests}  # fmt: skip
        job = {"version": _JOB_VERSION, "input_sha256": file_sha256(source), "chunk": chunk,
               "settings": _settings(colorizer, settings, extra)}  # fmt: skip
        work, partial = _paths(output)
        first = _start(work, job, resume, overwrite, video)
        if not video:
            partial.mkdir(exist_ok=True)
        state = None
        if first:
            with np.load(work / f"chunk-{first // chunk - 1:06d}.npz") as arrays:
                state = StabilizerState.from_arrays(arrays)
        dtype = np.uint16 if info.bit_depth == 16 and not video else np.uint8
        engine = FrameColorizer(
            colorizer, (info.height, info.width), settings, keyframes, dtype, state, references,
            shots,
        )  # fmt: skip
        try:
            cuts = _run(engine, frames, info, work, partial, codec, crf, chunk, first, progress)
        except (InstacolorError, OSError) as exc:  # a bad frame, a full disk: on record
            _append(manifest_path, {
                "status": "failed", "input": str(source), "input_sha256": job["input_sha256"],
                "output": str(output), "error": " ".join(str(exc).split()),
                "settings": job["settings"], "instacolor": __version__, "finished": _now(),
            })  # fmt: skip
            raise
    finally:
        frames.close()
    count = cuts.pop()
    cuts = sorted(set(cuts) | _earlier_cuts(work, first // chunk))
    if video:
        segments = [work / f"chunk-{k:06d}.mov" for k in range((count + chunk - 1) // chunk)]
        starts = [_read_marker(work, k)["first_pts"] for k in range(len(segments))]
        join_segments(segments, starts, info, copy, partial)
    if output.exists():  # overwrite: checked above
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    os.replace(partial, output)
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    record = {
        "status": "done", "input": str(source), "input_sha256": job["input_sha256"],
        "output": str(output), "output_sha256": file_sha256(output) if video else None,
        "frames": count, "shots": len(cuts), "cuts": cuts, "resumed_from_frame": first,
        "seconds": round(seconds, 3), "fps": round((count - first) / max(seconds, 1e-9), 3),
        "width": info.width, "height": info.height,
        "rate": None if info.rate is None else str(info.rate),
        "copied_streams": copy, "dropped_streams": dropped,
        "weights_sha256": colorizer.loaded.sha256, "settings": job["settings"],
        "instacolor": __version__,
        "finished": _now(),
    }  # fmt: skip
    _append(manifest_path, record)
    return VideoReport(output, manifest_path, count, len(cuts), first, seconds, record)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _append(manifest: Path, record: dict) -> None:
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def _read_marker(work: Path, k: int) -> dict:
    return json.loads((work / f"chunk-{k:06d}.json").read_text(encoding="utf-8"))


def _earlier_cuts(work: Path, chunks: int) -> set[int]:
    found: set[int] = set()
    for k in range(chunks):
        found.update(_read_marker(work, k)["cuts"])
    return found


def _run(engine, frames, info, work, partial, codec, crf, chunk, first, progress) -> list[int]:
    """Colorize frames ``first..`` chunk by chunk; returns the cuts, then the frame count."""
    writer, cuts, chunk_cuts, count, open_chunk = None, [], [], 0, None
    rate_pts = 1 / (info.rate * info.time_base) if info.rate and info.time_base else 1
    try:
        for frame in frames:
            count = frame.index + 1
            if frame.index < first:
                continue  # a finished chunk (resume): decoded, not colorized
            k = frame.index // chunk
            if k != open_chunk:
                if open_chunk is not None:
                    _finish(writer, engine, work, open_chunk, chunk_cuts)
                writer, chunk_cuts, open_chunk = None, [], k
                if codec:
                    writer = SegmentWriter(work / f"chunk-{k:06d}.mov", info, codec, crf)
            rgb, step = engine(frame.index, frame.light)
            if step.cut:
                chunk_cuts.append(frame.index)
                cuts.append(frame.index)
            if writer is not None:
                pts = frame.pts if frame.pts is not None else round(frame.index * rate_pts)
                writer.write(rgb, pts)
            else:
                name = Path(frame.name).stem + ".png" if frame.name else f"{frame.index:06d}.png"
                write_png(partial / name, rgb)
            if progress is not None:
                progress(frame.index + 1 - first, max(info.frames - first, 0))
        if open_chunk is not None:
            _finish(writer, engine, work, open_chunk, chunk_cuts)
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return [*cuts, count]


def _finish(writer, engine, work: Path, k: int, cuts: list[int]) -> None:
    """Close chunk ``k``: its segment, the stabiliser's state, then its marker."""
    if writer is not None:
        writer.close()
    np.savez(work / f"chunk-{k:06d}.npz", **engine.state.to_arrays())
    first_pts = None if writer is None else writer.first_pts
    _write_json(work / f"chunk-{k:06d}.json", {"chunk": k, "cuts": cuts, "first_pts": first_pts})
    if k:  # only the last finished chunk's state is ever read (resume)
        (work / f"chunk-{k - 1:06d}.npz").unlink(missing_ok=True)
