"""Score full-image networks on stage 1's validation photos, as tools/train.py logs them.

    python tools/validate.py instacolor/data/instacolor-w16-v4.safetensors runs/s1e/stage1/latest.pt

Each weights file (instacolor ``.safetensors`` or a ``tools/train.py`` checkpoint) is
scored with ``tools/train.py``'s stage-1 validator: mean PSNR and colourfulness of the
full-image network on every ``--holdout-every``-th photo of ``--data`` (the images
tools/train.py holds out), at ``--size``, beside the gray baseline.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from instacolor.models.network import InstColorNet
from instacolor.train.data import list_images
from instacolor.train.loop import load_stage
from instacolor.train.validators import make_validator
from instacolor.weights import load_safetensors


def load(path: Path, width: int) -> InstColorNet:
    if path.suffix == ".safetensors":
        return load_safetensors(path)  # float32, in eval mode
    net = InstColorNet(width)
    load_stage(path, net)
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+")
    data = Path(os.environ.get("INSTACOLOR_DATA", "data"))  # the data folder
    parser.add_argument("--data", type=Path, default=data / "train")
    parser.add_argument("--holdout-every", type=int, default=115)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16, help="width of .pt checkpoints")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    missing = [str(p) for p in args.weights if not p.is_file()]
    if missing:
        parser.error(f"weights: expected existing files, received {missing}")
    torch.set_num_threads(args.threads)
    files = list_images(args.data)[:: args.holdout_every]  # sorted, as tools/train.py holds out
    validate = make_validator(files, args.size, 1)
    print(f"{len(files)} validation photos of {args.data} at {args.size} px\n")
    print("| weights | psnr | gray psnr | colorfulness | colorfulness gt |\n|---|---|---|---|---|")
    for path in args.weights:
        r = validate(load(path, args.width), 0)
        print(
            f"| {path} | {r['val_psnr']:.3f} | {r['val_gray_psnr']:.3f} | "
            f"{r['val_colorfulness']:.2f} | {r['val_colorfulness_gt']:.2f} |"
        )


if __name__ == "__main__":
    main()
