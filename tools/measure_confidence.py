"""Per-pixel confidence estimators against the ab error, on validation photos.

    python tools/measure_confidence.py TRAIN --weights W --every 115 --threads 1

Every ``--every``-th photo of ``TRAIN`` (``list_images``'s sorted order; the validation
split of ``instacolor tune --every``) is colorized exactly as ``instacolor evaluate``'s
calibration does (256x256, the weights' default decoding, no detector) and each
candidate confidence map is scored by the same Spearman correlation with the per-pixel
ab error (:func:`instacolor.evaluation.folder.pooled_calibration`), on the photos of even
index (half A, to choose on) and of odd index (half B, to confirm on). Printed as
Spearman(confidence, minus the ab error): positive means the confident pixels err less.

Candidates come from the classification head's distribution ``p = softmax(logits / T)``
(``T`` 1 unless the name says) about the decoded ab at the head's resolution, each bilinearly
up to 256 as ``ColorizeResult.confidence`` is, unless the name says otherwise:

* ``mass rN`` - probability within N Lab units of the decoded ab (``mass r15`` is the
  library's ``"mass"``: its map must equal ``ColorizeResult.confidence``, checked);
* ``entropy`` - ``1 - H(p) / log 529``;
* ``expected distance`` - ``exp(-E_p[|c - ab|] / 15)`` over the bin centres ``c``;
* ``rms distance`` - ``exp(-sqrt(E_p[|c - ab|^2]) / 15)``;
* ``spread`` - ``exp(-sqrt(E_p[|c - E_p c|^2]) / 15)`` (ignores the decoded ab);
* ``heads agree`` - ``exp(-|annealed mean - regression| / 15)``;
* ``@working`` - ``p`` bilinearly up to the working size, about the decoded ab there;
* ``+blur`` - the head-resolution map blurred (Gaussian, 1 head pixel) first;
* ``nearest`` - nearest-neighbour instead of bilinear upsampling;
* ``in gamut`` - at the working size, the bin centres (at the pixel's L rounded to 0.5)
  and the decoded ab each clipped to sRGB before the distances (the error is measured on
  an 8-bit image);
* ``x heads agree`` - the product of two maps.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from instacolor import Colorizer
from instacolor.color import AB_NORM, lab_to_rgb, rgb_to_lab
from instacolor.decode import confidence_at
from instacolor.evaluation.folder import pooled_calibration
from instacolor.evaluation.scoring import ab_planes, gray_plane, read_rgb, small
from instacolor.io.image import read_luminance
from instacolor.models.classes import AB_CLASSES, annealed_mean, bin_centers, confidence
from instacolor.models.inputs import prepare_inputs
from instacolor.train.data import list_images

#: Lab units of the ``exp(-d / SCALE)`` maps.
SCALE = 15.0


def _distances(p: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E_p|c - ab|, sqrt(E_p|c - ab|^2))``, each ``(B, h, w)``, for ``p`` ``(B, Q, h, w)``."""
    centers = bin_centers(p.dtype, p.device)
    d2 = (ab[:, None] - centers[None, :, :, None, None]).square().sum(2)
    return (p * d2.sqrt()).sum(1), (p * d2).sum(1).sqrt()


def _spread(p: torch.Tensor) -> torch.Tensor:
    """``sqrt(E_p|c - E_p c|^2)`` ``(B, h, w)``."""
    centers = bin_centers(p.dtype, p.device)
    mean = torch.einsum("bqhw,qc->bchw", p, centers)
    second = torch.einsum("bqhw,q->bhw", p, centers.square().sum(1))
    return (second - mean.square().sum(1)).clamp_min(0).sqrt()


def _clip_ab(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """ab of ``(L, ab)`` after sRGB clipping, as an 8-bit image shows it; L broadcast."""
    lab = torch.cat((light.expand_as(ab[:, :1]), ab), 1)
    return rgb_to_lab(lab_to_rgb(lab).clamp(0, 1))[:, 1:]


_TABLE: list[torch.Tensor] = []  # (201, Q, 2): the clipped bin centres at L = 0, 0.5, .. 100


def _gamut_d2(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """``|clip(c) - clip(ab)|^2`` ``(1, Q, H, W)``: bin centres and ``ab`` clipped to sRGB
    at each pixel's L (rounded to 0.5 for the centres). ``light`` ``(H, W)``, ``ab``
    ``(1, 2, H, W)``."""
    if not _TABLE:
        levels = torch.arange(201, dtype=torch.float32) / 2
        grid = bin_centers().T[None, :, None, :].expand(1, 2, 201, AB_CLASSES)
        _TABLE.append(_clip_ab(levels.view(1, 1, 201, 1), grid)[0].permute(1, 2, 0))
    h, w = light.shape
    centers = _TABLE[0][(light * 2).round().long().clamp(0, 200).flatten()]  # (HW, Q, 2)
    dec = _clip_ab(light[None, None], ab)[0].reshape(2, h * w).T  # (HW, 2)
    d2 = (centers - dec[:, None]).square().sum(2)  # (HW, Q)
    return d2.T.reshape(1, AB_CLASSES, h, w)


def _blur(conf: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    x = torch.arange(-2, 3, dtype=conf.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = F.pad(conf[None, None], (2, 2, 2, 2), mode="replicate")
    c = F.conv2d(c, k.view(1, 1, -1, 1))
    return F.conv2d(c, k.view(1, 1, 1, -1))[0, 0]


def candidates(
    out, decoding, ab_work: torch.Tensor, light: torch.Tensor, size
) -> dict[str, np.ndarray]:
    """Every candidate map ``(H, W)`` in ``[0, 1]`` at ``size`` for one image."""
    logits = torch.from_numpy(out.class_logits).float()
    regression = torch.from_numpy(out.ab).float() * AB_NORM
    area = F.interpolate(regression, size=logits.shape[-2:], mode="area")
    annealed = annealed_mean(logits, decoding.temperature)
    m = float(decoding.mix) if decoding.mode == "annealed-mean" else 0.0
    low = m * annealed + (1 - m) * area  # the decoded ab at the head's size, as decode's
    p1 = torch.softmax(logits, 1)
    pt = torch.softmax(logits / decoding.temperature, 1)
    maps: dict[str, torch.Tensor] = {}
    for radius in (5, 10, 15, 25):
        maps[f"mass r{radius}"] = confidence(logits, low, "mass", radius)[0]
    for t in sorted({decoding.temperature, 0.38, 0.2, 0.1}, reverse=True):
        for radius in (10, 15):
            maps[f"mass r{radius} T{t:g}"] = confidence(logits / t, low, "mass", radius)[0]
    for name, p in (("T1", p1), (f"T{decoding.temperature:g}", pt)):
        h = -(p * torch.log(p.clamp_min(1e-12))).sum(1)[0]
        maps[f"entropy {name}"] = (1 - h / math.log(AB_CLASSES)).clamp(0, 1)
        mean_d, rms_d = _distances(p, low)
        maps[f"expected distance {name}"] = torch.exp(-mean_d[0] / SCALE)
        maps[f"rms distance {name}"] = torch.exp(-rms_d[0] / SCALE)
        maps[f"spread {name}"] = torch.exp(-_spread(p)[0] / SCALE)
    maps["heads agree"] = torch.exp(-(annealed - area).square().sum(1).sqrt()[0] / SCALE)
    maps["mass r15 x heads agree"] = maps["mass r15"] * maps["heads agree"]
    maps["mass r15 T0.2 x heads agree"] = maps["mass r15 T0.2"] * maps["heads agree"]
    result = {k: confidence_at(v, size) for k, v in maps.items()}
    for k in ("mass r15", "expected distance T1", "rms distance T1"):
        result[f"{k} +blur"] = confidence_at(_blur(maps[k]), size)
        near = F.interpolate(maps[k][None, None], size=size, mode="nearest")[0, 0]
        result[f"{k} nearest"] = near.numpy()
    # at the working size: p bilinearly up, about the decoded ab there
    p_work = F.interpolate(p1, size=ab_work.shape[-2:], mode="bilinear", align_corners=False)
    mean_d, rms_d = _distances(p_work, ab_work[None])
    centers = bin_centers(p_work.dtype)
    d2 = (ab_work[None, None] - centers[None, :, :, None, None]).square().sum(2)
    work = {
        "mass r15 @working": (p_work * (d2 <= 225)).sum(1)[0].clamp(0, 1),
        "expected distance T1 @working": torch.exp(-mean_d[0] / SCALE),
        "rms distance T1 @working": torch.exp(-rms_d[0] / SCALE),
    }
    d2g = _gamut_d2(light, ab_work[None])
    for t in (1.0, decoding.temperature, 0.38, 0.2, 0.1):
        q = F.interpolate(
            torch.softmax(logits / t, 1), size=ab_work.shape[-2:], mode="bilinear",
            align_corners=False,
        )  # fmt: skip
        work[f"mass r15 T{t:g} in gamut"] = (q * (d2g <= 225)).sum(1)[0].clamp(0, 1)
        if t in (1.0, decoding.temperature):
            work[f"expected distance T{t:g} in gamut"] = torch.exp(
                -(q * d2g.sqrt()).sum(1)[0] / SCALE
            )
    agree = F.interpolate(maps["heads agree"][None, None], size=ab_work.shape[-2:],
                          mode="bilinear", align_corners=False)[0, 0]  # fmt: skip
    work["mass r15 T0.2 in gamut x heads agree"] = work["mass r15 T0.2 in gamut"] * agree
    result.update({k: confidence_at(v, size) for k, v in work.items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of colour photos (the training folder)")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--every", type=int, default=115)
    parser.add_argument("--limit", type=int, default=None, help="first N validation photos")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deciles", nargs="*", default=[], help="candidates to print deciles of")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files = list_images(args.data)[:: args.every][: args.limit]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colorizer = Colorizer(args.weights)
    decoding = colorizer.decoding
    print(f"{args.weights}: decoding {decoding.spec}, working size {colorizer.working_size}, "
          f"{len(files)} photos (every {args.every}th)")  # fmt: skip
    maps: dict[str, list[np.ndarray]] = {}
    errors: list[np.ndarray] = []
    worst = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for path in files:
            truth = small(read_rgb(path))
            gray = gray_plane(truth)
            result = colorizer.colorize_full(gray)
            errors.append(np.sqrt(((ab_planes(result.image) - ab_planes(truth)) ** 2).sum(0)))
            light, _ = read_luminance(gray, color_tolerance=colorizer.color_tolerance)
            inputs = prepare_inputs(
                light, None, None, colorizer.working_size, mask_value=colorizer.net.mask_value
            )
            out = colorizer.runtime.run(inputs)
            ab_work = torch.from_numpy(result.ab)
            found = candidates(
                out, decoding, ab_work, torch.from_numpy(inputs.light), truth.shape[:2]
            )
            worst = max(worst, float(np.abs(found["mass r15"] - result.confidence).max()))
            for k, v in found.items():
                maps.setdefault(k, []).append(v.astype(np.float32, copy=False))
    print(f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU; "
          f"'mass r15' vs ColorizeResult.confidence: max |difference| {worst:.2e}\n")  # fmt: skip
    halves = {"A (even)": slice(0, None, 2), "B (odd)": slice(1, None, 2)}
    n = {h: len(files[s]) for h, s in halves.items()}
    print("| candidate | " + " | ".join(f"half {h}, {n[h]} photos" for h in halves) + " |")
    print("|---|" + "---|" * len(halves))
    for name, per_image in maps.items():
        calibs = {h: pooled_calibration(per_image[s], errors[s], n[h]) for h, s in halves.items()}
        row = " | ".join(f"{-c.spearman:+.3f}" for c in calibs.values())
        print(f"| {name} | {row} |", flush=True)
        if name in args.deciles:
            for h, c in calibs.items():
                print(f"\n{name}, half {h}:\n{c.markdown()}\n")


if __name__ == "__main__":
    main()
