"""Score weights on a folder of colour photos as ``instacolor finetune`` scores its held-out part.

    python tools/measure_finetune.py OTHER_PHOTOS default runs/houses.safetensors --threads 1

Each weights (a registered name or a file) is scored on every colour photo of the folder
(gray, near-gray and unreadable files skipped, as the fine-tuning reader does), squashed
to the weights' working size, with the weights' own decoding: mean PSNR and mean
colourfulness, beside the gray image's PSNR and the originals' colourfulness. Use a
folder of the collection's domain that the fine-tuning run never saw (its held-out part
also chose the checkpoint, so its "after" score is slightly optimistic).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from instacolor.train.collection import scan_collection
from instacolor.train.finetune_report import held_out_of, score
from instacolor.weights import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="folder of colour photos (recursive)")
    parser.add_argument("weights", nargs="+", help="registered names or weights files")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held = {}
    for weights in args.weights:
        loaded = load_weights(weights)
        size = loaded.working_size
        if size not in held:
            collection = scan_collection(args.photos, keep_side=2 * size)
            held[size] = held_out_of(collection, list(range(len(collection.files))), size)
            print(
                f"{len(collection.files)} photos at {size} px (skipped "
                f"{collection.skipped_gray} gray, {collection.skipped_unreadable} unreadable): "
                f"gray PSNR {held[size].gray_psnr:.3f} dB, originals' colourfulness "
                f"{held[size].colorfulness:.2f}"
            )
        scores = score(loaded.net.float().eval(), held[size], loaded)
        print(
            f"{weights}: PSNR {scores.psnr:.3f} dB, colourfulness {scores.colorfulness:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
