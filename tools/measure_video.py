"""Temporal stability of ``instacolor video``: stabilised against per-frame colour.

Prints, for per-frame and stabilised output of the same clip, the warp error (chroma
difference along the flow between consecutive frames, occlusions masked; Lai et al.
2018), CDC (TCVC's colour distribution consistency, d = 1, 2, 4) and, for a colour clip
(``--color``: the clip is turned gray first), PSNR against the original colours, and the
original colours' own warp error and CDC (what exact colours would score). The network
runs once per frame; both modes reuse its prediction.

The frames are measured as 8-bit RGB (``--depth 8``, what 8-bit frames and videos hold) or
16-bit (``--depth 16``). Rounding to 8 bits moves the chroma of every pixel a little, and
differently from frame to frame as the luminance under a point changes, so an 8-bit warp
error has a floor that no temporal filter removes: the ``steady`` row is that floor, the
score of one uniform chroma (the per-frame output's mean saturation and hue) on every
pixel of every frame.

Rows: ``per-frame``, ``steady``, ``stabilised`` (the library's setting or the first
``--memory``), ``stabilised, rounding not carried`` (the same without
``carry_rounding``), one row per further ``--memory`` and, with ``--follow``, one row per
memory and follow value (the stabiliser's innovation gate, ``Stabilization.follow``),
one row per ``--variant`` (settings changed from the library's, e.g. the flow preset).
Where the flow grid is the frame (clips up to 512 pixels wide), ``chroma_warp_error`` is
the warp error of the float chroma before it is joined to L and rounded, and
``reliability`` the stabiliser's mean flow reliability.

Every row's warp error is measured along the flow of the INPUT (its gray frames, the L
that is colorized: ``warp_error(..., guide=lights)``), the same flow for every output of
a clip, as in Lai et al. 2018 and TCVC.

Usage:
    python tools/measure_video.py CLIP [--frames 60] [--width 432] [--color]
    python tools/measure_video.py IMAGE --pan 48 [--width 384]   # a camera pan over a photo
    python tools/measure_video.py CLIP ... --depth 16   # without the 8-bit rounding

CLIP is a video file or a folder of frames (with ``--color``: PNG/JPEG frames); ``--pan N``
makes an N-frame pan with a slow zoom over a colour photograph (a colour clip with known
colours for PSNR).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instacolor import Colorizer
from instacolor.reconstruct import reconstruct
from instacolor.video import FrameColorizer, Stabilization
from instacolor.video.flow import FlowSettings
from instacolor.video.metrics import _ab, cdc, chroma_warp_error, psnr, warp_error
from instacolor.video.sources import open_source


class _Cached:
    """The colorizer's per-frame prediction computed once for both modes."""

    def __init__(self, colorizer: Colorizer) -> None:
        self.colorizer = colorizer
        self.cache: dict[str, object] = {}

    def colorize_light(self, light, **kwargs):
        key = hashlib.sha1(light.tobytes() + repr(sorted(kwargs.items())).encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.colorizer.colorize_light(light, **kwargs)
        return self.cache[key]


def _pan(image: Path, frames: int, width: int) -> list[np.ndarray]:
    rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    out_w, out_h = width, round(width * 9 / 16 / 2) * 2
    clip = []
    for i in range(frames):
        zoom = 0.7 - 0.1 * i / max(frames - 1, 1)
        cw, ch = w * zoom, w * zoom * out_h / out_w
        x0 = (w - cw) * i / max(frames - 1, 1)
        y0 = (h - ch) * 0.5 + 0.1 * (h - ch) * np.sin(i / 6)
        m = np.array([[out_w / cw, 0, -x0 * out_w / cw], [0, out_h / ch, -y0 * out_h / ch]])
        clip.append(cv2.warpAffine(rgb, m, (out_w, out_h), flags=cv2.INTER_AREA))
    return clip


def _colour_frames(clip: Path):
    """BGR frames of a colour video file or of a folder of PNG/JPEG frames, in name order."""
    if clip.is_dir():
        for path in sorted(p for p in clip.iterdir() if p.suffix.lower() in (".png", ".jpg")):
            yield cv2.imread(str(path))
        return
    cap = cv2.VideoCapture(str(clip))
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield bgr


def _read(clip: Path, frames: int, width: int) -> list[np.ndarray]:
    info, source = open_source(clip)
    out = []
    scale = width / info.width
    size = (width, round(info.height * scale / 2) * 2)
    for frame in source:
        if len(out) == frames:
            break
        light = cv2.resize(frame.light, size, interpolation=cv2.INTER_AREA)
        gray = np.clip(light * 2.55, 0, 255).astype(np.uint8)  # display only
        out.append((light, gray))
    source.close()
    return out


def _steady(lights: list[np.ndarray], frames: list[np.ndarray], dtype) -> list[np.ndarray]:
    """Every frame in one uniform chroma: the mean saturation and hue of ``frames``."""
    ab = np.stack([_ab(f).reshape(-1, 2).mean(axis=0) for f in frames]).mean(axis=0)
    size = np.mean([np.linalg.norm(_ab(f), axis=2).mean() for f in frames])
    ab = ab / max(float(np.linalg.norm(ab)), 1e-6) * size
    out = []
    for light in lights:
        chroma = torch.tensor(ab, dtype=torch.float32)[:, None, None].expand(2, *light.shape)
        chroma = chroma.contiguous()
        out.append(  # rounded as the video frames are
            reconstruct(chroma, torch.from_numpy(light), light, out_dtype=dtype, rounding="chroma")
        )
    return out


def _psnr8(frames: list[np.ndarray], originals: list[np.ndarray]) -> float:
    if frames[0].dtype == np.uint16:
        frames = [f / 257.0 for f in frames]
    return psnr(frames, originals)


def _variant(spec: str) -> Stabilization:
    """``memory=0.99,flow=medium,follow=4,carry=0`` -> the library's settings with those."""
    fields = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key == "flow":
            fields["flow"] = FlowSettings(preset=value)
        elif key == "carry":
            fields["carry_rounding"] = value == "1"
        elif key in ("memory", "follow"):
            fields[key] = float(value)
        else:
            raise SystemExit(f"--variant: unknown key {key!r} (memory, follow, flow, carry)")
    return Stabilization(**fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=432)
    parser.add_argument("--pan", type=int, help="make an N-frame pan over the photo CLIP")
    parser.add_argument("--color", action="store_true", help="CLIP is in colour: PSNR too")
    parser.add_argument("--weights", default="default")
    parser.add_argument(
        "--memory", help="stabiliser memory, or several, comma-separated (default: the library's)"
    )
    parser.add_argument(
        "--follow", help="also rows with these follow values (comma-separated), per memory"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="SPEC",
        help="a further stabilised row, e.g. memory=0.99,flow=medium,follow=4 (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--depth", type=int, choices=(8, 16), default=8, help="output bits")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    originals = None
    if args.pan:
        originals = _pan(args.clip, args.pan, args.width)
    elif args.color:
        originals = []
        for bgr in _colour_frames(args.clip):
            if len(originals) == args.frames:
                break
            h = round(bgr.shape[0] * args.width / bgr.shape[1] / 2) * 2
            bgr = cv2.resize(bgr, (args.width, h), interpolation=cv2.INTER_AREA)
            originals.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if originals is not None:  # a colour clip turned gray: L of the colour frames
        from instacolor.io.image import read_luminance

        lights = [read_luminance(f, color_tolerance=1.0)[0] for f in originals]
    else:
        lights = [light for light, _ in _read(args.clip, args.frames, args.width)]
    colorizer = _Cached(Colorizer(args.weights))
    size = lights[0].shape
    results = {}
    if originals is not None:  # what exact colours score: not 0 (real colour changes, flow errors)
        row = {
            "warp_error": round(warp_error(originals, guide=lights), 4),
            "cdc": round(cdc(originals), 6),
        }
        print("original", json.dumps(row), flush=True)
    memories = [None] if args.memory is None else [float(m) for m in args.memory.split(",")]
    first = {} if memories[0] is None else {"memory": memories[0]}
    modes = [
        ("per-frame", Stabilization(enabled=False)),
        ("stabilised", Stabilization(**first)),  # the ratio below: this row's
        ("stabilised, rounding not carried", Stabilization(**first, carry_rounding=False)),
    ]
    modes += [(f"stabilised memory {m}", Stabilization(memory=m)) for m in memories[1:]]
    follows = [] if args.follow is None else [float(f) for f in args.follow.split(",")]
    for m in memories:
        memory = Stabilization().memory if m is None else m
        modes += [
            (f"stabilised memory {memory} follow {f}", Stabilization(memory=memory, follow=f))
            for f in follows
        ]
    modes += [(f"stabilised {spec}", _variant(spec)) for spec in args.variant]
    for name, settings in modes:
        dtype = np.uint16 if args.depth == 16 else np.uint8
        engine = FrameColorizer(colorizer, size, settings, out_dtype=dtype)
        frames, steps = zip(*(engine(i, light) for i, light in enumerate(lights)), strict=True)
        row = {
            "warp_error": round(warp_error(frames, guide=lights), 4),
            "cdc": round(cdc(frames), 6),
        }
        if engine.grid == size:  # the chroma before it is joined to L and rounded
            row["chroma_warp_error"] = round(chroma_warp_error([s.ab for s in steps], lights), 4)
        if name.startswith("stabilised"):
            row["reliability"] = round(float(np.mean([s.reliable for s in steps[1:]])), 3)
        if originals is not None:
            row["psnr"] = round(_psnr8(frames, originals), 3)
        if name.startswith("stabilised"):
            row["memory"] = settings.memory
            row["follow"] = settings.follow
            row["flow"] = settings.flow.preset
        results[name] = row
        print(name, json.dumps(row), flush=True)
        if name == "per-frame":
            steady = _steady(lights, frames, dtype)
            row = {"warp_error": round(warp_error(steady, guide=lights), 4)}
            print("steady", json.dumps(row), flush=True)
    ratio = results["stabilised"]["warp_error"] / results["per-frame"]["warp_error"]
    print(
        f"clip {args.clip.name}: {len(lights)} frames {size[1]}x{size[0]}; stabilised/per-frame "
        f"warp error {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
