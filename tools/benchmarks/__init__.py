"""The benchmarks behind ``tools/bench.py``: one module per subcommand.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status);
shared helpers live in :mod:`benchmarks.common`. :data:`SUBCOMMANDS` maps each subcommand
to its module and the one line ``tools/bench.py --help`` shows, so that listing them
imports none of them.
"""

from __future__ import annotations

#: subcommand -> (module in this package, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pipeline": ("pipeline", "one colorization through the public API: time and memory"),
    "batch": ("batch", "archival batches through the instacolor colorize CLI"),
    "detect": ("detect", "CPU time of each detection backend on one 640x480 image"),
    "hints": ("hints", "hint propagation on one photo: seconds per stage"),
    "onnx": ("onnx", "torch and onnxruntime backends: per-image latency"),
    "ray": ("ray", "Ray Data batches with 1 and 2 actors"),
    "reference": ("reference", "instacolor against the InstColorization networks"),
    "review": ("review", "instacolor review: time from click to preview"),
    "review-load": ("review_load", "instacolor review under load: memory, static files"),
    "video": ("video", "instacolor video: frames per second and peak memory"),
    "profile": ("profile", "per-operator CPU profile of the network and reconstruction"),
}
