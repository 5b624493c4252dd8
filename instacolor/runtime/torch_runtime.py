"""The torch runtime: :class:`~instacolor.models.network.InstColorNet` on a torch device."""

from __future__ import annotations

import contextlib

import torch

from instacolor.models.fold import inference_copy
from instacolor.models.network import InstColorNet
from instacolor.models.placement import PLACEMENT_DIVISORS, make_placement
from instacolor.structures import NetOutput, NetworkInputs

__all__ = ["TorchRuntime"]


class TorchRuntime:
    """Runs the networks with torch; implements :class:`~instacolor.runtime.base.Runtime`.

    Args:
        net: the networks (moved to ``device`` by the caller or here).
        device: torch device the inputs are sent to.
        classify: also return the classification head's logits (weights whose head
            was trained).
        fold_batchnorm: run a copy of ``net`` with its BatchNorms folded into the
            preceding convolutions where that is exact up to float rounding
            (:mod:`instacolor.models.fold`; ab within 1e-4 of unfolded).
        channels_last: run that copy with NHWC convolution weights (CPU oneDNN).
        fuse_relu: run that copy's ``Conv2d -> ReLU`` / ``LeakyReLU`` pairs as one oneDNN
            operation and add its skip connections in place (:func:`~instacolor.models.
            fold.inference_copy`).
        bf16: run the convolutions in bfloat16 autocast (CPU with AVX-512 BF16; ab
            differs from float32 by up to ~0.1 Lab units, see ``docs/benchmarks.md``).
        keep_freed_memory: tell glibc malloc to reuse freed large blocks instead of
            page-faulting them anew (process-wide, :mod:`instacolor.runtime.allocator`).
            All five are off here so that a runtime built directly reproduces
            ``net.colorize`` bit for bit; :func:`~instacolor.runtime.make_runtime`
            (what ``Colorizer`` uses) turns ``fold_batchnorm`` on, and ``channels_last``
            and ``fuse_relu`` on a CPU; the batch worker applies ``keep_freed_memory``
            for its own process.

    Example:
        >>> from instacolor.models.network import InstColorNet
        >>> import numpy as np
        >>> from instacolor.models.inputs import prepare_inputs
        >>> runtime = TorchRuntime(InstColorNet(width=8).eval())
        >>> out = runtime.run(prepare_inputs(np.full((40, 40), 50, np.float32), None, None, 32))
        >>> out.ab.shape, out.weights
        ((1, 2, 32, 32), ())
    """

    name = "torch"

    def __init__(
        self,
        net: InstColorNet,
        device: str | torch.device = "cpu",
        *,
        classify: bool = False,
        fold_batchnorm: bool = False,
        channels_last: bool = False,
        fuse_relu: bool = False,
        bf16: bool = False,
        keep_freed_memory: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.classify = classify
        self.bf16 = bf16
        self.inference_net, self.folded = inference_copy(
            self.net,
            fold=fold_batchnorm and not self.net.training,
            channels_last=channels_last,
            fuse_relu=fuse_relu,
        )
        if keep_freed_memory:
            from instacolor.runtime.allocator import keep_freed_memory as keep

            keep()

    @property
    def with_instances(self) -> bool:
        """Whether the networks can fuse instances."""
        return self.net.with_instances

    @property
    def width(self) -> int:
        """Width of the generators."""
        return self.net.width

    @torch.inference_mode()
    def run(self, inputs: NetworkInputs) -> NetOutput:
        """Predict ab (and the fusion weights when there are crops) for one image.

        Args:
            inputs: the image's :class:`~instacolor.structures.NetworkInputs`.

        Returns:
            :class:`~instacolor.structures.NetOutput` (float32 numpy on the CPU).
        """
        device, s = self.device, inputs.working_size
        crops = placements = labels = None
        if inputs.instance_count and self.net.with_instances:
            crops = torch.from_numpy(inputs.crops).to(device)
            placements = {
                d: make_placement(cells, s // d, dtype=torch.float32, device=device)
                for d, cells in zip(PLACEMENT_DIVISORS, inputs.placements)
            }
        if inputs.labels is not None:
            labels = torch.from_numpy(inputs.labels).to(device)
        hints = crop_hints = None
        if inputs.hints is not None:
            hints = torch.from_numpy(inputs.hints).to(device)
            if crops is not None:
                crop_hints = torch.from_numpy(inputs.crop_hints).to(device)
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if self.bf16
            else contextlib.nullcontext()
        )
        with autocast:
            out = self.inference_net.colorize(
                torch.from_numpy(inputs.l).to(device),
                crops=crops,
                placements=placements,
                labels=labels,
                classify=self.classify,
                hints=hints,
                crop_hints=crop_hints,
            )
        logits = out.class_logits
        return NetOutput(
            ab=out.ab.float().cpu().numpy(),
            weights=tuple(w.float().cpu().numpy() for w in out.weights),
            class_logits=None if logits is None else logits.float().cpu().numpy(),
        )
