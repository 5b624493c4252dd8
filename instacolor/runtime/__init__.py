"""Runtimes: one interface, ``run(NetworkInputs) -> NetOutput``, for torch and onnxruntime.

* :mod:`instacolor.runtime.base` - the :class:`Runtime` protocol and :func:`make_runtime`;
* :mod:`instacolor.runtime.torch_runtime` - the networks in torch;
* :mod:`instacolor.runtime.onnx_runtime` - the exported graphs in onnxruntime (numpy only);
* :mod:`instacolor.runtime.export` - the ONNX export those graphs come from.
"""

from instacolor.runtime.base import BACKENDS, Runtime, make_runtime
from instacolor.runtime.torch_runtime import TorchRuntime

__all__ = ["BACKENDS", "Runtime", "TorchRuntime", "make_runtime"]
