"""Regression x saturation against annealed-mean x blend, on stage 1's validation photos.

    python tools/decode_frontier.py runs/v5a/stage1/latest.pt --n 80 --threads 1

A model is more colourful honestly only where it lands above the curve the regression
output traces when its chroma is scaled (saturation 1 .. 2). Each row prints the PSNR
gain over the gray baseline and the colourfulness as a fraction of the originals', at
the training size (128), on the first ``--n`` of stage 1's held-out photos (every 115th
of ``--data``, never trained on). Blends are ``mix * annealed + (1 - mix) * regression``.
Takes a training checkpoint or a ``.safetensors`` file (its full-image network).
``--confidence`` also prints, for the regression and the annealed mean at 0.38, the
Spearman correlation between each confidence measure of :func:`instacolor.models.
classes.confidence` and the per-pixel ab error (at the head's quarter resolution):
the measure that predicts error better is the library's (``instacolor.decode``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import AB_NORM, L_CENT, L_NORM, lab_to_rgb
from instacolor.metrics import colorfulness, psnr
from instacolor.models.classes import CONFIDENCE_KINDS, annealed_mean, confidence
from instacolor.models.network import InstColorNet, network_input
from instacolor.train.data import ColorImages, list_images
from instacolor.train.loop import load_stage


def _rgb(light: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    lab = torch.cat((light * L_NORM + L_CENT, ab * AB_NORM), 1)
    return (lab_to_rgb(lab).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="training checkpoint or .safetensors")
    data = Path(os.environ.get("INSTACOLOR_DATA", "data"))  # the data folder
    parser.add_argument("--data", type=Path, default=data / "train")
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--confidence", action="store_true", help="compare confidence measures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = InstColorNet(args.width)
    load_stage(args.weights, net)
    net.eval()
    files = list_images(args.data)[::115][: args.n]
    data = ColorImages(files, args.size, augment=False)
    batch = [data[i] for i in range(len(data))]
    light = torch.stack([b["l"] for b in batch])
    truth = _rgb(light, torch.stack([b["ab"] for b in batch]))
    gray = float(
        np.mean([psnr(g, t) for g, t in zip(_rgb(light, 0 * light.repeat(1, 2, 1, 1)), truth)])
    )
    scale = float(np.mean([colorfulness(t) for t in truth]))
    with torch.no_grad():
        out = net.full(network_input(light, net.mask_value))
        logits = net.full.classify(out.feature("conv8_3")).float()
    reg = out.ab.float()
    print(f"{args.weights}: {len(files)} photos at {args.size}, gray {gray:.3f} dB\n")
    print("| decoding | dB over gray | colourfulness / originals' |\n|---|---|---|")

    def row(name: str, ab: torch.Tensor) -> None:
        pred = _rgb(light, ab.clamp(-1, 1))
        gain = np.mean([psnr(p, t) for p, t in zip(pred, truth)]) - gray
        ratio = np.mean([colorfulness(p) for p in pred]) / scale
        print(f"| {name} | {gain:+.3f} | {ratio:.2f} |", flush=True)

    for s in (1.0, 1.25, 1.5, 1.75, 2.0):
        row(f"regression x{s:g}", reg * s)
    if args.confidence:
        _confidence_study(logits, reg, torch.stack([b["ab"] for b in batch]))
    for t in (0.38, 0.5, 0.7, 1.0):
        low = annealed_mean(logits, t) / AB_NORM
        ann = F.interpolate(low, size=args.size, mode="bilinear", align_corners=False)
        for mix in (0.25, 0.5, 0.75, 1.0):
            row(f"annealed T{t:g} mix {mix:g}", mix * ann + (1 - mix) * reg)


def _confidence_study(logits: torch.Tensor, reg: torch.Tensor, truth: torch.Tensor) -> None:
    """Spearman(confidence, -ab error) per measure, for two decodings, at S/4."""
    from scipy.stats import spearmanr

    size = logits.shape[-2:]
    target = F.interpolate(truth, size=size, mode="area") * AB_NORM
    decodings = {
        "regression": F.interpolate(reg, size=size, mode="area") * AB_NORM,
        "annealed T0.38": annealed_mean(logits, 0.38),
    }
    print("\n| decoding | measure | Spearman(confidence, -ab error) |\n|---|---|---|")
    for name, ab in decodings.items():
        error = (ab - target).square().sum(1).sqrt().flatten().numpy()
        for kind in CONFIDENCE_KINDS:
            conf = confidence(logits, ab, kind).flatten().numpy()
            print(f"| {name} | {kind} | {spearmanr(conf, -error).statistic:+.3f} |")
    print()


if __name__ == "__main__":
    main()
