"""Colour from a reference photo: PSNR against automatic, and the time it costs.

Protocol (``docs/reference.md``; fixed before measuring): each photo of ``--data`` is
resized to 256x256 and made gray (its own Lab L); it is colorized

* ``automatic``: without a reference;
* ``same scene``: with a mirrored, rescaled crop of the original photo as reference
  (rows 10 % to 87.5 %, columns 1/6 to 11/12 of the original, flipped left-right,
  scaled by 3/4): the same scene seen otherwise;
* ``unrelated``: with the next photo of the folder (the last takes the first) as
  reference.

A pair whose reference is refused (a near-gray photo: no colour to take) is skipped.
Printed: mean PSNR (uint8 RGB) and colourfulness per mode, the gain over automatic, and
the share of working cells fixed by a match. ``--time IMAGE`` instead times one photo at
1000x1000 (1 MP) without and with a reference (best of ``--repeats`` 5, the cases taking
turns, torch threads ``--threads``).

``--clips CLIP [CLIP ...]`` scores pairs from colour clips (a video file or a folder of
PNG/JPEG frames in name order): frame ``k`` (``--gaps``, default 10 20 40) made gray is
colorized with the clip's frame 0 as reference, against automatic; with two clips or more,
also with the next clip's frame 0 as an unrelated reference. Frames are squashed to
256x256 as the photos are.

    python tools/measure_reference.py --data DATA/eval/kodak24
    python tools/measure_reference.py --data DATA/coco128 --every 4
    python tools/measure_reference.py --time DATA/eval/kodak24/kodim05.png
    python tools/measure_reference.py --clips CLIP_A CLIP_B ... --gaps 10 20 40
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor import Colorizer, InputError
from instacolor.evaluation import gray_plane, small
from instacolor.hints import match_references, read_references
from instacolor.io.image import read_luminance
from instacolor.metrics import colorfulness, psnr
from instacolor.models.inputs import prepare_inputs
from instacolor.train.data import list_images


def mirrored_crop(rgb: np.ndarray) -> np.ndarray:
    """The protocol's same-scene reference of an ``(H, W, 3)`` photo."""
    h, w = rgb.shape[:2]
    crop = np.ascontiguousarray(rgb[h // 10 : h - h // 8, w // 6 : w - w // 12][:, ::-1])
    size = (crop.shape[1] * 3 // 4, crop.shape[0] * 3 // 4)
    return np.asarray(Image.fromarray(crop).resize(size, Image.BICUBIC))


def matched_share(colorizer: Colorizer, gray: np.ndarray, reference: np.ndarray) -> float:
    """Share of the working cells a reference's confident matches fix."""
    light, _ = read_luminance(gray)
    inputs = prepare_inputs(light, None, None, colorizer.working_size)
    match = match_references(inputs.light, read_references(reference))
    return float(match.known.mean())


def evaluate(colorizer: Colorizer, files: list[Path]) -> None:
    modes = ("automatic", "same scene", "unrelated")
    scores = {m: [] for m in modes}
    shares = {m: [] for m in modes[1:]}
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    for i, (path, original) in enumerate(zip(files, originals)):
        truth = small(original)
        gray = gray_plane(truth)
        refs = {"same scene": mirrored_crop(original), "unrelated": originals[(i + 1) % len(files)]}
        try:
            read_references(list(refs.values()))
        except InputError as exc:  # a near-gray photo as reference: refused, photo skipped
            print(f"{path.name}  skipped: {exc}", flush=True)
            continue
        _score_modes(colorizer, path.name, gray, truth, refs, scores)
        for mode in shares:
            shares[mode].append(matched_share(colorizer, gray, refs[mode]))
    _print_table(colorizer, "photos", scores, shares)


def _score_modes(colorizer, name: str, gray, truth, refs: dict, scores: dict) -> None:
    """Colorize ``gray`` once per mode of ``scores`` (``refs``: the mode's reference), add
    ``(psnr, colourfulness)`` to each and print the row."""
    row = [name]
    for mode in scores:
        out = colorizer.colorize(gray, reference=refs.get(mode))
        scores[mode].append((psnr(out, truth), colorfulness(out)))
        row.append(f"{mode} {scores[mode][-1][0]:.2f}")
    print("  ".join(row), flush=True)


def _print_table(colorizer, unit: str, scores: dict, shares: dict | None = None) -> None:
    """The mean PSNR, gain over automatic and colourfulness per mode (and matched share)."""
    auto = np.mean([s[0] for s in scores["automatic"]])
    print(f"\n{len(scores['automatic'])} {unit}, 256x256, weights {colorizer.loaded.name}\n")
    extra = " share of cells matched |" if shares is not None else ""
    print("| mode | psnr | gain | colourfulness |" + extra)
    print("|---|---|---|---|" + ("---|" if shares is not None else ""))
    for mode in scores:
        p, c = np.mean(scores[mode], 0)
        row = f"| {mode} | {p:.3f} | {p - auto:+.3f} | {c:.2f} |"
        if shares is not None:
            row += f" {np.mean(shares[mode]):.4f} |" if mode in shares else "  |"
        print(row)


def clip_frames(clip: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The ``(H, W, 3)`` uint8 RGB frames of ``clip`` whose index is in ``wanted``."""
    import measure_video  # tools/: its reader of colour clips (a video or PNG/JPEG frames)

    out = {}
    for i, bgr in enumerate(measure_video._colour_frames(clip)):
        if i > max(wanted):
            break
        if i in wanted:
            out[i] = np.ascontiguousarray(bgr[:, :, ::-1])
    return out


def evaluate_clips(colorizer: Colorizer, clips: list[Path], gaps: list[int]) -> None:
    """Frame k of each clip with its frame 0 (same scene) or the next clip's (unrelated)."""
    frames = {clip: clip_frames(clip, {0, *gaps}) for clip in clips}
    modes = ("automatic", "frame 0", "unrelated") if len(clips) > 1 else ("automatic", "frame 0")
    scores: dict[str, list] = {m: [] for m in modes}
    for i, clip in enumerate(clips):
        refs = {"frame 0": frames[clip][0], "unrelated": frames[clips[(i + 1) % len(clips)]][0]}
        try:
            read_references(list(refs.values()))
        except InputError as exc:  # a toned frame 0: refused as photos are, clip skipped
            print(f"{clip.name} skipped: {exc}", flush=True)
            continue
        for k in gaps:
            if k not in frames[clip]:
                print(f"{clip.name} frame {k}: the clip is shorter, skipped", flush=True)
                continue
            truth = small(frames[clip][k])
            gray = gray_plane(truth)
            _score_modes(colorizer, f"{clip.name} frame {k}", gray, truth, refs, scores)
    _print_table(colorizer, "pairs", scores)


def timing(colorizer: Colorizer, image: Path, repeats: int = 5) -> None:
    rgb = Image.open(image).convert("RGB").resize((1000, 1000), Image.BICUBIC)
    gray = np.asarray(rgb.convert("L"))
    reference = mirrored_crop(np.asarray(rgb))
    colorizer.colorize(gray, reference=reference)  # warm-up (encoder load)
    # "reference": a new photo each call (encoded with the target); "reference, kept": one
    # read Reference reused, as a batch with --reference does (its cells encoded once)
    kept = read_references(reference)
    colorizer.colorize(gray, reference=kept)
    cases = (("automatic", None), ("reference", reference), ("reference, kept", kept))
    # the cases take turns: the time of a call depends on what the process ran before it
    # (the automatic path measured 0.13-0.15 s CPU before any reference call, 0.10-0.12 after)
    runs = {label: [] for label, _ in cases}
    cpus = {label: [] for label, _ in cases}
    for _ in range(repeats):
        for label, ref in cases:
            t0, c0 = time.perf_counter(), time.process_time()
            colorizer.colorize(gray, reference=ref)
            runs[label].append(time.perf_counter() - t0)
            cpus[label].append(time.process_time() - c0)
    best = {label: min(runs[label]) for label in runs}
    cpu = {label: min(cpus[label]) for label in cpus}
    for label, _ in cases:
        print(
            f"1000x1000 {label:15s} best of {repeats}: {best[label]:.3f} s wall "
            f"({best[label] / best['automatic']:.2f}x), {cpu[label]:.3f} s CPU "
            f"({cpu[label] / cpu['automatic']:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a folder of colour photos")
    parser.add_argument("--time", type=Path, help="one photo to time at 1 MP")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="--time: best of N (turns)")
    parser.add_argument("--every", type=int, default=1, help="every Nth photo (coco128: 4)")
    parser.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    parser.add_argument(
        "--min-score", type=float, help="a study: matches' least score (default: the library's)"
    )
    parser.add_argument(
        "--match-dtype", choices=("float32", "bfloat16"),
        help="a study: the matching encoder's precision (default: the library's choice)",
    )  # fmt: skip
    parser.add_argument(
        "--mirror", choices=("pass", "flip"),
        help="a study: the mirror's own encoder pass, or the reference's cells flipped",
    )  # fmt: skip
    parser.add_argument("--clips", type=Path, nargs="+", help="colour clips: frame k with 0")
    parser.add_argument("--gaps", type=int, nargs="+", default=[10, 20, 40], help="--clips: k")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import instacolor.hints.reference as matching

    studies = {  # the library's settings a study replaces
        "MIN_SCORE": args.min_score,
        "MATCH_DTYPE": args.match_dtype and getattr(torch, args.match_dtype),
        "MIRROR": args.mirror,
    }
    for name, value in studies.items():
        if value is not None:
            setattr(matching, name, value)
    colorizer = Colorizer(args.weights)
    if args.time:
        timing(colorizer, args.time, args.repeats)
    elif args.clips:
        evaluate_clips(colorizer, args.clips, args.gaps)
    elif args.data:
        evaluate(colorizer, list_images(args.data)[:: args.every][: args.limit or None])
    else:
        parser.error("give --data, --clips or --time")


if __name__ == "__main__":
    main()
