"""Colorize a crowded scene and write one figure: input | instances | fusion weights | result.

By default it takes the COCO image with the most annotated instances from
``../shared/data/coco128`` (ground-truth boxes), converts it to gray and colorizes it
with the given weights. Without that folder it builds a synthetic scene.

    python tools/demo.py                       # default weights, figure in outputs/
    python tools/demo.py --image photo.jpg --boxes "10,10,200,300;220,40,400,380"
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from instacolor import Colorizer
from instacolor.labels import LABEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT.parent / "shared" / "data" / "coco128"


def _coco_scene() -> tuple[np.ndarray, list[dict], str] | None:
    ann_file = COCO / "annotations" / "instances_train2017.json"
    if not ann_file.is_file():
        return None
    data = json.loads(ann_file.read_text())
    counts: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        counts.setdefault(ann["image_id"], []).append(ann)
    image_id = max(counts, key=lambda k: len(counts[k]))
    info = next(i for i in data["images"] if i["id"] == image_id)
    path = next(COCO.rglob(info["file_name"]))
    gray = np.asarray(Image.open(path).convert("L"))
    return gray, counts[image_id], f"{path.name} (COCO train2017, {info.get('license')})"


def _synthetic_scene() -> tuple[np.ndarray, np.ndarray, str]:
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    gray = (120 + 60 * np.sin(xx / 40.0) * np.cos(yy / 55.0)).astype(np.float32)
    boxes = np.array([[40, 200, 200, 460], [250, 120, 380, 440], [420, 220, 600, 470]])
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        gray[y0:y1, x0:x1] = 60 + 50 * i
    return np.clip(gray, 0, 255).astype(np.uint8), boxes, "synthetic scene"


def _panel(rgb: np.ndarray, height: int) -> Image.Image:
    im = Image.fromarray(rgb)
    return im.resize((round(im.width * height / im.height), height), Image.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="grayscale (or color) image to colorize")
    parser.add_argument("--boxes", help="instances as 'x0,y0,x1,y1;...' in input pixels")
    parser.add_argument("--weights", default="default", help="weights name or path")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "demo.png")
    args = parser.parse_args()

    if args.image:
        gray = np.asarray(Image.open(args.image).convert("L"))
        instances = (
            [[float(v) for v in b.split(",")] for b in args.boxes.split(";")]
            if args.boxes
            else None
        )
        source = str(args.image)
    else:
        scene = _coco_scene() or _synthetic_scene()
        gray, instances, source = scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        colorizer = Colorizer(args.weights)
    for w in caught:
        print(f"WARNING: {w.message}")
    result = colorizer.colorize(gray, instances=instances, full_result=True)

    height = 360
    panels = [_panel(np.repeat(gray[:, :, None], 3, 2), height)]
    boxed = panels[0].copy()
    draw = ImageDraw.Draw(boxed)
    scale = height / gray.shape[0]
    inst = result.instances
    if inst is not None:
        for box, label in zip(inst.boxes, inst.labels):
            x0, y0, x1, y1 = (float(v) * scale for v in box)
            draw.rectangle((x0, y0, x1, y1), outline=(255, 64, 64), width=2)
            draw.text((x0 + 3, y0 + 2), LABEL_NAMES[int(label)], fill=(255, 255, 0))
    panels.append(boxed)
    if result.weight_maps:
        inst_weight = 1.0 - result.weight_maps["conv10_2"][-1]  # all instances together
        heat = cv2.applyColorMap((inst_weight * 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.resize(heat[:, :, ::-1], (gray.shape[1], gray.shape[0]))
        overlay = (0.5 * heat + 0.5 * gray[:, :, None]).astype(np.uint8)
        panels.append(_panel(overlay, height))
    panels.append(_panel(result.image, height))
    figure = Image.new("RGB", (sum(p.width for p in panels), height), "white")
    x = 0
    for p in panels:
        figure.paste(p, (x, 0))
        x += p.width
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out)

    print(f"source: {source}, {gray.shape[1]}x{gray.shape[0]}")
    print(f"weights: {result.model} (sha256 {result.weights_sha256})")
    print(f"instances fused: {0 if inst is None else len(inst)}")
    for stage, seconds in result.timings.items():
        print(f"  {stage:<12} {seconds * 1000:8.1f} ms")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
