"""The weights cache and verified downloads (any file: weights, detector checkpoints).

Files live in ``$INSTACOLOR_CACHE`` or ``~/.cache/instacolor``, under ``<folder>/<file>``.
A download goes to a hidden temporary file, is checked against the expected sha256 (a
full digest or, as torch.hub names files, a prefix of one) and only then renamed into
place, so the cache never holds a partial or wrong file. Offline, the error names the
file, where to put it and where to get it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch

from instacolor.errors import DownloadError, InputError, WeightsError

__all__ = [
    "WeightFile",
    "cache_dir",
    "fetch_file",
    "fetch_verified",
    "file_digest",
    "sha256_file",
    "torchvision_cache_path",
    "torchvision_state_dict",
    "verify_sha256",
]


@dataclass(frozen=True)
class WeightFile:
    """One file of a weights entry.

    Attributes:
        name: file name inside the entry's cache folder (or the package).
        sha256: full hex digest, or a prefix of at least 8 hex digits; None if unknown.
        url: official download URL, or None when it must be fetched by hand.
    """

    name: str
    sha256: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        digest = self.sha256
        if digest is not None and (
            len(digest) < 8 or any(c not in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise InputError(
                f"WeightFile {self.name}: sha256: expected None or at least 8 hex digits, "
                f"received {digest!r}; copy the digest (or its first 8+ digits) from the "
                "publisher"
            )


def cache_dir() -> Path:
    """The weights cache: ``$INSTACOLOR_CACHE`` or ``~/.cache/instacolor``."""
    return Path(os.environ.get("INSTACOLOR_CACHE", Path.home() / ".cache" / "instacolor"))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file with a :mod:`hashlib` algorithm, read in chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    return file_digest(path, "sha256", chunk)


def verify_sha256(path: Path, expected: str | None, origin: str) -> str:
    """sha256 of ``path``, checked against ``expected`` (a digest or prefix; None: any).

    Raises:
        WeightsError: the digest does not match; the message starts with ``origin``.
    """
    digest = sha256_file(path)
    if expected is not None and not digest.startswith(expected.lower()):
        raise WeightsError(
            f"{origin}: sha256 {digest[:16]}... does not match the expected {expected}; the "
            f"file at {path} is corrupt or not the official one: delete it and fetch it again"
        )
    return digest


def fetch_file(folder: str, file: WeightFile, *, homepage: str = "", progress: bool = True) -> Path:
    """Path of ``file`` in ``cache_dir() / folder``, downloaded and verified if missing.

    The download goes to a hidden temporary file that is checked against
    ``file.sha256`` and only then renamed into place, so an interrupted or wrong
    download never leaves a file the next call would trust. A file already in the
    cache is returned as it is (see :func:`fetch_verified` to check it too).

    Args:
        folder: sub-folder of the cache (a weights name, or e.g. ``"segment-anything"``).
        file: name, expected sha256 and official URL.
        homepage: where users can get the file by hand (for the error message).
        progress: show a download progress bar.

    Raises:
        WeightsError: the file is missing and has no download URL.
        DownloadError: the download failed or the downloaded bytes have the wrong hash.
    """
    target = cache_dir() / folder / file.name
    if not target.is_file():
        _download(target, folder, file, homepage=homepage, progress=progress)
    return target


def fetch_verified(
    folder: str, file: WeightFile, origin: str, *, homepage: str = "", progress: bool = True
) -> tuple[Path, str]:
    """``(path, sha256)`` of ``file``: a cached file is checked, a download hashed once.

    Raises:
        WeightsError: missing without a download URL, or a cached file fails its sha256
            (the message starts with ``origin``).
        DownloadError: the download failed or had the wrong hash.
    """
    target = cache_dir() / folder / file.name
    if target.is_file():
        return target, verify_sha256(target, file.sha256, origin)
    return target, _download(target, folder, file, homepage=homepage, progress=progress)


def _download(target: Path, folder: str, file: WeightFile, *, homepage: str, progress: bool) -> str:
    """Download ``file`` to ``target`` through a verified temporary file; its sha256."""
    if file.url is None:
        where = homepage or "its publisher"
        raise WeightsError(
            f"weights {folder!r}: file {file.name} not found at {target}. It cannot be "
            f"downloaded automatically: get it from {where}, then put it at {target} "
            f"(or pass the folder/file path as weights=)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.download")
    try:
        torch.hub.download_url_to_file(file.url, str(partial), progress=progress)
        digest = sha256_file(partial)
        if file.sha256 is not None and not digest.startswith(file.sha256.lower()):
            raise DownloadError(
                f"weights {folder!r}: {file.url} gave a file with sha256 {digest[:16]}..., "
                f"expected {file.sha256}; nothing was saved. Retry, or report a changed file"
            )
        os.replace(partial, target)
    except DownloadError:
        raise
    except Exception as exc:  # urllib raises URLError, HTTPError, TimeoutError, OSError
        raise DownloadError(
            f"weights {folder!r}: could not download {file.name} from {file.url} "
            f"({type(exc).__name__}: {exc}). If this machine is offline, download it "
            f"elsewhere and put it at {target}"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return digest


def torchvision_cache_path(weights) -> Path:
    """Where torchvision caches (and looks for) the file of a weights enum member."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def torchvision_state_dict(weights, what: str, *, progress: bool = True) -> dict:
    """State dict of a torchvision weights enum member, through torchvision's own cache.

    A missing file is downloaded by torchvision and checked against the hash prefix in
    its name; offline, the error names the file, where to put it and where to get it.

    Args:
        weights: e.g. ``AlexNet_Weights.IMAGENET1K_V1``.
        what: what the weights are for, to start the error message.
        progress: show a download progress bar.

    Raises:
        WeightsError: the file is missing and could not be downloaded.
    """
    path = torchvision_cache_path(weights)
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except (URLError, OSError, RuntimeError) as err:
        raise WeightsError(
            f"{what}: {path.name} is not at {path} and could not be downloaded from "
            f"{weights.url} ({type(err).__name__}: {err}). Download it on a connected machine "
            f"and put it at that path (or point $TORCH_HOME at a folder whose hub/checkpoints "
            f"holds it)"
        ) from err
