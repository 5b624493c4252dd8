"""The pictures the review page shows, as PNG bytes, at display size.

Kinds (:data:`KINDS`): ``thumb`` (the output, long side :data:`THUMB_SIZE`), ``gray``
(the input's L), ``color`` (the output file), ``gray-large`` and ``color-large`` (the
same at up to :data:`LARGE_SIZE` pixels, for zooming into large scans), ``confidence``
(the confidence map over the gray input: red where the model is unsure; None without a
trained head) and ``instances`` (the instance masks, or boxes, in distinct colours over
the gray input).

The ``*-large`` pictures are bounded in memory: rendered one at a time behind the
engine's lock, through a reduced decode (the input's samples are decoded at their own
depth and shrunk to :data:`LARGE_SIZE` before colour management; JPEG outputs are
decoded at a reduced DCT scale), and kept in a cache of at most
:data:`LARGE_CACHE_BYTES` (least recently used dropped first).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from instacolor.errors import DecodeError, InputError
from instacolor.io.archival.color import light_and_preview, orient, usable_profile
from instacolor.io.archival.decode import decode_page, sniff_format
from instacolor.review.engine import Engine, View, encode_png, gray_rgb
from instacolor.review.state import Item

__all__ = ["KINDS", "THUMB_SIZE", "instance_list", "render"]

KINDS = ("thumb", "gray", "color", "confidence", "instances", "gray-large", "color-large")
#: Longest side of the ``*-large`` pictures the page loads when zoomed in on a large scan.
LARGE_SIZE = 2048
#: Most bytes of ``*-large`` PNGs kept (the least recently used go first).
LARGE_CACHE_BYTES = 64 * 1024 * 1024
THUMB_SIZE = 192
_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]],
    np.float32,
)  # fmt: skip


def _output_rgb(item: Item, size: tuple[int, int]) -> np.ndarray:
    """The output file as 8-bit RGB resized to ``size`` ``(h, w)``."""
    with Image.open(item.output) as image:
        image.draft("RGB", (size[1], size[0]))
        rgb = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BOX)
    return np.asarray(rgb)


def _confidence(view: View) -> np.ndarray | None:
    if view.confidence is None:
        return None
    gray = gray_rgb(view.light).astype(np.float32)
    conf = np.clip(view.confidence, 0.0, 1.0)[..., None]
    unsure = np.array([220, 30, 30], np.float32)
    return (gray * conf + (0.35 * gray + 0.65 * unsure) * (1 - conf)).round().astype(np.uint8)


def _instances(engine: Engine, view: View) -> np.ndarray:
    gray = gray_rgb(view.light).astype(np.float32)
    inst = engine._display_instances(view)
    if inst is None:
        return gray.astype(np.uint8)
    out = gray.copy()
    for k in range(len(inst)):
        color = _PALETTE[k % len(_PALETTE)]
        if inst.masks is not None:
            region = inst.masks[k]
        else:
            x0, y0, x1, y1 = inst.integer_boxes()[k]
            region = np.zeros(view.light.shape, bool)
            region[y0:y1, x0:x1] = True
        out[region] = 0.5 * out[region] + 0.5 * color
    return out.round().astype(np.uint8)


def render(engine: Engine, item: Item, kind: str) -> bytes | None:
    """PNG bytes of picture ``kind`` of ``item`` (cached), or None when it has none.

    Raises:
        InputError: an unknown kind.
    """
    if kind not in KINDS:
        raise InputError(f"picture: expected one of {KINDS}, received {kind!r}")
    if item.output is None:
        return None
    view = engine.view(item)
    cached = view.images.get(kind)
    if cached is not None:
        return cached
    h, w = view.light.shape
    if kind == "thumb":
        factor = min(1.0, THUMB_SIZE / max(h, w))
        rgb = _output_rgb(item, (max(1, round(h * factor)), max(1, round(w * factor))))
    elif kind == "gray":
        rgb = gray_rgb(view.light)
    elif kind == "color":
        rgb = _output_rgb(item, (h, w))
    elif kind.endswith("-large"):
        return _large(engine, item, view, kind)
    elif kind == "confidence":
        rgb = _confidence(view)
    else:
        rgb = _instances(engine, view)
    data = None if rgb is None else encode_png(rgb)
    if data is not None:
        view.images[kind] = data
    return data


def large_size(full: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of a ``*-large`` picture of an image of ``full`` size."""
    factor = min(1.0, LARGE_SIZE / max(full))
    return max(1, round(full[0] * factor)), max(1, round(full[1] * factor))


def _large(engine: Engine, item: Item, view: View, kind: str) -> bytes:
    """A ``*-large`` picture: cached, else rendered alone (one at a time) at a capped size."""
    key = (item.index, kind)
    with engine.lock:
        data = engine.large.get(key)
        if data is not None:
            engine.large.move_to_end(key)
            return data
        size = large_size(view.full_size)
        if kind == "color-large":
            rgb = _output_rgb(item, size)
        else:
            rgb = gray_rgb(reduced_light(item, size, engine.max_pixels))
        data = encode_png(rgb)
        engine.large[key] = data
        while len(engine.large) > 1 and sum(map(len, engine.large.values())) > LARGE_CACHE_BYTES:
            engine.large.popitem(last=False)
        return data


def reduced_light(item: Item, size: tuple[int, int], max_pixels: int | None) -> np.ndarray:
    """The input's L plane at ``size`` ``(h, w)`` (upright), through a reduced decode.

    The samples are decoded at their own depth (no float copy of the full scan), shrunk
    to ``size`` (area average), and only then colour-managed and turned upright.

    Raises:
        DecodeError: the input cannot be decoded (the words carry none of its content).
    """
    try:
        with open(item.input, "rb") as fh:
            fmt = sniff_format(fh.read(16))
            if fmt is None:
                raise DecodeError("not a JPEG, PNG or TIFF image")
            fh.seek(0)
            raw = decode_page(fh, fmt, 0, max_pixels, f"image {item.index}")
    except (OSError, ValueError) as exc:  # DecodeError is an OSError
        raise DecodeError(
            f"image {item.index}: the input cannot be read ({type(exc).__name__})"
        ) from None
    pixels = raw.pixels
    target = size if raw.orientation < 5 else size[::-1]  # a quarter turn swaps the axes
    if pixels.shape[:2] != target:
        pixels = np.ascontiguousarray(pixels)
        pixels = cv2.resize(pixels, target[::-1], interpolation=cv2.INTER_AREA)
    profile = usable_profile(pixels, raw.icc_profile, f"image {item.index}")
    light, _, _ = light_and_preview(pixels, profile)
    return np.ascontiguousarray(orient(light, raw.orientation))


def instance_list(engine: Engine, item: Item) -> list[dict]:
    """The item's instances: index, class name, score and box in input pixels."""
    from instacolor.labels import LABEL_NAMES

    view = engine.view(item)
    inst = view.instances
    if inst is None:
        return []
    found = []
    for k in range(len(inst)):
        label = None if inst.labels is None else int(inst.labels[k])
        found.append(
            {
                "index": k,
                "name": LABEL_NAMES[label] if label is not None and label >= 0 else "object",
                "score": None if inst.scores is None else round(float(inst.scores[k]), 3),
                "box": [round(float(v), 1) for v in inst.boxes[k]],
            }
        )
    return found
