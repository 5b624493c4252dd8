"""Backward-compatible names: the Ray runner is :mod:`instacolor.batch.ray`, the batch
procedure and :func:`colorize_files` are in :mod:`instacolor.batch.run`."""

from instacolor.batch.ray import import_ray, run_ray
from instacolor.batch.run import colorize_files

__all__ = ["colorize_files", "import_ray", "run_ray"]
