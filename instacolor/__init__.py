"""instacolor: instance-aware, semantically guided colorization of grayscale photographs.

>>> from instacolor import colorize, Colorizer  # doctest: +SKIP
"""

from instacolor._version import __version__
from instacolor.api import colorize, colorize_full
from instacolor.colorizer import Colorizer
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
from instacolor.structures import ColorizeResult, Decoding, Instances, SemanticMap
from instacolor.weights import list_weights

__all__ = [
    "ColorizeResult",
    "Colorizer",
    "DecodeError",
    "Decoding",
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
    "colorize_full",
    "list_weights",
]
