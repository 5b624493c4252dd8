"""Does one point hint stay on its object? The locality protocol of ``docs/hints.md``.

Rule (fixed before measuring): COCO photos with annotations, each resized to 256x256 and
made gray; the largest *mid-sized* instance (COCO's rule: ``32^2 <= area < 96^2`` in the
original pixels) gets one point hint (radius 1) at its innermost pixel (the maximum of
the mask's distance transform), coloured with whichever of four vivid colours (red
``#d02020``, green ``#20a040``, blue ``#2040d0``, yellow ``#e0c020``) lies farthest in ab
from the automatic output at that pixel. The photo is colorized without instances (the
full-image network alone, as a click on a photo without a detector), with and without the
hint, and compared in Lab:

* ``object``: mean ``|delta ab|`` over the instance's mask;
* ``outside``: fraction of the pixels outside the mask dilated by 8 px whose
  ``|delta ab| > 6``.

Printed: per image and the median / mean over images. ``--split tune`` uses the photos
that are not held out (every 4th image is held out, as ``instacolor evaluate --coco
--holdout-every 4``), ``--split heldout`` the held-out ones (the reported numbers).

``--oracle FOLDER --hints 0,10`` prints instead the oracle-hint curve of
``instacolor evaluate --data FOLDER --hints`` (same points, same seeds; propagation only;
a COCO folder: its held-out photos, as ``--coco``): locality must not cost the gain of
many hints.

    python tools/measure_hint_locality.py --coco DATA/coco128 --split heldout
    python tools/measure_hint_locality.py --oracle DATA/eval/kodak24 --hints 0,10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from instacolor import Colorizer, Hints
from instacolor.evaluation import (
    ab_planes,
    coco_heldout,
    coco_scenes,
    gray_plane,
    hint_curve,
    read_rgb,
    small,
)
from instacolor.hints import as_lab
from instacolor.io.coco import decode_segmentation
from instacolor.train.data import list_images

VIVID = ("#d02020", "#20a040", "#2040d0", "#e0c020")
MARGIN = 8  # pixels of dilation at 256x256
THRESHOLD = 6.0  # ab units


def photos(coco: Path, split: str, every: int = 4):
    """The held-out or the other annotated scenes (:class:`instacolor.evaluation.CocoScene`)."""
    held = coco_heldout(coco, every)
    if split == "heldout":
        return held
    held_paths = {scene.path for scene in held}
    return [scene for scene in coco_scenes(coco) if scene.path not in held_paths]


def target_mask(path: Path, annotations) -> np.ndarray | None:
    """The 256x256 mask of the largest mid-sized instance, or None."""
    mid = [a for a in annotations if 32**2 <= a["area"] < 96**2 and not a.get("iscrowd")]
    if not mid:
        return None
    best = max(mid, key=lambda a: a["area"])
    with Image.open(path) as image:
        width, height = image.size
    mask = decode_segmentation(best["segmentation"], (height, width))
    small = np.asarray(Image.fromarray(mask).resize((256, 256), Image.NEAREST))
    return small if small.sum() >= 4 else None


def measure(colorizer: Colorizer, path: Path, mask: np.ndarray) -> tuple[float, float]:
    """``(object mean |delta ab|, outside fraction > THRESHOLD)`` for one photo."""
    truth = small(read_rgb(path))
    gray = gray_plane(truth)
    auto = colorizer.colorize(gray)
    auto_ab = ab_planes(auto)
    depth = ndimage.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    here = auto_ab[:, y, x]
    color = max(VIVID, key=lambda c: float(np.hypot(as_lab(c).a - here[0], as_lab(c).b - here[1])))
    hinted = colorizer.colorize(gray, hints=Hints(points=[(int(x), int(y), color, 1)]))
    delta = np.sqrt(((ab_planes(hinted) - auto_ab) ** 2).sum(0))
    outside = ~ndimage.binary_dilation(mask, iterations=MARGIN)
    return float(delta[mask].mean()), float((delta[outside] > THRESHOLD).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, help="a COCO folder (coco128)")
    parser.add_argument("--oracle", type=Path, help="a folder of colour photos (kodak24)")
    parser.add_argument("--hints", default="0,10", help="with --oracle: numbers of points")
    parser.add_argument("--split", choices=("heldout", "tune"), default="heldout")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--reach", type=float, default=None, help="override HintSettings.reach")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    colorizer = Colorizer(args.weights)
    if args.reach is not None:
        from dataclasses import replace

        colorizer.hinting = replace(colorizer.hinting, reach=args.reach)
    if args.oracle:
        if (args.oracle / "annotations").is_dir():  # COCO: the held-out photos, as evaluate
            files = [s.path for s in coco_heldout(args.oracle, 4)][: args.limit or None]
        else:
            files = list_images(args.oracle)[: args.limit or None]
        items = [(i, read_rgb(p)) for i, p in enumerate(files)]
        ks = [int(k) for k in args.hints.split(",")]
        curve = hint_curve({"propagation": colorizer}, items, ks, f"oracle, {args.oracle.name}")
        print(curve.markdown())
        return
    if args.coco is None:
        parser.error("give --coco (locality) or --oracle (the oracle-hint curve)")
    rows = []
    items = photos(args.coco, args.split)
    for scene in items[: args.limit or None]:
        path = scene.path
        mask = target_mask(path, scene.annotations)
        if mask is None:
            continue
        inside, outside = measure(colorizer, path, mask)
        rows.append((inside, outside))
        print(f"{path.name}  object {inside:6.2f}  outside>6 {outside:.3f}", flush=True)
    inside, outside = np.array(rows).T
    print(
        f"{args.split}: {len(rows)} photos; object |delta ab| median {np.median(inside):.2f} "
        f"mean {inside.mean():.2f}; outside fraction >{THRESHOLD:g} median "
        f"{np.median(outside):.3f} mean {outside.mean():.3f}"
    )


if __name__ == "__main__":
    main()
