"""instacolor: instance-aware, semantically guided colorization of grayscale photographs.

>>> from instacolor import colorize, Colorizer  # doctest: +SKIP
"""

from instacolor.api import Colorizer, colorize
from instacolor.errors import DecodeError, DownloadError, InputError, InstacolorError, WeightsError
from instacolor.hints import HintPoint, Hints, Lab
from instacolor.structures import ColorizeResult, Instances, SemanticMap
from instacolor.weights import list_weights

__version__ = "0.1.0"

__all__ = [
    "ColorizeResult",
    "Colorizer",
    "DecodeError",
    "DownloadError",
    "HintPoint",
    "Hints",
    "InputError",
    "InstacolorError",
    "Instances",
    "Lab",
    "SemanticMap",
    "WeightsError",
    "__version__",
    "colorize",
    "list_weights",
]
