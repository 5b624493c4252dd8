"""Colour from a reference photo: confident feature matches become micro-hints.

Colorization by example (Irony, Cohen-Or & Lischinski 2005) with deep features as the
correspondence (He et al. 2018), training-free: the gray target and the *luminance* of
each colour reference (both at the working size, brought to :data:`MATCH_SIZE`, so that
they are equally sharp) go through the frozen ImageNet encoder
(:func:`~instacolor.models.encoder.load_encoder`, EfficientNet-Lite0) at
:data:`MATCH_SIZE` x :data:`MATCH_SIZE`; every cell of a grid of stride 8 is described by
its four feature maps (strides 4 to 32, each L2-normalised, brought to the grid; the
similarities of the coarse ones are taken before upsampling, :mod:`~instacolor.hints.similarity`)
and its mean L. Each target cell takes its most similar reference cell (cosine similarity
less a penalty for a luminance difference); a match is kept only when

* the reference cell's own best target cell lies within :data:`CYCLE_CELLS` of it
  (the two images agree on the correspondence, a cycle check);
* its score is at least :data:`MIN_SCORE`;
* the reference cell is of one colour (ab standard deviation at most
  :data:`MAX_CELL_SPREAD`), so the colour carried is not a mix across an edge.

A kept match fixes the cell's centre working cell to the reference cell's mean ab (a
micro-scribble, with the target's own L); :class:`~instacolor.hints.apply.HintSettings`
then fits the chroma to them and propagates the residuals edge-aware, so that where
nothing matches the networks' colours remain. Each reference is also matched mirrored
(left-right; by default its cells flipped, :data:`MIRROR`), so a reference taken from
the other side still matches.

The references come read and checked by :func:`~instacolor.hints.photos.read_references`
(:mod:`~instacolor.hints.photos`; :class:`Reference`, :func:`read_references` and
:func:`references_sha256` are importable from here too).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> refs = read_references(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    >>> match = match_references(np.full((32, 32), 50.0, np.float32), refs)
    >>> match.known.shape, match.ab.shape
    ((32, 32), (2, 32, 32))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from instacolor.color import rgb_to_lab
from instacolor.hints.photos import Reference, read_references, references_sha256, squash
from instacolor.hints.similarity import (
    interpolation_matrix,
    up_rows,
    upsampled_norms,
    upsampled_products,
)
from instacolor.models.encoder import load_encoder
from instacolor.models.fold import fold_batchnorm

__all__ = [
    "CYCLE_CELLS",
    "MATCH_SIZE",
    "MAX_CELL_SPREAD",
    "MIN_SCORE",
    "Reference",
    "ReferenceMatch",
    "describe_references",
    "describe_target",
    "match_references",
    "matches_of",
    "read_references",
    "references_sha256",
]

#: Side at which the encoder sees the target and each reference (both squashed to it).
#: 192 took 0.56x the encoder's work and 0.3x the matching's, but on all 24 kodak24
#: photos gave a same-scene reference +6.57 dB against +7.16 at 256 (224: +6.95), and
#: half the matches on the tests' synthetic textures (+2.7 dB there against +4.1).
MATCH_SIZE = 256
#: Stride of the matching grid in :data:`MATCH_SIZE` pixels (32x32 cells).
_STRIDE = 8
#: Largest grid distance between a target cell and its match's own best target cell.
CYCLE_CELLS = 1.5
#: Least score (mean cosine similarity of the four feature maps, less the L penalty).
#: 0.7, chosen on validation photos among 0.6 / 0.65 / 0.7 (docs/reference.md, "The score
#: floor"): unrelated references' matches score about 0.6-0.7, the same scene's about 0.8.
MIN_SCORE = 0.7
#: Largest ab standard deviation (Lab units) inside a reference cell.
MAX_CELL_SPREAD = 8.0
#: L difference (Lab units) that costs 1 of the score.
_L_SCALE = 40.0


#: Precision of the matching encoder's pass. bfloat16 (a study: ``tools/measure_reference.py
#: --match-dtype``) took 35 % less time a pass on a CPU with AVX512-BF16, features within
#: 1e-3 cosine, but let more false matches of unrelated photos through the score floor
#: (docs/reference.md): float32.
MATCH_DTYPE = torch.float32
#: How a reference's mirror is described: ``"flip"``, the reference's cells flipped
#: left-right (one encoder pass fewer: a new reference within 2x of automatic; the encoder
#: is not mirror-symmetric, so a mirrored reference matches less, +6.45 against +8.19 dB
#: on validation photos), or ``"pass"``, the mirror's own pass (docs/reference.md).
MIRROR = "flip"


@dataclass(frozen=True)
class ReferenceMatch:
    """Colours a reference gives the working grid.

    Attributes:
        known: ``(S, S)`` bool, the cells fixed by a confident match.
        ab: ``(2, S, S)`` float32, their colour (0 elsewhere).
        confidence: ``(S, S)`` float32 tensor in ``[0, 1]``, the match score of each matched
            grid cell spread over its ``S / 32`` square (0 where nothing matched).
    """

    known: np.ndarray
    ab: np.ndarray
    confidence: np.ndarray


@cache
def _encoder(dtype: torch.dtype = torch.float32):
    """The frozen encoder in ``dtype``, its BatchNorms folded into the convolutions (matching
    only infers; the same features within float rounding, a few % less time), its weights in
    channels-last memory (oneDNN's native layout: a pass at 256 px 12 % faster at one
    thread, features within 6e-5)."""
    encoder = load_encoder()
    fold_batchnorm(encoder)
    return encoder.to(dtype=dtype, memory_format=torch.channels_last)


@dataclass(frozen=True)
class _Cells:
    """Matching descriptors of ``B`` images on the ``G x G`` grid.

    A cell's descriptor is its four feature maps' vectors, each L2-normalised, over 2
    (so that products of descriptors are the mean cosine similarity of the four).

    Attributes:
        fine: ``(B, G*G, D)`` the maps at the grid's resolution or finer (pooled to it),
            normalised.
        coarse: per coarser map, its cells ``(B, g*g, C)`` over 2 as they are and
            ``(B, G*G)`` the inverse norms of its bilinear upsampling to the grid (the
            products go through :func:`~instacolor.hints.similarity.upsampled_products`).
        light: ``(B, G*G)`` mean L.
    """

    fine: torch.Tensor
    coarse: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    light: torch.Tensor

    def rows(self, lo: int, hi: int) -> _Cells:
        """Images ``lo`` to ``hi - 1``."""
        coarse = tuple((c[lo:hi], n[lo:hi]) for c, n in self.coarse)
        return _Cells(self.fine[lo:hi], coarse, self.light[lo:hi])

    def mirrored(self) -> _Cells:
        """The cells of the images flipped left-right (each grid's columns reversed)."""

        def flip(x: torch.Tensor) -> torch.Tensor:  # (B, n*n, ...) row-major on n x n
            n = math.isqrt(x.shape[1])
            return x.reshape(x.shape[0], n, n, *x.shape[2:]).flip(2).reshape(x.shape)

        coarse = tuple((flip(c), flip(n)) for c, n in self.coarse)
        return _Cells(flip(self.fine), coarse, flip(self.light))


def _cat(cells: list[_Cells]) -> _Cells:
    """The images of several :class:`_Cells`, in order."""
    coarse = tuple(
        (torch.cat([c.coarse[k][0] for c in cells]), torch.cat([c.coarse[k][1] for c in cells]))
        for k in range(len(cells[0].coarse))
    )
    return _Cells(torch.cat([c.fine for c in cells]), coarse, torch.cat([c.light for c in cells]))


def _describe(light: torch.Tensor) -> _Cells:
    """The :class:`_Cells` of L ``(B, 1, M, M)``.

    The encoder sees one image at a time: a batch's activations outgrow the CPU caches
    (three images at 256 took 1.6x the time of three single passes).
    """
    grid = MATCH_SIZE // _STRIDE
    out = []
    for one in light.split(1):
        fine, coarse = [], []
        x = ((one - 50.0) / 100.0).to(MATCH_DTYPE).contiguous(memory_format=torch.channels_last)
        feats = _encoder(MATCH_DTYPE).features(x, head=False)
        for f in feats:
            f = f.float()
            f = up_rows(F.adaptive_avg_pool2d(f, grid) if f.shape[-1] > grid else f)
            if f.shape[1] == grid * grid:
                fine.append(F.normalize(f, dim=2))
                continue
            a = interpolation_matrix(math.isqrt(f.shape[1]), grid)
            inverse = 1.0 / upsampled_norms(f[0], a).clamp_min(1e-12)  # F.normalize's eps
            coarse.append((f / len(feats) ** 0.5, inverse[None]))
        fine = torch.cat(fine, 2) / len(feats) ** 0.5
        out.append(_Cells(fine, tuple(coarse), F.avg_pool2d(one, _STRIDE).flatten(1)))
    return _cat(out)


def _scores(target: _Cells, refs: _Cells) -> torch.Tensor:
    """``(G*G, N*G*G)`` scores of the target's cells (one image) against ``N`` images'
    cells: mean cosine similarity of the four maps less ``(dL / 40)^2``."""
    t_l, r_l = target.light[0], refs.light.reshape(-1)
    ones_t, ones_r = torch.ones_like(t_l), torch.ones_like(r_l)
    # the L penalty -(t - r)^2 / 40^2 as three more columns of one product
    t_side = torch.stack([-((t_l / _L_SCALE) ** 2), ones_t, 2.0 * t_l / _L_SCALE**2], 1)
    r_side = torch.stack([ones_r, -((r_l / _L_SCALE) ** 2), r_l], 1)
    t_fine = torch.cat([target.fine[0], t_side], 1)
    r_fine = torch.cat([refs.fine.reshape(-1, refs.fine.shape[-1]), r_side], 1)
    score = t_fine @ r_fine.T
    grid = MATCH_SIZE // _STRIDE
    for (t_cells, t_inverse), (r_cells, r_inverse) in zip(target.coarse, refs.coarse):
        a = interpolation_matrix(math.isqrt(t_cells.shape[1]), grid)
        products = upsampled_products(t_cells[0], r_cells, a, t_inverse[0])
        score.addcmul_(products, r_inverse.reshape(1, -1))
    return score


def _reference_light(ref: Reference, s: int) -> torch.Tensor:
    """``(B, 1, M, M)`` L of a reference for the encoder (``B`` 2 with its mirror's, for
    :data:`MIRROR` ``"pass"``): it takes the target's path (the working size ``s``, then
    up to :data:`MATCH_SIZE`), so both are as sharp."""
    low = rgb_to_lab(torch.from_numpy(squash(ref.rgb, s)).permute(2, 0, 1))[:1]
    both = torch.stack([low, low.flip(-1)] if MIRROR == "pass" else [low])
    return F.interpolate(both, (MATCH_SIZE, MATCH_SIZE), mode="bilinear")


def _reference_cells(ref: Reference, cells: _Cells) -> tuple[_Cells, torch.Tensor, torch.Tensor]:
    """A reference's cells (it and its mirror, ``cells``), their mean ab ``(2, 2 G*G)``
    and ab spread ``(2 G*G,)``."""
    rgb = torch.from_numpy(squash(ref.rgb, MATCH_SIZE)).permute(2, 0, 1)
    ab = rgb_to_lab(rgb)[1:]
    ab_mean = F.avg_pool2d(ab, _STRIDE)  # (2, G, G)
    ab_square = F.avg_pool2d(ab**2, _STRIDE)
    ab_mean, ab_square = (torch.stack([x, x.flip(-1)]) for x in (ab_mean, ab_square))  # mirror
    spread = (ab_square - ab_mean**2).clamp_min(0).sum(1).sqrt().reshape(-1)
    ab_mean = ab_mean.permute(1, 0, 2, 3).reshape(2, -1)
    return cells, ab_mean, spread


def match_references(light: np.ndarray, references: tuple[Reference, ...]) -> ReferenceMatch:
    """The confident matches of the references' cells on the working grid.

    Args:
        light: ``(S, S)`` float32 L of the target at the working size (``S`` a multiple
            of 8 and at least 32).
        references: from :func:`read_references`.

    Returns:
        :class:`ReferenceMatch` on the ``(S, S)`` grid.
    """
    describe_references(references, light.shape[-1])
    return matches_of(describe_target(light), references, light.shape[-1])


def describe_references(references: tuple[Reference, ...], s: int) -> None:
    """Describe the references (each and its mirror) not yet described at working size ``s``;
    their descriptors are kept with them."""
    todo = list({id(ref): ref for ref in references if s not in ref._cells}.values())
    with torch.inference_mode():
        for ref in todo:
            cells = _describe(_reference_light(ref, s))
            if MIRROR == "flip":
                cells = _cat([cells, cells.mirrored()])
            ref._cells[s] = _reference_cells(ref, cells)


def describe_target(light: np.ndarray) -> _Cells:
    """The matching descriptors of the target's L ``(S, S)`` at the working size."""
    target = torch.as_tensor(light, dtype=torch.float32)[None, None]
    with torch.inference_mode():
        target = F.interpolate(
            target, (MATCH_SIZE, MATCH_SIZE), mode="bilinear", align_corners=False
        )
        return _describe(target)


def matches_of(target: _Cells, references: tuple[Reference, ...], s: int) -> ReferenceMatch:
    """:func:`match_references` from the target's descriptors (:func:`describe_target`)
    and references described at ``s`` (:func:`describe_references`)."""
    grid = MATCH_SIZE // _STRIDE
    cells_of = [ref._cells[s] for ref in references]
    with torch.inference_mode():
        score = _scores(target, _cat([c[0] for c in cells_of]))
    ab_mean, spread = (torch.cat([c[k] for c in cells_of], -1) for k in (1, 2))
    best, choice = score.max(1)  # each target cell's reference cell
    chosen, which = torch.unique(choice, return_inverse=True)
    back = score[:, chosen].argmax(0)[which]  # that reference cell's own best target cell
    cells = torch.arange(grid * grid)
    dy = (back // grid - cells // grid).float()
    dx = (back % grid - cells % grid).float()
    keep = (dy.hypot(dx) <= CYCLE_CELLS) & (best >= MIN_SCORE) & (spread[choice] <= MAX_CELL_SPREAD)
    keep_grid = keep.reshape(grid, grid).numpy()
    ab_grid = ab_mean[:, choice].reshape(2, grid, grid).numpy()
    conf_grid = np.where(keep_grid, best.clamp(0, 1).reshape(grid, grid).numpy(), 0.0)
    known = np.zeros((s, s), bool)
    ab = np.zeros((2, s, s), np.float32)
    centres = ((np.arange(grid) + 0.5) * s / grid).astype(int).clip(0, s - 1)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    known[cy[keep_grid], cx[keep_grid]] = True
    ab[:, cy[keep_grid], cx[keep_grid]] = ab_grid[:, keep_grid]
    cell = np.ones((-(-s // grid), -(-s // grid)), np.float32)
    confidence = torch.from_numpy(np.kron(conf_grid.astype(np.float32), cell)[:s, :s])
    return ReferenceMatch(known=known, ab=ab, confidence=confidence)
