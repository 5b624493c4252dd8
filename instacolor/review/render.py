"""The pictures the review page shows, as PNG bytes, at display size.

Kinds (:data:`KINDS`): ``thumb`` (the output, long side :data:`THUMB_SIZE`), ``gray``
(the input's L), ``color`` (the output file), ``gray-large`` and ``color-large`` (the
same at up to :data:`LARGE_SIZE` pixels, for zooming into large scans), ``confidence``
(the confidence map over the gray input: red where the model is unsure; None without a
trained head) and ``instances`` (the instance masks, or boxes, in distinct colours over
the gray input).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from instacolor.errors import InputError
from instacolor.io.archival import read_scan
from instacolor.review.engine import Engine, View, encode_png, gray_rgb
from instacolor.review.state import Item

__all__ = ["KINDS", "THUMB_SIZE", "instance_list", "render"]

KINDS = ("thumb", "gray", "color", "confidence", "instances", "gray-large", "color-large")
#: Longest side of the ``*-large`` pictures the page loads when zoomed in on a large scan.
LARGE_SIZE = 4096
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
        full = view.full_size
        factor = min(1.0, LARGE_SIZE / max(full))
        size = (max(1, round(full[0] * factor)), max(1, round(full[1] * factor)))
        if kind == "color-large":
            rgb = _output_rgb(item, size)
        else:
            light = read_scan(item.input, max_pixels=None).light
            rgb = gray_rgb(cv2.resize(light, size[::-1], interpolation=cv2.INTER_AREA))
    elif kind == "confidence":
        rgb = _confidence(view)
    else:
        rgb = _instances(engine, view)
    data = None if rgb is None else encode_png(rgb)
    if data is not None and not kind.endswith("-large"):  # large ones are not kept
        view.images[kind] = data
    return data


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
