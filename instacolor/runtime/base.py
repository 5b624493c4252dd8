"""The one runtime interface: ``run(NetworkInputs) -> NetOutput``.

Two runtimes implement it: :class:`~instacolor.runtime.torch_runtime.TorchRuntime`
(the networks in torch, any device) and :class:`~instacolor.runtime.onnx_runtime.
OnnxRuntime` (the exported graphs in onnxruntime). :func:`make_runtime` builds the one a
:class:`~instacolor.colorizer.Colorizer` names with ``backend``. Both take the same
:class:`~instacolor.structures.NetworkInputs` and return the same
:class:`~instacolor.structures.NetOutput` (ab and weight maps within 1e-4).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from instacolor.errors import InputError
from instacolor.structures import NetOutput, NetworkInputs

__all__ = ["BACKENDS", "Runtime", "make_runtime"]

#: Backends that run the networks.
BACKENDS = ("torch", "onnxruntime")


@runtime_checkable
class Runtime(Protocol):
    """Runs the colorization networks on prepared inputs.

    Attributes:
        name: the backend name (one of :data:`BACKENDS`).
        with_instances: whether instance crops are fused (else they are ignored and the
            full-image network runs alone).
    """

    name: str

    @property
    def with_instances(self) -> bool: ...

    def run(self, inputs: NetworkInputs) -> NetOutput:
        """ab ``(1, 2, S, S)`` in network units and the fusion weights for ``inputs``."""
        ...


def make_runtime(loaded, backend: str = "torch", device: str | torch.device = "cpu") -> Runtime:
    """The runtime of ``backend`` for loaded weights.

    Args:
        loaded: :class:`~instacolor.weights.LoadedWeights`.
        backend: ``"torch"``, or ``"onnxruntime"`` (exported once per weights into the
            cache; the CUDA provider on a CUDA ``device`` when onnxruntime has it).
        device: torch device (the torch runtime's, or the provider choice).

    Raises:
        InputError: an unknown ``backend``.
        MissingDependencyError: ``"onnxruntime"`` without onnxruntime or onnx.
        ExportError: the networks could not be exported for onnxruntime.
    """
    if backend not in BACKENDS:
        raise InputError(
            f"backend: expected one of {BACKENDS}, received {backend!r}; 'torch' runs the "
            "networks in torch, 'onnxruntime' the exported graphs"
        )
    device = torch.device(device)
    if backend == "torch":
        from instacolor.runtime.torch_runtime import TorchRuntime

        # a folded NHWC copy with Conv+ReLU fused (ab within 1e-4 of the plain network);
        # glibc's keep-freed-memory setting is process-wide: the batch worker, which owns
        # its process, turns it on (instacolor.batch.worker), a library caller may
        cpu = device.type == "cpu"
        return TorchRuntime(
            loaded.net,
            device,
            classify=loaded.class_head,
            fold_batchnorm=True,
            channels_last=cpu,
            fuse_relu=cpu,
        )
    from instacolor.runtime.export import export_cached
    from instacolor.runtime.onnx_runtime import OnnxRuntime, import_onnxruntime

    ort = import_onnxruntime()  # before exporting: the clear error first
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return OnnxRuntime(export_cached(loaded), threads=torch.get_num_threads(), providers=providers)
