"""The review app's colorizing side: display images, previews with hints, and "apply".

One :class:`Engine` loads the networks once (the batch's weights, working size and
saturation, read from its manifest) and serialises their use behind a lock.

* :meth:`Engine.view` reads an item's scan once and keeps a display-size copy of its L
  plane (long side at most ``display_size``), the instances (detected once, when the
  batch had a detector) and the confidence map (weights with a trained head only); the
  :data:`MAX_VIEWS` most recently shown are kept. Inputs over ``max_pixels`` are
  refused (decompression bombs), and a read failure never repeats the file's bytes.
* :meth:`Engine.preview` re-colorizes that display copy with the hints: the networks
  and the hint propagation run at the working size, then the chroma is guided up to the
  display size. It never writes a file.
* :meth:`Engine.apply` re-runs the full-resolution output through the batch's own
  :class:`~instacolor.batch.worker.Worker` (same reader, detector, atomic writer,
  provenance), handing it the hints as ``instacolor colorize --hints FILE`` does, and
  appends its manifest record (a :class:`ReviewRecord`: ``hints``, ``hints_sha256`` and
  who applied them). The input is only read.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from instacolor.batch.jobs import Job
from instacolor.batch.manifest import Manifest, Record
from instacolor.batch.references import InputReferences
from instacolor.batch.worker import Settings, Worker
from instacolor.color import lab_to_rgb
from instacolor.errors import DecodeError, InputError, InstacolorError
from instacolor.io.archival import DEFAULT_MAX_PIXELS, read_scan
from instacolor.review.references import Kept, kept
from instacolor.review.state import Batch, Item
from instacolor.structures import Decoding

__all__ = ["MAX_VIEWS", "Engine", "ReviewRecord", "View", "read_input"]

#: Display copies (and their pictures) kept; the least recently shown are dropped.
MAX_VIEWS = 48
#: Sets of an output's references kept read (and encoded); the least recent are dropped.
_REFERENCE_SETS = 4


def read_input(item: Item, max_pixels: int | None):
    """The item's input scan; a failure says why in words that carry none of the file.

    Raises:
        DecodeError: the file is missing, unreadable or not an image it can decode (the
            reason names the kind of failure; the full reason goes to the server's log).
    """
    try:
        return read_scan(item.input, max_pixels=max_pixels)
    except (InstacolorError, OSError, ValueError) as exc:
        import sys

        print(f"instacolor review: image {item.index}: {exc}", file=sys.stderr)
        kind = "is missing" if not os.path.lexists(item.input) else "cannot be read"
        if "max_pixels" in str(exc):
            kind = "is larger than --max-pixels"
        raise DecodeError(
            f"image {item.index}: the input {kind} ({type(exc).__name__}); the server's log "
            "says more"
        ) from None


@dataclass(frozen=True)
class ReviewRecord(Record):
    """A manifest record written by the review app (``review``: who, what, which hints)."""

    review: dict | None = None


def hint_line(hints: Any) -> dict:
    """``hints`` as a line of a hints file (:func:`~instacolor.hints.read_hints_lines`).

    The batch worker reads the hints of an input from such lines (``--hints FILE``); an
    empty line (no points) keeps a ``NAME.hints.json`` sidecar from being used instead.
    """
    if hints is None:
        return {"points": []}
    return {
        "points": [
            {"x": p.x, "y": p.y, "color": {"lab": [p.color.a, p.color.b]}, "radius": p.radius}
            for p in hints.points
        ],
        "instance_colors": {str(i): {"lab": [c.a, c.b]} for i, c in hints.instance_colors.items()},
    }


@dataclass
class View:
    """What the app shows of one item (display size ``(h, w)``, full size ``(H, W)``)."""

    full_size: tuple[int, int]
    light: np.ndarray
    instances: Any = None
    confidence: np.ndarray | None = None
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """Display pixels per input pixel."""
        return self.light.shape[1] / self.full_size[1]


def encode_png(rgb: np.ndarray) -> bytes:
    """8-bit RGB ``(h, w, 3)`` or gray ``(h, w)`` as PNG bytes."""
    image = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InputError("could not encode the display image as PNG")
    return data.tobytes()


def gray_rgb(light: np.ndarray) -> np.ndarray:
    """8-bit sRGB of an L plane (neutral chroma)."""
    lab = torch.zeros((3, *light.shape), dtype=torch.float32)
    lab[0] = torch.from_numpy(light)
    rgb = lab_to_rgb(lab).clamp(0, 1).mul(255).round().byte()
    return rgb.permute(1, 2, 0).numpy()


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(image, (size[1], size[0]), interpolation=mode)


def _scale_instances(instances, scale: float, size: tuple[int, int]):
    """``instances`` in pixels ``scale`` times as large, in an image of ``size``."""
    from instacolor.structures import Instances

    if instances is None or len(instances) == 0:
        return None
    masks = None
    if instances.masks is not None:
        masks = np.stack([_resize(m.astype(np.uint8), size, True) > 0 for m in instances.masks])
    return Instances.from_boxes(
        np.asarray(instances.boxes, np.float64) * scale,
        size,
        scores=instances.scores,
        labels=instances.labels,
        masks=masks,
    )


class Engine:
    """Loads the batch's networks once and colorizes for the review app.

    Args:
        batch: the batch under review.
        colorizer: a built :class:`~instacolor.colorizer.Colorizer` to use (default: one for the
            manifest's weights, working size, saturation and decoding).
        weights, working_size, detector, device: override what the manifest says.
        display_size: longest side of the images shown (and of the preview).
        max_pixels: largest input decoded (``width * height``; None: no limit).
    """

    def __init__(
        self,
        batch: Batch,
        *,
        colorizer=None,
        weights: str | None = None,
        working_size: int | None = None,
        detector: str | None = None,
        device: str = "cpu",
        display_size: int = 768,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.batch = batch
        self.max_pixels = max_pixels
        #: ``*-large`` pictures by ``(index, kind)``, most recent last (see render.py)
        self.large: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        facts = next((i.record for i in batch.items if i.output is not None), {})
        if colorizer is None:
            from instacolor.colorizer import Colorizer

            colorizer = Colorizer(
                weights or facts.get("model") or "default",
                device=device,
                working_size=working_size or facts.get("working_size"),
                detector=detector,
                fallback_to_full_image=True,
                saturation=facts.get("saturation") or 1.0,
                decode=Decoding.from_record(facts),  # the batch's, not the weights' default
            )
        self.colorizer = colorizer
        self.display_size = display_size
        self.lock = threading.RLock()
        self.views: OrderedDict[int, View] = OrderedDict()
        self._reference_sets: OrderedDict[tuple, InputReferences] = OrderedDict()
        settings = Settings(
            weights=colorizer.loaded.name,
            working_size=colorizer.working_size,
            max_pixels=max_pixels,
            force=True,
            overwrite=True,
            saturation=colorizer.saturation,
        )
        self.worker = Worker(settings, colorizer=colorizer)
        self.has_confidence = bool(getattr(colorizer.loaded, "class_head", False))
        self.mismatch = None
        if facts.get("weights_sha256") not in (None, self.worker.weights_sha256):
            self.mismatch = (
                f"the batch was made with weights {facts.get('model')} "
                f"({str(facts.get('weights_sha256'))[:12]}), this server runs "
                f"{colorizer.loaded.name} ({self.worker.weights_sha256[:12]})"
            )

    def view(self, item: Item) -> View:
        """The item's display data (computed once, until :meth:`forget`)."""
        with self.lock:
            cached = self.views.get(item.index)
            if cached is not None:
                self.views.move_to_end(item.index)
                return cached
            scan = read_input(item, self.max_pixels)
            full = scan.light.shape
            factor = min(1.0, self.display_size / max(full))
            size = (max(1, round(full[0] * factor)), max(1, round(full[1] * factor)))
            light = _resize(scan.light, size) if size != full else scan.light.copy()
            view = View(full_size=(int(full[0]), int(full[1])), light=light)
            if self.colorizer.detector is not None:
                found = self.colorizer.detector.detect(scan.light)
                view.instances = found.instances if len(found.instances) else None
            if self.has_confidence:
                result = self.colorizer.colorize_light(
                    light, instances=self._display_instances(view), out_dtype=np.uint8
                )
                view.confidence = result.confidence
            self.views[item.index] = view
            while len(self.views) > MAX_VIEWS:  # the least recently shown go first
                self.views.popitem(last=False)
            return view

    def forget(self, item: Item) -> None:
        """Drop the cached display data of ``item`` (its output changed)."""
        with self.lock:
            self.views.pop(item.index, None)
            for kind in [key for key in self.large if key[0] == item.index]:
                del self.large[kind]

    def _display_instances(self, view: View):
        return _scale_instances(view.instances, view.scale, view.light.shape)

    def references(self, item: Item, keep: bool = True) -> InputReferences:
        """The references ``item``'s output was made with that still hold
        (:func:`~instacolor.review.references.kept`; none when ``keep`` is false), read
        once while they are unchanged, as the batch worker's references of the item.

        Raises:
            InputError, DecodeError: a kept reference can no longer be read as a colour
                photograph.
        """
        found = kept(item) if keep else Kept()
        key = (found.paths, found.origins, found.digests)
        with self.lock:
            refs = self._reference_sets.get(key)
            if refs is None:
                refs = InputReferences(found.paths, found.origins, found.digests)
                self._reference_sets[key] = refs
                while len(self._reference_sets) > _REFERENCE_SETS:
                    self._reference_sets.popitem(last=False)
            self._reference_sets.move_to_end(key)
            return refs

    def preview(
        self, item: Item, hints: Any, picked: Any = None, keep: bool = True
    ) -> tuple[np.ndarray, float]:
        """The item re-colorized at display size with ``hints`` (in input pixels) and
        the colour references "apply" would use: those its output was made with (unless
        ``keep`` is false), its reference sidecars, then ``picked``.

        Args:
            item: the image.
            hints: its hints, or None.
            picked: ``(name, path, references)`` of a picked reference
                (:func:`~instacolor.review.references.picked`), or None.
            keep: use the references its output was made with.

        Returns:
            ``(rgb, seconds)``: 8-bit RGB at display size and the time it took.

        Raises:
            InputError: the hints do not fit the image (outside it, unknown instance), or
                a reference cannot be read.
        """
        with self.lock:
            view = self.view(item)
            own, entries = self.references(item, keep).of(item.input.resolve())
            used = {e["path"] for e in entries}
            if picked is not None and os.path.abspath(picked[1]) not in used:
                own = (*(own or ()), *picked[2])
            t0 = time.perf_counter()
            result = self.colorizer.colorize_light(
                view.light,
                hints=_scale_hints(hints, view.scale, view.light.shape),
                instances=self._display_instances(view),
                out_dtype=np.uint8,
                reference=own or None,
            )
            return result.image, time.perf_counter() - t0

    def apply(
        self,
        item: Item,
        hints: Any,
        review: dict,
        reference: str | None = None,
        keep: bool = True,
    ) -> Record:
        """Re-colorize ``item`` at full resolution through the batch worker.

        ``reference``: a picked reference's name, relative to the input's folder
        (:mod:`instacolor.review.references`), handed to the worker as the ``"reference"``
        of the item's hints line. ``keep``: the references the output was made with go
        in too (:meth:`references`; the record lists them with their origins).

        The output is replaced atomically (the input is only read) and a
        :class:`ReviewRecord` goes to the manifest, also when the worker failed.

        Raises:
            UsageError: another batch holds the manifest's lock.
        """
        with self.lock:
            self.view(item)  # the input is readable and its instances known
            references = self.references(item, keep)
            book = Manifest(self.batch.manifest)  # refused while a batch writes it
            line = hint_line(hints)
            if reference is not None:
                line["reference"] = [reference]
            source = item.input.resolve()
            self.worker.hint_lines = {str(source): line}
            self.worker.hint_lines_path = str(source.parent / ".review")
            common, self.worker.references = self.worker.references, references
            try:
                record = self.worker.process(Job(item.input, item.output))
                record = ReviewRecord(**asdict(record), review=review)
                book.append(record)
            finally:
                self.worker.hint_lines = self.worker.hint_lines_path = None
                self.worker.references = common
                book.close()
            self.batch.reload()
            self.forget(item)
            return record


def _scale_hints(hints: Any, scale: float, size: tuple[int, int]) -> Any:
    """``hints`` (a :class:`~instacolor.hints.Hints` or None) in display pixels."""
    if hints is None or scale == 1.0:
        return hints
    from instacolor.hints import Hints

    def inside(v: float, extent: int) -> float:
        return min(max(v * scale, 0.0), extent - 0.5)

    points = [
        (inside(p.x, size[1]), inside(p.y, size[0]), p.color, p.radius * scale)
        for p in hints.points
    ]
    return Hints(points=points, instance_colors=dict(hints.instance_colors))
