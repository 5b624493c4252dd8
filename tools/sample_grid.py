"""A figure of samples: gray | each weights file | the last with K oracle hints | original.

    python tools/sample_grid.py --weights v4=default --weights v5=runs/v5.safetensors \
        --hints 5 --data "$INSTACOLOR_DATA/eval/kodak24" --images 6 --out docs/images/x.jpg

Each image is shown ``--height`` pixels high; every model colorizes it at that size with
its own default decoding. The hinted column takes ``--hints`` oracle points drawn as
``instacolor evaluate --hints`` draws them (3x3 ground-truth mean ab around uniformly drawn
pixels, seed ``(0, image index)``), drawn as small white-ringed dots. A column header
names each column. Not a test.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from instacolor import Colorizer
from instacolor.evaluation import gray_plane, oracle_hints


def _mark(rgb: np.ndarray, hints, truth: np.ndarray) -> np.ndarray:
    """``rgb`` with each hint point drawn as a dot of the original's colour, white-ringed."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for point in hints.points:
        fill = tuple(int(v) for v in truth[int(point.y), int(point.x)])
        box = (point.x - 4, point.y - 4, point.x + 4, point.y + 4)
        draw.ellipse(box, fill=fill, outline=(255, 255, 255), width=2)
    return np.asarray(image)


def _header(labels: list[str], widths: list[int]) -> np.ndarray:
    image = Image.new("RGB", (sum(widths), 18), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    x = 0
    for label, width in zip(labels, widths):
        draw.text((x + 4, 3), label, fill=(0, 0, 0))
        x += width
    return np.asarray(image)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", action="append", required=True, help="LABEL=WEIGHTS (repeatable)")
    p.add_argument("--hints", type=int, default=5, help="oracle points for the last weights (5)")
    data = Path(os.environ.get("INSTACOLOR_DATA", "data"))  # the data folder
    p.add_argument("--data", type=Path, default=data / "eval" / "kodak24")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--every", type=int, default=4, help="take every n-th image of --data (4)")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = []
    for item in args.weights:
        label, _, weights = item.partition("=")
        if not weights:
            p.error(f"--weights: expected LABEL=WEIGHTS, received {item!r}")
        models.append((label, Colorizer(weights)))
    files = sorted(f for f in args.data.iterdir() if f.suffix.lower() in {".png", ".jpg"})
    files = files[:: args.every][: args.images]
    if not files:
        p.error(f"--data: no .png/.jpg images in {args.data}")
    rows, labels = [], ["gray"] + [m[0] for m in models]
    labels += [f"{models[-1][0]} + {args.hints} hints", "original"]
    for index, path in enumerate(files):
        truth = Image.open(path).convert("RGB")
        size = (round(truth.width * args.height / truth.height), args.height)
        truth = np.asarray(truth.resize(size, Image.LANCZOS))
        gray = gray_plane(truth)
        hints = oracle_hints(truth, args.hints, (0, index))
        cells = [np.repeat(gray[..., None], 3, 2)]
        cells += [colorizer.colorize(gray) for _, colorizer in models]
        cells.append(_mark(models[-1][1].colorize(gray, hints=hints), hints, truth))
        cells.append(truth)
        rows.append(np.concatenate([np.pad(c, ((0, 4), (0, 4), (0, 0)), constant_values=255)
                                    for c in cells], 1))  # fmt: skip
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = _header(labels, [rows[0].shape[1] // len(labels)] * len(labels))
    header = np.pad(header, ((0, 0), (0, width - header.shape[1]), (0, 0)), constant_values=255)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([header, *rows])).save(args.out, quality=90)
    print(f"wrote {args.out}: {len(files)} images, columns {' | '.join(labels)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
