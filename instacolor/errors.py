"""The small error and warning hierarchy of instacolor.

Every error raised on purpose by the library derives from :class:`InstacolorError`
and from the builtin that matches its kind, so ``except ValueError`` keeps working
for callers that do not know instacolor. Messages say what was expected, what was
received and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "DetectorUnavailableWarning",
    "DownloadError",
    "ExportError",
    "InputError",
    "InstacolorError",
    "MissingDependencyError",
    "UntrainedWeightsWarning",
    "UsageError",
    "WeightsError",
]


class InstacolorError(Exception):
    """Base class of every error instacolor raises on purpose."""


class InputError(InstacolorError, ValueError):
    """An argument (image, instances, semantic map, option) is not usable as given."""


class UsageError(InstacolorError, ValueError):
    """A batch cannot start as asked: a missing input, an unusable output folder or
    manifest, a bad option (the ``instacolor`` command exits with status 2)."""


class DecodeError(InstacolorError, OSError):
    """A file could not be read or decoded as an image."""


class WeightsError(InstacolorError, RuntimeError):
    """Weights are missing, corrupt, or do not match the architecture they are loaded into."""


class DownloadError(WeightsError):
    """Weights could not be fetched from their official location (offline, refused, bad hash)."""


class MissingDependencyError(InstacolorError, ImportError):
    """An optional package a feature needs is not installed (or does not import)."""


class ExportError(InstacolorError, RuntimeError):
    """A network could not be exported to ONNX, or the exported graph failed its check."""


class UntrainedWeightsWarning(UserWarning):
    """The weights in use are randomly initialised: outputs are not real colorizations."""


class DetectorUnavailableWarning(UserWarning):
    """A detector could not be built and colorization goes on without instances."""
