"""``instacolor models``: the registered weights, where they are, their digests and heads."""

from __future__ import annotations

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


def models_report() -> int:
    """Print the registered weights, where they are and what they hold; returns 0."""
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
        print(f"    decoding: {entry.decode}" + _head_note(entry))
        for file in entry.files:
            print(f"    file {file.name} {describe_digest(entry, file)}")
        print(f"    licence: {entry.license}")
        print(f"    {entry.description}")
        if entry.homepage:
            print(f"    see {entry.homepage}")
    return 0
