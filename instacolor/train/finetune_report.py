"""The report of a fine-tuning run: held-out scores, the sample grid, the exported metadata.

The held-out photos are squashed to the weights' working size once (as the training
validators do); a network is scored on them with the weights' own decoding
(:func:`instacolor.decode.decode`: regression, or the class head's annealed mean and
blend), by PSNR on uint8 sRGB and the colourfulness of Hasler & Suesstrunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor.color import AB_NORM
from instacolor.decode import decode
from instacolor.metrics import colorfulness, psnr
from instacolor.models.network import network_input
from instacolor.structures import NetOutput
from instacolor.train.budget import export_weights
from instacolor.train.collection import Collection
from instacolor.train.data import to_lab_tensors
from instacolor.train.validators import to_rgb8

__all__ = [
    "FinetuneReport",
    "HeldOut",
    "Scores",
    "export_finetuned",
    "held_out_of",
    "predict",
    "score",
    "write_grid",
]

_GRID_ROWS = 4


@dataclass(frozen=True)
class Scores:
    """Mean held-out scores of one network.

    Attributes:
        psnr: PSNR (dB) against the originals.
        colorfulness: mean colourfulness of the colorized photos.
    """

    psnr: float
    colorfulness: float


@dataclass(frozen=True)
class HeldOut:
    """The held-out photos at the working size.

    Attributes:
        light: ``(V, 1, S, S)`` normalised L.
        truth: ``(V, S, S, 3)`` uint8 originals (as the network's L and true ab give).
        gray_psnr: mean PSNR of the gray images (the baseline).
        colorfulness: mean colourfulness of the originals.
    """

    light: torch.Tensor
    truth: np.ndarray
    gray_psnr: float
    colorfulness: float


@dataclass(frozen=True)
class FinetuneReport:
    """What a fine-tuning run did.

    Attributes:
        output: the weights written.
        base: the weights it started from (name or path) and ``base_sha256`` their digest.
        collection_digest: sha256 of the kept photos (paths and contents).
        photos: colour photos used; ``train_photos`` + ``held_out`` = ``photos``.
        skipped_gray, skipped_unreadable: files left out.
        gray_psnr: held-out PSNR of the gray image (the baseline).
        original_colorfulness: held-out originals' mean colourfulness.
        before, after: held-out scores of the base and the written weights.
        improved: whether the written weights beat the base (else they are the base's).
        steps: optimizer steps run (over all resumed parts).
        seconds: time used (over all resumed parts).
        report, grid: the report (JSON) and sample grid written beside ``output``.
    """

    output: Path
    base: str
    base_sha256: str
    collection_digest: str
    photos: int
    train_photos: int
    held_out: int
    skipped_gray: int
    skipped_unreadable: int
    gray_psnr: float
    original_colorfulness: float
    before: Scores
    after: Scores
    improved: bool
    steps: int
    seconds: float
    report: Path
    grid: Path

    def record(self) -> dict:
        """The report as JSON-ready values (paths as strings)."""
        record = {k: v for k, v in self.__dict__.items() if k not in ("before", "after")}
        record.update(before=self.before.__dict__, after=self.after.__dict__)
        return {k: str(v) if isinstance(v, Path) else v for k, v in record.items()}

    def text(self) -> str:
        """The report as lines for a terminal."""
        verdict = (
            f"improved: +{self.after.psnr - self.before.psnr:.3f} dB held-out PSNR"
            if self.improved
            else "no improvement: the base weights are written unchanged (with their scores)"
        )
        return "\n".join(
            [
                f"fine-tuned {self.base} -> {self.output}",
                f"photos: {self.photos} ({self.train_photos} training, {self.held_out} held out); "
                f"skipped {self.skipped_gray} gray or near-gray, {self.skipped_unreadable} "
                "unreadable",
                f"held-out PSNR: gray {self.gray_psnr:.2f}, before {self.before.psnr:.2f}, "
                f"after {self.after.psnr:.2f} dB",
                f"held-out colourfulness: before {self.before.colorfulness:.1f}, after "
                f"{self.after.colorfulness:.1f} (originals {self.original_colorfulness:.1f})",
                verdict,
                f"{self.steps} steps in {self.seconds / 60:.1f} min; report {self.report}, "
                f"samples {self.grid}",
            ]
        )


def held_out_of(collection: Collection, indices: list[int], size: int) -> HeldOut:
    """The :class:`HeldOut` of ``collection``'s photos at ``indices``, squashed to ``size``."""
    pairs = [to_lab_tensors(collection.photos[i], size) for i in indices]
    light = torch.stack([p[0] for p in pairs])
    ab = torch.stack([p[1] for p in pairs])
    truth = to_rgb8(light, ab)
    gray = to_rgb8(light, torch.zeros_like(ab))
    return HeldOut(
        light=light,
        truth=truth,
        gray_psnr=float(np.mean([psnr(g, t) for g, t in zip(gray, truth, strict=True)])),
        colorfulness=float(np.mean([colorfulness(t) for t in truth])),
    )


def predict(net, held: HeldOut, loaded, count: int | None = None) -> np.ndarray:
    """uint8 ``(V, S, S, 3)`` colorizations of the held-out photos by the full network.

    Args:
        net: an :class:`~instacolor.models.network.InstColorNet`.
        held: the held-out photos.
        loaded: the :class:`~instacolor.weights.LoadedWeights` whose decoding applies.
        count: only the first ``count`` photos (None: all).
    """
    decoding = loaded.decoding
    classify = decoding.mode != "regression"
    light = held.light if count is None else held.light[:count]
    out = []
    with torch.no_grad():
        for chunk in light.split(16):
            hook = net.generator_hook("full", chunk)
            res = net.full(network_input(chunk, net.mask_value), hook)
            logits = net.full.classify(res.feature("conv8_3")) if classify else None
            for i in range(chunk.shape[0]):
                netout = NetOutput(
                    ab=res.ab[i : i + 1].float().numpy(),
                    class_logits=None if logits is None else logits[i : i + 1].float().numpy(),
                )
                ab, _ = decode(netout, decoding)
                out.append(ab / AB_NORM)
    return to_rgb8(light, torch.stack(out))


def score(net, held: HeldOut, loaded) -> Scores:
    """Mean held-out PSNR and colourfulness of ``net`` (see :func:`predict`)."""
    pred = predict(net, held, loaded)
    return Scores(
        psnr=float(np.mean([psnr(p, t) for p, t in zip(pred, held.truth, strict=True)])),
        colorfulness=float(np.mean([colorfulness(p) for p in pred])),
    )


def write_grid(path: Path, held: HeldOut, before, after, loaded) -> Path:
    """A PNG of a few held-out photos, one per row: gray | before | after | original."""
    n = min(_GRID_ROWS, held.light.shape[0])
    gray = to_rgb8(held.light[:n], torch.zeros(n, 2, *held.light.shape[-2:]))
    columns = (gray, predict(before, held, loaded, n), predict(after, held, loaded, n))
    rows = [np.concatenate([c[i] for c in columns] + [held.truth[i]], axis=1) for i in range(n)]
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")
    tmp.replace(path)
    return path


def export_finetuned(net, loaded, report: FinetuneReport) -> Path:
    """Write ``net`` to ``report.output`` with ``loaded``'s decoding and the run's metadata."""
    extra = {
        "finetuned_from": report.base,
        "finetuned_from_sha256": report.base_sha256,
        "collection_sha256": report.collection_digest,
        "collection_photos": str(report.photos),
        "held_out_photos": str(report.held_out),
        "held_out_psnr_before": f"{report.before.psnr:.3f}",
        "held_out_psnr_after": f"{report.after.psnr:.3f}",
        "held_out_colorfulness_before": f"{report.before.colorfulness:.2f}",
        "held_out_colorfulness_after": f"{report.after.colorfulness:.2f}",
        "held_out_gray_psnr": f"{report.gray_psnr:.3f}",
        "finetune_improved": "yes" if report.improved else "no",
        "finetune_seconds": f"{report.seconds:.0f}",
        "finetune_steps": str(report.steps),
    }
    return export_weights(
        net,
        report.output,
        stages=3 if net.with_instances else 1,
        working_size=loaded.working_size,
        class_head=loaded.class_head,
        decoding=loaded.decoding,
        trained_from=f"finetune of {report.base}",
        extra=extra,
    )
