"""8-bit quantisation of colorized frames: nearest rounding against chroma-preserving.

``warp``: a clip as ``tools/measure_video.py`` makes it (same frames, same colorizer and
stabiliser), its per-frame and stabilised output computed once in float, then quantised to
8 bits both ways (nearest: still images' rounding; chroma: ``quantize_rgb8``, video frames')
and scored by the same warp error (``instacolor.video.metrics``, along the flow of the
input's gray frames, the same for every output: ``guide=``), CDC and PSNR; ``steady`` is
measure_video's floor (one uniform chroma, the nearest per-frame output's mean saturation
and hue, on every frame), then ``a=10, b=20`` on every frame.

``photos``: colorized photographs, the exact colour (the 16-bit output stands for it)
against its 8-bit quantisation: mean / 95th percentile / max ``|ab error|``, ``|L error|``
against the input's L, the gray level's error (the README's "at most one level"), and
the CPU time of the chroma-preserving choice per megapixel.

Usage:
    python tools/measure_quantize.py warp CLIP --frames 48 --width 432 [--color | --pan 48]
    python tools/measure_quantize.py photos DATA/eval/kodak24 --images kodim01,kodim05
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

import measure_video  # noqa: E402

from instacolor import Colorizer  # noqa: E402
from instacolor.color import l_to_gray, quantize_rgb8, rgb_to_lab  # noqa: E402
from instacolor.io.image import read_luminance  # noqa: E402
from instacolor.reconstruct import reconstruct  # noqa: E402
from instacolor.video import FrameColorizer, Stabilization  # noqa: E402
from instacolor.video import flow as video_flow  # noqa: E402
from instacolor.video.metrics import _ab, _gray8, cdc, psnr, warp_error  # noqa: E402


def _quantise(rgb: np.ndarray, light: np.ndarray, mode: str) -> np.ndarray:
    """``(H, W, 3)`` float sRGB -> uint8: ``nearest`` or ``chroma`` (the library's)."""
    if mode == "nearest":
        return np.round(rgb * 255.0).astype(np.uint8)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    chosen = quantize_rgb8(tensor, torch.from_numpy(light).clamp(0.0, 100.0))
    return chosen.permute(1, 2, 0).numpy().astype(np.uint8)


def _clip(args) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    originals = None
    if args.pan:
        originals = measure_video._pan(args.clip, args.pan, args.width)
    elif args.color:
        originals = []
        for bgr in measure_video._colour_frames(args.clip):
            if len(originals) == args.frames:
                break
            h = round(bgr.shape[0] * args.width / bgr.shape[1] / 2) * 2
            bgr = cv2.resize(bgr, (args.width, h), interpolation=cv2.INTER_AREA)
            originals.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if originals is not None:
        return [read_luminance(f, color_tolerance=1.0)[0] for f in originals], originals
    return [light for light, _ in measure_video._read(args.clip, args.frames, args.width)], None


def _uniform(lights: list[np.ndarray], ab: np.ndarray) -> list[np.ndarray]:
    out = []
    for light in lights:
        chroma = torch.tensor(ab, dtype=torch.float32)[:, None, None].expand(2, *light.shape)
        out.append(
            reconstruct(chroma.contiguous(), torch.from_numpy(light), light, out_dtype=np.float32)
        )
    return out


def warp(args) -> None:
    lights, originals = _clip(args)
    colorizer = measure_video._Cached(Colorizer(args.weights))
    floats = {}
    for name, settings in (
        ("per-frame", Stabilization(enabled=False)),
        ("stabilised", Stabilization()),
    ):
        engine = FrameColorizer(colorizer, lights[0].shape, settings, out_dtype=np.float32)
        floats[name] = [engine(i, light)[0] for i, light in enumerate(lights)]
    nearest = [_quantise(f, light, "nearest") for f, light in zip(floats["per-frame"], lights)]
    ab = np.stack([_ab(f).reshape(-1, 2).mean(axis=0) for f in nearest]).mean(axis=0)
    size = np.mean([np.linalg.norm(_ab(f), axis=2).mean() for f in nearest])
    floats["steady"] = _uniform(lights, ab / max(float(np.linalg.norm(ab)), 1e-6) * size)
    floats["a=10, b=20"] = _uniform(lights, np.array([10.0, 20.0]))
    quantised = {}
    for mode in ("nearest", "chroma"):
        for name, frames in floats.items():
            rgb8 = [_quantise(f, light, mode) for f, light in zip(frames, lights)]
            quantised[mode, name] = rgb8
            row = {"warp_error": round(warp_error(rgb8, guide=lights), 4)}
            if name in ("per-frame", "stabilised"):
                row["cdc"] = round(cdc(rgb8), 6)
                if originals is not None:
                    row["psnr"] = round(psnr(rgb8, originals), 3)
            print(args.clip.name, mode, name, json.dumps(row), flush=True)
    for name in ("per-frame", "stabilised"):
        _along(args.clip.name, name, {m: quantised[m, name] for m in ("nearest", "chroma")})


def _along(clip: str, name: str, frames: dict[str, list[np.ndarray]]) -> None:
    """Diagnosis: each output's chroma along each output's own-L flow (``warp_error``
    without ``guide``; the two roundings make L differ by up to half a gray level)."""
    settings = video_flow.FlowSettings(preset="medium")  # the metric's
    for flow_mode, flow_frames in frames.items():
        grays = [_gray8(f) for f in flow_frames]
        pairs = itertools.pairwise(grays)
        motions = [video_flow.estimate_motion(a, b, settings) for a, b in pairs]
        for mode, rgb8 in frames.items():
            chroma = [_ab(f) for f in rgb8]
            errors = []
            for i, motion in enumerate(motions):
                diff = np.linalg.norm(chroma[i + 1] - video_flow.warp(chroma[i], motion), axis=2)
                if motion.consistent.any():
                    errors.append(diff[motion.consistent].mean())
            row = {"warp_error": round(float(np.mean(errors)), 4)}
            print(clip, mode, name, f"along {flow_mode}'s flow", json.dumps(row), flush=True)


def photos(args) -> None:
    colorizer = Colorizer(args.weights)
    totals = {mode: {"ab": [], "light": [], "level": []} for mode in ("nearest", "chroma")}
    seconds = pixels = 0.0
    for name in args.images.split(","):
        rgb = cv2.cvtColor(cv2.imread(str(args.folder / f"{name}.png")), cv2.COLOR_BGR2RGB)
        light = read_luminance(rgb, color_tolerance=1.0)[0]
        # the 16-bit output stands for the exact colour (within 0.01 Lab)
        exact = colorizer.colorize_light(light, out_dtype=np.uint16).image / 65535.0
        exact = exact.astype(np.float32)
        h, w = light.shape
        target = rgb_to_lab(torch.from_numpy(exact).permute(2, 0, 1).double())
        for mode in totals:
            start = time.process_time()
            rgb8 = _quantise(exact, light, mode)
            if mode == "chroma":
                seconds += time.process_time() - start
                pixels += h * w
            lab = rgb_to_lab(torch.from_numpy(rgb8).permute(2, 0, 1).double() / 255.0)
            l_in = torch.from_numpy(light).double()
            totals[mode]["ab"].append((lab[1:] - target[1:]).norm(dim=0).flatten())
            totals[mode]["light"].append((lab[0] - l_in).abs().flatten())
            level = (l_to_gray(lab[0]) - l_to_gray(l_in)).abs() * 255.0
            totals[mode]["level"].append(level.flatten())
    for mode, values in totals.items():
        ab, light, level = (torch.cat(values[k]) for k in ("ab", "light", "level"))
        row = {
            "ab_mean": round(float(ab.mean()), 4),
            "ab_p95": round(float(np.percentile(ab.numpy(), 95)), 4),
            "ab_max": round(float(ab.max()), 4),
            "L_mean": round(float(light.mean()), 4),
            "L_max": round(float(light.max()), 4),
            "level_mean": round(float(level.mean()), 4),
            "level_max": round(float(level.max()), 4),
        }
        if mode == "chroma":
            row["cpu_s_per_megapixel"] = round(seconds / pixels * 1e6, 3)
        print(mode, json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("warp")
    w.add_argument("clip", type=Path)
    w.add_argument("--frames", type=int, default=48)
    w.add_argument("--width", type=int, default=432)
    w.add_argument("--pan", type=int)
    w.add_argument("--color", action="store_true")
    p = sub.add_parser("photos")
    p.add_argument("folder", type=Path)
    p.add_argument("--images", default="kodim01,kodim05,kodim14,kodim23")
    for s in (w, p):
        s.add_argument("--weights", default="default")
        s.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warp(args) if args.command == "warp" else photos(args)


if __name__ == "__main__":
    main()
