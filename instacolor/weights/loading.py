"""Loading weights into networks: registered names, files and folders, with architecture
and hash checks, and the defaults (working size, decoding) each carries."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from instacolor.errors import UntrainedWeightsWarning, WeightsError
from instacolor.models.network import InstColorNet
from instacolor.structures.decoding import DECODINGS, Decoding
from instacolor.weights.download import (
    WeightFile,
    cache_dir,
    fetch_file,
    fetch_verified,
    sha256_file,
    verify_sha256,
)
from instacolor.weights.formats import (
    load_official_folder,
    load_safetensors,
    load_siggraph17,
    read_safetensors_metadata,
)
from instacolor.weights.official import (
    RECORDED_DIGEST_NOTE,
    fetch_archive,
    read_recorded_digests,
)
from instacolor.weights.registry import (
    DEFAULT_WORKING_SIZE,
    REGISTRY,
    WeightsEntry,
    get_entry,
    unknown_weights_error,
)

__all__ = ["LoadedWeights", "describe_digest", "fetch", "load_weights", "weights_digest"]


@dataclass(frozen=True)
class LoadedWeights:
    """A network with the facts of where it came from.

    Attributes:
        net: the network in eval mode on the requested device.
        name: registry name or file path.
        sha256: digest of the weights file (of ``latest_net_GF.pth`` for a folder), or
            None for untrained weights.
        trained: False for randomly initialised weights.
        working_size: the size the networks were trained at, the default working size
            (the registry's, a safetensors file's ``working_size`` metadata, else 256).
        class_head: whether the classification head was trained (a safetensors file's
            ``class_head`` metadata is ``"trained"``); decoding by annealed mean and the
            confidence map need it.
        decoding: the default :class:`~instacolor.structures.Decoding` (the file's
            ``decode``, ``temperature`` and ``mix`` metadata, else the registry entry's,
            else regression).
    """

    net: InstColorNet
    name: str
    sha256: str | None
    trained: bool
    working_size: int = DEFAULT_WORKING_SIZE
    class_head: bool = False
    decoding: Decoding = field(default_factory=Decoding)


def fetch(entry: WeightsEntry, file: WeightFile, *, progress: bool = True) -> Path:
    """Path of ``file`` in the cache, downloading and verifying it if it is missing.

    Raises:
        WeightsError: the file is missing and has no download URL, or (archive entries) a
            cached file differs from its recorded digest.
        DownloadError: the download failed or the downloaded bytes have the wrong hash.
        MissingDependencyError: an archive on Google Drive needs gdown, not installed.
    """
    if entry.archive is not None:
        names = [f.name for f in entry.files]
        return fetch_archive(entry.name, entry.archive, names, progress=progress)[0] / file.name
    return fetch_file(entry.name, file, homepage=entry.homepage, progress=progress)


def describe_digest(entry: WeightsEntry, file: WeightFile) -> str:
    """How ``instacolor models`` describes a file's digest.

    Returns ``"sha256 <digest>"`` for a published digest; for archive entries (no
    upstream sha256) the digest recorded on first download, or that it will be.

    Example:
        >>> from instacolor.weights import get_entry
        >>> from instacolor.weights.loading import describe_digest
        >>> entry = get_entry("siggraph17")
        >>> describe_digest(entry, entry.files[0])
        'sha256 df00044c'
    """
    if file.sha256 is not None:
        return f"sha256 {file.sha256}"
    if entry.archive is None:
        return "sha256 unknown"
    try:
        recorded = (read_recorded_digests(entry.name) or {}).get(file.name)
    except WeightsError:
        recorded = None
    if recorded is None:
        return RECORDED_DIGEST_NOTE
    return f"sha256 {recorded} ({RECORDED_DIGEST_NOTE})"


def _random_network(entry: WeightsEntry) -> InstColorNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = InstColorNet(
            entry.width,
            with_instances=entry.architecture == "instcolor",
            mask_value=entry.mask_value,
        )
    return net.eval()


def _load_entry(entry: WeightsEntry) -> tuple[InstColorNet, str | None]:
    if entry.source == "random":
        warnings.warn(
            f"weights {entry.name!r} are randomly initialised: the colors are not "
            "meaningful (weights='default' gives the trained ones)",
            UntrainedWeightsWarning,
            stacklevel=4,
        )
        return _random_network(entry), None
    if entry.source == "package":
        file = entry.files[0]
        path = _package_path(entry)
        return load_safetensors(path), verify_sha256(path, file.sha256, entry.name)
    if entry.archive is not None:
        names = [f.name for f in entry.files]
        folder, digests = fetch_archive(entry.name, entry.archive, names)
        return load_official_folder(folder), digests["latest_net_GF.pth"]
    home = entry.homepage
    fetched = [fetch_verified(entry.name, f, entry.name, homepage=home) for f in entry.files]
    paths, digests = [p for p, _ in fetched], [d for _, d in fetched]
    if entry.architecture == "siggraph17":
        return load_siggraph17(paths[0]), digests[0]
    return load_official_folder(paths[0].parent), digests[-1]


#: ``(class_head, decoding)`` of weights without decoding metadata.
_NO_HEAD = (False, Decoding())


def load_weights(
    weights: str | os.PathLike = "default", *, device: str | torch.device = "cpu"
) -> LoadedWeights:
    """Resolve ``weights`` (name or path) and build the network on ``device``.

    Raises:
        WeightsError: unknown name, missing or corrupt file, architecture mismatch.
    """
    if isinstance(weights, str) and (weights == "default" or weights in REGISTRY):
        entry = get_entry(weights)
        net, digest = _load_entry(entry)
        if net.width != entry.width or net.with_instances != (entry.architecture == "instcolor"):
            raise WeightsError(
                f"weights {entry.name!r}: expected architecture {entry.architecture} at width "
                f"{entry.width}, the files in {cache_dir() / entry.name} hold width {net.width}"
                f"{'' if net.with_instances else ' (full-image network only)'}; replace them"
            )
        name, trained, size = entry.name, entry.source != "random", entry.working_size
        head = (False, entry.decoding)
        if entry.source == "package":
            head = _head_metadata(_package_path(entry), head)
    else:
        path, size = Path(weights), DEFAULT_WORKING_SIZE
        if path.is_dir():
            net, digest = load_official_folder(path), sha256_file(path / "latest_net_GF.pth")
        elif path.suffix == ".safetensors":
            net, digest = load_safetensors(path), sha256_file(path)
            size = _metadata_working_size(path, digest)
            head = _head_metadata(path, _NO_HEAD)
        elif path.suffix in (".pth", ".pt") and path.is_file():
            net, digest = load_siggraph17(path), sha256_file(path)
        else:
            raise unknown_weights_error(weights)
        name, trained = str(path), True
        if path.suffix != ".safetensors":
            head = _NO_HEAD
    class_head, decoding = head
    return LoadedWeights(
        net=net.to(device),
        name=name,
        sha256=digest,
        trained=trained,
        working_size=size,
        class_head=class_head,
        decoding=decoding,
    )


def _package_path(entry: WeightsEntry) -> Path:
    """Where a ``source="package"`` entry's file lies inside instacolor."""
    return Path(str(resources.files("instacolor") / "data" / entry.files[0].name))


def _head_metadata(path: Path, default: tuple[bool, Decoding]) -> tuple[bool, Decoding]:
    """``(class_head, decoding)`` from a safetensors file's metadata."""
    meta = read_safetensors_metadata(path)
    class_head = meta.get("class_head") == "trained"
    decode = meta.get("decode", default[1].mode)
    try:
        temperature = float(meta.get("temperature", default[1].temperature))
    except ValueError:
        temperature = -1.0
    if (
        decode not in DECODINGS
        or not 0 < temperature <= 10
        or (decode != "regression" and not class_head)
    ):
        raise WeightsError(
            f"{path}: metadata decode/temperature: expected decode in {DECODINGS} (annealed-mean "
            f"only with class_head 'trained') and temperature in (0, 10], received decode "
            f"{decode!r}, class_head {meta.get('class_head')!r}, temperature "
            f"{meta.get('temperature')!r}; rewrite the file's metadata ('instacolor train "
            "--export' sets it)"
        )
    try:
        mix = float(meta.get("mix", default[1].mix))
    except ValueError:
        mix = -1.0
    if not 0 <= mix <= 1:
        raise WeightsError(
            f"{path}: metadata mix: expected a number from 0 to 1, received "
            f"{meta.get('mix')!r}; rewrite the file's metadata ('instacolor train --export "
            "--decode annealed-mean:T:MIX' sets it)"
        )
    return class_head, Decoding(decode, temperature, mix)


def _metadata_working_size(path: Path, digest: str) -> int:
    """The file's ``working_size`` metadata, else its registry entry's (same sha256), else 256."""
    value = read_safetensors_metadata(path).get("working_size")
    if value is None:
        known = [e for e in REGISTRY.values() for f in e.files if f.sha256 == digest]
        return known[0].working_size if known else DEFAULT_WORKING_SIZE
    if not value.isdigit() or int(value) < 32 or int(value) % 8:
        raise WeightsError(
            f"{path}: metadata working_size: expected a multiple of 8 of at least 32, received "
            f"{value!r}; rewrite the file's metadata (tools/train.py --export sets it)"
        )
    return int(value)


def weights_digest(loaded: LoadedWeights) -> str:
    """sha256 of the weights file, or of the parameters for weights without a file."""
    if loaded.sha256 is not None and len(loaded.sha256) == 64:
        return loaded.sha256
    digest = hashlib.sha256()
    for name, tensor in sorted(loaded.net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
