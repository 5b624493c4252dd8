"""A collection of colour photos for fine-tuning: which files count, its digest, its split.

:func:`scan_collection` lists the image files of a folder (recursively, as
:func:`~instacolor.train.data.list_images` does), reads each one once at a small size,
and keeps the colour photos: unreadable files and gray or near-gray ones (mean Lab
chroma below :data:`GRAY_CHROMA`, e.g. scans of black-and-white prints) are skipped and
counted. The kept photos are held in memory, shrunk so that their short side is at
most ``keep_side`` pixels (a few hundred photos then take a few tens of MB and epochs
never decode a file again). :func:`split_collection` draws the held-out photos.

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.full((40, 40, 3), (200, 40, 30), np.uint8)).save(folder / "red.png")
    >>> Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(folder / "gray.png")
    >>> (folder / "broken.jpg").write_bytes(b"not a jpeg")
    10
    >>> c = scan_collection(folder, keep_side=32)
    >>> len(c.photos), c.skipped_gray, c.skipped_unreadable
    (1, 1, 1)
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instacolor.color import rgb_to_lab
from instacolor.errors import InputError
from instacolor.train.data import list_images

__all__ = ["GRAY_CHROMA", "Collection", "mean_chroma", "scan_collection", "split_collection"]

#: Mean Lab chroma (sqrt(a^2 + b^2)) below which a photo counts as gray or near-gray.
GRAY_CHROMA = 4.0
_PROBE_SIDE = 64


@dataclass(frozen=True)
class Collection:
    """The colour photos of a folder.

    Attributes:
        files: the kept photos' paths, sorted.
        photos: their pixels, uint8 ``(H, W, 3)`` each, short side at most ``keep_side``.
        skipped_gray: files skipped as gray or near-gray.
        skipped_unreadable: files that could not be read as images.
        digest: sha256 over the kept files' relative paths and contents.
    """

    files: tuple[Path, ...]
    photos: tuple[np.ndarray, ...]
    skipped_gray: int
    skipped_unreadable: int
    digest: str


def _read(path: Path, keep_side: int) -> np.ndarray:
    """The photo as RGB uint8, its short side shrunk to at most ``keep_side``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.draft("RGB", (keep_side, keep_side))  # JPEG: decode at a reduced scale
            im = im.convert("RGB")
            w, h = im.size
            scale = keep_side / min(w, h)
            if scale < 1:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(im)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean Lab chroma of ``rgb`` ``(H, W, 3)`` uint8, probed at 64 px at most."""
    step = max(1, max(rgb.shape[:2]) // _PROBE_SIDE)
    small = np.array(rgb[::step, ::step])  # a writable copy (decoded arrays are read-only)
    t = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0
    lab = rgb_to_lab(t)[0]
    return float(torch.sqrt(lab[1] ** 2 + lab[2] ** 2).mean())


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def scan_collection(folder: str | os.PathLike, *, keep_side: int = 256) -> Collection:
    """Read a folder's colour photos once, skipping unreadable and gray files.

    Args:
        folder: a folder of photos (searched recursively).
        keep_side: the kept photos' short side at most (pixels).

    Returns:
        The :class:`Collection`.

    Raises:
        InputError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"photos: expected a folder of colour photos, received {str(folder)!r}, which "
            f"{'is a file' if folder.exists() else 'does not exist'}"
        )
    files, photos, gray, unreadable = [], [], 0, 0
    digest = hashlib.sha256()
    for path in list_images(folder):
        try:
            rgb = _read(path, keep_side)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                Image.DecompressionBombWarning):  # fmt: skip
            unreadable += 1
            continue
        if min(rgb.shape[:2]) < 8 or mean_chroma(rgb) < GRAY_CHROMA:
            gray += 1
            continue
        files.append(path)
        photos.append(rgb)
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(_file_digest(path))
    return Collection(tuple(files), tuple(photos), gray, unreadable, digest.hexdigest())


def split_collection(count: int, fraction: float, *, minimum: int = 10, seed: int = 0):
    """Indices ``(train, held_out)`` of ``count`` photos, held-out a seeded random draw.

    Args:
        count: number of photos.
        fraction: held-out fraction in ``(0, 1)``; at least ``minimum`` photos are held out.
        minimum: the fewest held-out photos.
        seed: seed of the draw.

    Returns:
        Two sorted index lists.

    Raises:
        InputError: ``fraction`` outside ``(0, 0.5]``.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise InputError(f"holdout: expected a fraction such as 0.1, received {fraction!r}")
    if not 0 < fraction <= 0.5:
        raise InputError(
            f"holdout: expected a fraction in (0, 0.5] of the photos to score on, received "
            f"{fraction!r}; the default 0.1 holds out 10 % (at least {minimum} photos)"
        )
    n_held = max(minimum, round(count * fraction))
    order = np.random.default_rng([seed, count]).permutation(count)
    return sorted(order[n_held:].tolist()), sorted(order[:n_held].tolist())
