"""Compatibility path: the ONNX export lives in :mod:`instacolor.runtime.export`."""

from instacolor.runtime.export import *  # noqa: F403
from instacolor.runtime.export import __all__  # noqa: F401
