"""Pick inference settings (working size, saturation, decoding) on validation photos, not test sets.

    # stage 1's held-out train/ photos and the coco128 scenes tools/evaluate.py does not score
    python tools/tune_inference.py --weights runs/candidate.safetensors \
        --data "$INSTACOLOR_DATA"/train --every 115 --coco "$INSTACOLOR_DATA"/coco128 \
        --sizes 128 160 192 --saturations 1.0 1.15 1.3 1.45
    # weights with a trained class head: decodings (regression, annealed mean at T, and
    # annealed-mean:T:MIX, the annealed mean blended with the regression: MIX * annealed +
    # (1 - MIX) * regression)
    python tools/tune_inference.py --weights runs/v5.safetensors --data "$INSTACOLOR_DATA"/train \
        --every 115 --decodings regression annealed-mean:0.38 annealed-mean:1 \
        annealed-mean:0.38:0.75

The full-image network colorizes every image through the public API at each working
size and saturation; the result and the original are both resized to 256x256 (as
``tools/evaluate.py`` scores) and PSNR and colourfulness are averaged per set, beside
the gray baseline. With ``--coco`` the scenes are those tools/train.py trains stage 3 on
(every image but each ``--holdout-every``-th): the full-image network never saw them,
and the held-out scenes stay unseen for tools/evaluate.py. The best setting per set
(highest PSNR) is printed last, and with ``--decodings`` the decoding the weights'
default is chosen by: the highest PSNR among those whose colourfulness reaches
``--min-colorfulness`` (0.6) of the originals', else the regression. Each row prints the
mix its decoding ran with (the weights' default where the spec gives none; - for
regression).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import _gray, _small  # tools/evaluate.py, beside this file: its 256x256 scoring

from instacolor import Colorizer
from instacolor.decode import Decoding
from instacolor.errors import InputError
from instacolor.metrics import colorfulness, gray_baseline, psnr
from instacolor.train.data import list_images


def load_set(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gray L plane at full resolution, original at 256x256)`` of every file."""
    out = []
    for path in files:
        truth = np.asarray(Image.open(path).convert("RGB"))
        out.append((_gray(truth), _small(truth)))
    return out


def parse_decoding(text: str) -> tuple[str, float | None, float | None]:
    """``(mode, temperature, mix)`` of a ``--decodings`` spec (None: the weights' default).

    ``regression``, ``annealed-mean``, ``annealed-mean:T`` or ``annealed-mean:T:MIX``
    (``T`` in (0, 10], ``MIX`` in [0, 1]): ``"annealed-mean:0.38:0.75"`` gives
    ``("annealed-mean", 0.38, 0.75)``.

    Raises:
        InputError: any other text.
    """
    mode, *values = text.split(":")
    try:
        numbers = [float(v) for v in values]
        if (mode == "regression" and numbers) or len(numbers) > 2:
            raise ValueError("regression takes no values, annealed-mean at most T and MIX")
        Decoding(mode, *numbers)  # the same checks as the API's
    except (ValueError, InputError) as err:
        raise InputError(
            f"--decodings: expected regression, annealed-mean, annealed-mean:T or "
            f"annealed-mean:T:MIX (T in (0, 10], MIX in [0, 1]), received {text!r} ({err}); "
            "e.g. annealed-mean:0.38:0.75"
        ) from None
    temperature, mix = [*numbers, None, None][:2]
    return mode, temperature, mix


def score_set(
    colorizer: Colorizer, images: list[tuple[np.ndarray, np.ndarray]], decoding: str = "regression"
) -> dict:
    """Mean PSNR / colourfulness at 256x256 of the full-image network on ``images``, and
    the mix the decoding ran with (None for regression)."""
    mode, temperature, mix = parse_decoding(decoding)
    rows, used = [], None
    for gray, small_truth in images:
        result = colorizer.colorize(
            gray, decode=mode, temperature=temperature, mix=mix, full_result=True
        )
        pred, used = _small(result.image), result.mix
        rows.append((psnr(pred, small_truth), colorfulness(pred)))
    return {
        "psnr": float(np.mean([r[0] for r in rows])),
        "colorfulness": float(np.mean([r[1] for r in rows])),
        "mix": used,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--data", type=Path, help="folder of colour validation photos")
    parser.add_argument("--every", type=int, default=1, help="with --data: every Nth image")
    parser.add_argument("--coco", type=Path, help="COCO folder: its training (non-held-out) scenes")
    parser.add_argument("--holdout-every", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--saturations", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--decodings",
        nargs="+",
        default=["regression"],
        help="regression, annealed-mean:T and/or annealed-mean:T:MIX (weights with a "
        "trained class head; MIX: the annealed mean's weight blended with the regression)",
    )
    parser.add_argument("--min-colorfulness", type=float, default=0.6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.every < 1 or args.holdout_every < 2:
        parser.error("--every: expected at least 1; --holdout-every: at least 2")
    if not (args.data or args.coco):
        parser.error("give --data and/or --coco")
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # every setting, before any image is scored
            for spec in args.decodings:
                parse_decoding(spec)
            colorizers = {
                (z, v): Colorizer(args.weights, working_size=z, saturation=v)
                for z, v in itertools.product(args.sizes, args.saturations)
            }
        except InputError as err:
            parser.error(str(err))
    sets: dict[str, list[Path]] = {}
    if args.data:
        sets[f"{args.data.name} every {args.every}"] = list_images(args.data)[:: args.every]
    if args.coco:
        files = list_images(args.coco)
        held = set(files[:: args.holdout_every])
        sets[f"{args.coco.name} training scenes"] = [f for f in files if f not in held]
    loaded = next(iter(colorizers.values())).loaded
    print(f"weights: {loaded.name} (sha256 {loaded.sha256})\n")
    best, chosen = {}, {}
    for name, files in sets.items():
        images = load_set(files)
        gray = float(np.mean([psnr(gray_baseline(t), t) for _, t in images]))
        truth_c = float(np.mean([colorfulness(t) for _, t in images]))
        print(f"### {name}, {len(files)} images, 256x256 (gray baseline {gray:.3f} dB)\n")
        print(
            "| working size | saturation | decoding | mix | psnr | colorfulness | of originals' |"
        )
        print("|---|---|---|---|---|---|---|")
        for ((size, sat), colorizer), dec in itertools.product(colorizers.items(), args.decodings):
            row = score_set(colorizer, images, dec)
            ratio = row["colorfulness"] / truth_c
            mix = "-" if row["mix"] is None else f"{row['mix']:g}"
            print(
                f"| {size} | {sat:g} | {dec} | {mix} | {row['psnr']:.3f} "
                f"| {row['colorfulness']:.2f} | {ratio:.2f} |",
                flush=True,
            )
            if name not in best or row["psnr"] > best[name][3]:
                best[name] = (size, sat, dec, row["psnr"])
            vivid = ratio >= args.min_colorfulness
            if vivid and (name not in chosen or row["psnr"] > chosen[name][1]):
                chosen[name] = (dec, row["psnr"])
        print()
    for name, (size, sat, dec, value) in best.items():
        print(f"best on {name}: working size {size}, saturation {sat:g}, {dec} ({value:.3f} dB)")
    if len(args.decodings) > 1:
        for name in sets:
            dec, value = chosen.get(name, ("regression", None))
            why = f"{value:.3f} dB" if value is not None else "none reaches the colourfulness"
            print(f"default decoding by the rule on {name}: {dec} ({why})")


if __name__ == "__main__":
    main()
