"""Colorize crowded scenes and write one figure: input | instances | fusion weights | result.

By default it runs on the CC-BY sample photographs in ``tools/samples/`` (converted to
gray), with their ground-truth COCO instances. Images without annotations get their
instances from the chosen detector (official weights are downloaded on first use; offline,
``--fallback`` colorizes without instances after a loud warning).

    python tools/demo.py                                   # samples, default weights
    python tools/demo.py --image photo.jpg                 # torchvision Mask R-CNN finds objects
    python tools/demo.py --image photo.jpg --detector torchvision+sam --fallback
    python tools/demo.py --image scan.tif --annotations instances.json  # your own boxes

Each row of the figure: the gray input; the instances (masks, boxes, class names); the
per-pixel fusion weights at the last fusion point (``conv10_2``) as heat overlays - the
background network's weight and the weights of the largest instances; the result; and the
original when the input was a colour photograph.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from instacolor import Colorizer
from instacolor.detection import DetectorConfig
from instacolor.errors import InputError, InstacolorError
from instacolor.io.coco import CocoAnnotations
from instacolor.labels import LABEL_NAMES

ROOT = Path(__file__).resolve().parent
SAMPLES = ROOT / "samples"
HEIGHT = 300  # panel height in the figure
PALETTE = np.array(
    [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
     (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)],
    np.uint8,
)  # fmt: skip


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _panel(rgb: np.ndarray, title: str, width: int | None = None) -> Image.Image:
    im = Image.fromarray(rgb)
    w = width or round(im.width * HEIGHT / im.height)
    im = im.resize((w, HEIGHT), Image.BILINEAR)
    ImageDraw.Draw(im).text((4, 3), title, fill=(255, 255, 255), font=_font(), stroke_width=2,
                            stroke_fill=(0, 0, 0))  # fmt: skip
    return im


def _instances_panel(gray: np.ndarray, inst) -> Image.Image:
    rgb = np.repeat(gray[:, :, None], 3, 2).astype(np.float32)
    if inst is not None and inst.masks is not None:
        for i, mask in enumerate(inst.masks):
            rgb[mask] = 0.55 * rgb[mask] + 0.45 * PALETTE[i % len(PALETTE)]
    im = _panel(rgb.astype(np.uint8), f"instances: {0 if inst is None else len(inst)}")
    if inst is None:
        return im
    draw, scale = ImageDraw.Draw(im), HEIGHT / gray.shape[0]
    for i, (box, label) in enumerate(zip(inst.boxes, inst.labels)):
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        color = tuple(int(c) for c in PALETTE[i % len(PALETTE)])
        draw.rectangle((x0, y0, x1, y1), outline=color, width=2)
        draw.text((x0 + 2, y0 + 1), LABEL_NAMES[int(label)], fill=color, font=_font(11),
                  stroke_width=1, stroke_fill=(0, 0, 0))  # fmt: skip
    return im


def _heat(gray: np.ndarray, weight: np.ndarray, title: str, size: tuple[int, int]) -> Image.Image:
    h, w = gray.shape
    top = max(float(weight.max()), 1e-6)  # each tile spans [0, its maximum], given in the title
    title = f"{title} (max {top:.2f})"
    heat = cv2.applyColorMap((np.clip(weight / top, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.resize(heat[:, :, ::-1], (w, h), interpolation=cv2.INTER_LINEAR)
    overlay = (0.55 * heat + 0.45 * gray[:, :, None]).astype(np.uint8)
    im = Image.fromarray(overlay).resize(size, Image.BILINEAR)
    ImageDraw.Draw(im).text((3, 2), title, fill=(255, 255, 255), font=_font(11), stroke_width=1,
                            stroke_fill=(0, 0, 0))  # fmt: skip
    return im


def _weights_panel(gray: np.ndarray, result) -> Image.Image | None:
    """2x2 heat overlays: the background weight and the three largest instances' weights."""
    maps = result.weight_maps.get("conv10_2")
    if maps is None or result.instances is None:
        return None
    inst = result.instances
    areas = (inst.boxes[:, 2] - inst.boxes[:, 0]) * (inst.boxes[:, 3] - inst.boxes[:, 1])
    picks = [(maps[-1], "background weight")] + [
        (maps[i], f"#{i} {LABEL_NAMES[int(inst.labels[i])]}") for i in np.argsort(-areas)[:3]
    ]
    tile = (round(gray.shape[1] * HEIGHT / gray.shape[0]) // 2, HEIGHT // 2)
    panel = Image.new("RGB", (tile[0] * 2, tile[1] * 2))
    for k, (weight, title) in enumerate(picks):
        panel.paste(_heat(gray, weight, title, tile), ((k % 2) * tile[0], (k // 2) * tile[1]))
    return panel


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The gray version of an image, and the image itself when it is in colour."""
    image = Image.open(path)
    rgb = np.asarray(image.convert("RGB")).astype(np.int16)
    is_color = np.abs(rgb - np.roll(rgb, 1, axis=2)).max() > 8
    return np.asarray(image.convert("L")), (rgb.astype(np.uint8) if is_color else None)


def _given(coco: CocoAnnotations | None, path: Path):
    try:
        return coco.instances(path) if coco else None
    except InputError:  # not in the annotation file: the detector finds the instances
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, nargs="+", help="images (default: tools/samples)")
    parser.add_argument("--annotations", type=Path, help="COCO instances JSON for the images")
    parser.add_argument("--detector", default="torchvision", help="torchvision, detectron2, +sam")
    parser.add_argument("--score-threshold", type=float, default=0.7)
    parser.add_argument("--max-instances", type=int, default=8)
    parser.add_argument(
        "--fallback", action="store_true", help="go on without instances if no detector loads"
    )
    parser.add_argument("--weights", default="default", help="weights name or path")
    parser.add_argument("--out", type=Path, default=Path("outputs") / "demo.png")
    args = parser.parse_args()

    images = args.image or sorted(SAMPLES.glob("*.jpg"))
    annotations = args.annotations or (None if args.image else SAMPLES / "annotations.json")
    coco = CocoAnnotations(annotations) if annotations else None
    given = {path: _given(coco, path) for path in images}
    needs_detector = any(inst is None for inst in given.values())
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        colorizer = Colorizer(
            args.weights,
            detector=args.detector if needs_detector else None,
            detector_config=DetectorConfig(args.score_threshold, args.max_instances),
            fallback_to_full_image=args.fallback,
        )
    for w in caught:
        print(f"\n!!! WARNING: {w.message}\n")
    print(f"weights: {colorizer.loaded.name} (sha256 {colorizer.loaded.sha256})")
    if needs_detector:
        print(f"detector: {args.detector}" + ("" if colorizer.detector else " UNAVAILABLE"))
    print(f"models loaded in {time.perf_counter() - t:.2f} s")
    rows = []
    for path in images:
        t = time.perf_counter()
        gray, original = _load(path)
        read_s = time.perf_counter() - t
        instances = given[path]
        if instances is not None:
            source = "ground-truth COCO annotations"
        elif colorizer.detector is not None:
            source = f"detector {args.detector}"
        else:
            source = "nowhere: detector unavailable, FULL-IMAGE ONLY"
        result = colorizer.colorize_full(gray, instances=instances)
        t = time.perf_counter()
        panels = [
            _panel(np.repeat(gray[:, :, None], 3, 2), "input (gray)"),
            _instances_panel(gray, result.instances),
            _weights_panel(gray, result),
            _panel(result.image, "instacolor"),
        ]
        if original is not None:
            panels.append(_panel(original, "original"))
        rows.append([p for p in panels if p is not None])
        draw_s = time.perf_counter() - t
        n = 0 if result.instances is None else len(result.instances)
        print(f"\n{path.name}: {gray.shape[1]}x{gray.shape[0]}, {n} instances from {source}")
        timings = {"read": read_s, **result.timings, "figure": draw_s}
        for stage, seconds in timings.items():
            print(f"  {stage:<12} {seconds * 1000:8.1f} ms")

    width = max(sum(p.width for p in row) for row in rows)
    figure = Image.new("RGB", (width, HEIGHT * len(rows)), "white")
    for r, row in enumerate(rows):
        x = 0
        for p in row:
            figure.paste(p, (x, r * HEIGHT))
            x += p.width
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out)
    print(f"\nfigure: {args.out}")


if __name__ == "__main__":
    try:
        main()
    except InstacolorError as err:
        raise SystemExit(f"error: {err}") from None
