"""``instacolor models``: the registered weights, where they are, their digests and heads."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["models_report"]


def _head_note(entry) -> str:
    """What ``instacolor models`` says of an entry's classification head."""
    if entry.source != "package":
        return ""
    from instacolor.weights import read_safetensors_metadata

    path = Path(str(resources.files("instacolor") / "data" / entry.files[0].name))
    trained = path.is_file() and read_safetensors_metadata(path).get("class_head") == "trained"
    return " (trained class head: annealed-mean and confidence)" if trained else " (no class head)"


def models_report(files: Sequence[str] = ()) -> int:
    """Print the registered weights, where they are and what they hold, then describe
    each weights file in ``files`` (its metadata, e.g. a fine-tuning run's); returns 0."""
    from instacolor.weights import DEFAULT_WEIGHTS, REGISTRY, cache_dir
    from instacolor.weights.loading import describe_digest

    print(f"weights cache: {cache_dir()} (set INSTACOLOR_CACHE to move it)")
    for name, entry in sorted(REGISTRY.items()):
        if entry.source == "random":
            where, state = "built in (random initialisation, no file)", "available"
        elif entry.source == "package":
            path = Path(str(resources.files("instacolor") / "data" / entry.files[0].name))
            where, state = str(path), "present" if path.is_file() else "MISSING"
        else:
            folder = cache_dir() / name
            present = all((folder / f.name).is_file() for f in entry.files)
            how = "downloaded on first use" if entry.source == "download" else "fetch by hand"
            where, state = str(folder), "cached" if present else f"not cached ({how})"
        default = " [default]" if name == DEFAULT_WEIGHTS else ""
        print(f"{name}{default}: {state}")
        print(f"    architecture {entry.architecture}, width {entry.width}; at {where}")
        print(f"    decoding: {entry.decoding.spec}" + _head_note(entry))
        for file in entry.files:
            print(f"    file {file.name} {describe_digest(entry, file)}")
        print(f"    licence: {entry.license}")
        print(f"    {entry.description}")
        if entry.homepage:
            print(f"    see {entry.homepage}")
    for file in files:
        _describe_file(Path(file))
    return 0


#: Metadata ``instacolor models FILE`` shows, in this order, with its wording.
_FILE_FIELDS = (
    ("architecture", "architecture"),
    ("width", "width"),
    ("encoder", "guided by encoder"),
    ("working_size", "working size"),
    ("decode", "decoding"),
    ("trained_from", "trained from"),
    ("finetuned_from", "fine-tuned from"),
    ("finetuned_from_sha256", "base sha256"),
    ("collection_photos", "collection photos"),
    ("collection_sha256", "collection sha256"),
    ("held_out_photos", "held-out photos"),
    ("held_out_gray_psnr", "held-out PSNR of gray"),
    ("held_out_psnr_before", "held-out PSNR before"),
    ("held_out_psnr_after", "held-out PSNR after"),
    ("held_out_colorfulness_before", "held-out colourfulness before"),
    ("held_out_colorfulness_after", "held-out colourfulness after"),
    ("finetune_improved", "improved"),
    ("finetune_seconds", "fine-tuning seconds"),
)


def _describe_file(path: Path) -> None:
    """Print a weights file's sha256 and metadata (loading it checks it is whole)."""
    from instacolor.weights import load_safetensors, read_safetensors_metadata, sha256_file

    load_safetensors(path)  # a WeightsError says what is wrong with the file
    meta = read_safetensors_metadata(path)
    print(f"{ascii(str(path))[1:-1]}: sha256 {sha256_file(path)}")
    for key, label in _FILE_FIELDS:
        if key in meta:
            print(f"    {label}: {ascii(meta[key])[1:-1]}")
