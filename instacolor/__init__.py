"""instacolor: instance-aware, semantically guided colorization of grayscale photographs.

>>> from instacolor import colorize, Colorizer  # doctest: +SKIP
"""

from instacolor._version import __version__
from instacolor.api import Colorizer, colorize
from instacolor.errors import (
    DecodeError,
    DetectorUnavailableWarning,
    DownloadError,
    ExportError,
    InputError,
    InstacolorError,
    MissingDependencyError,
    UntrainedWeightsWarning,
    UsageError,
    WeightsError,
)
from instacolor.hints import HintPoint, Hints, Lab
from instacolor.structures import ColorizeResult, Instances, SemanticMap
from instacolor.weights import list_weights

__all__ = [
    "ColorizeResult",
    "Colorizer",
    "DecodeError",
    "DetectorUnavailableWarning",
    "DownloadError",
    "ExportError",
    "HintPoint",
    "Hints",
    "InputError",
    "InstacolorError",
    "Instances",
    "Lab",
    "MissingDependencyError",
    "SemanticMap",
    "UntrainedWeightsWarning",
    "UsageError",
    "WeightsError",
    "__version__",
    "colorize",
    "list_weights",
]
