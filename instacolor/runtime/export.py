"""ONNX export of the full-image, instance and fusion networks.

:func:`export_onnx` writes a folder that :class:`~instacolor.runtime.onnx_runtime.OnnxRuntime`
runs with onnxruntime alone (no torch), and that any ONNX runtime can use:

============================  ===========================================================
file                          inputs -> outputs
============================  ===========================================================
``full.onnx``                 ``l`` (B, 1, H, W), ``hints`` (B, 3, H, W) -> ``ab`` (B, 2, H, W)
``full_semantic.onnx``        ``l``, ``hints``, ``labels`` (B, H, W) int64 -> ``ab``
``instance.onnx``             ``crops`` (N, 1, H, W), ``crop_hints`` (N, 3, H, W) ->
                              ``f_conv1_2`` ... ``f_conv10_2`` (N, C_i, H / d_i, W / d_i),
                              the 13 fusion-point features
``fusion.onnx``               ``l`` (1, 1, H, W), ``hints`` (1, 3, H, W), ``placements``
                              (4, N, 6) int64, the 13 instance features -> ``ab`` (1, 2,
                              H, W) and ``w_conv1_2``
                              ... ``w_conv10_2`` (N + 1, H / d_i, W / d_i) fusion weights
``fusion_semantic.onnx``      as ``fusion.onnx`` plus ``labels`` (1, H, W) int64
============================  ===========================================================

``l`` and ``crops`` are normalised L, ``(L - 50) / 100``; ``hints`` and ``crop_hints``
the hint channels ``a/110, b/110, mask`` (:func:`~instacolor.hints.encode_channels`; in
automatic mode zeros and the manifest's ``mask_value``); ``ab`` is in network units
(times 110 gives Lab); ``labels`` are instacolor label ids (:mod:`instacolor.labels`);
``placements[k]`` holds :func:`~instacolor.models.fusion.box_placements` of the boxes
on the grid of divisor ``(1, 2, 4, 8)[k]`` (``[left, right, top, bottom, width,
height]`` cells). ``B``, ``N`` (>= 1), ``H`` and ``W`` (multiples of 8) are dynamic
axes; 13 ``d_i`` and ``C_i`` are :data:`~instacolor.models.generator.
FUSION_SCALE_DIVISOR` and :func:`~instacolor.models.generator.fusion_channels`. The
semantic graphs are written only when the weights' semantic block is not the identity
(official weights have none: labels change nothing there).

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-tracing exporter),
opset :data:`ONNX_OPSET`; every file is checked with ``onnx.checker.check_model``.
``instacolor-onnx.json`` records the weights' name and sha256, the width, the mask
value, the exporter, the opset and the sha256 of every file.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from instacolor.errors import ExportError, MissingDependencyError
from instacolor.models.fusion import RELU_BEFORE_FUSION
from instacolor.models.generator import FUSION_POINTS, FUSION_SCALE_DIVISOR, fusion_channels
from instacolor.models.network import InstColorNet, network_input
from instacolor.models.placement import PLACEMENT_DIVISORS, make_placement
from instacolor.runtime.onnx_runtime import FORMAT_VERSION, MANIFEST_NAME
from instacolor.weights import LoadedWeights, cache_dir, sha256_file, weights_digest

__all__ = [
    "EXPORTER",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ONNX_OPSET",
    "FullGraph",
    "FusionGraph",
    "InstanceGraph",
    "export_cached",
    "export_onnx",
    "semantic_is_identity",
]

#: ONNX opset of the exported graphs.
ONNX_OPSET = 17
#: The exporter, as recorded in the manifest.
EXPORTER = "torch.onnx.export(dynamo=False) (TorchScript tracing)"
_FEATURES = tuple(f"f_{p}" for p in FUSION_POINTS)
_WEIGHTS = tuple(f"w_{p}" for p in FUSION_POINTS)


class FullGraph(nn.Module):
    """The full-image generator with optional semantic conditioning.

    ``l, hints[, labels] -> ab[, logits]``: ``logits`` (the classification head's) when
    built with ``classify``.
    """

    def __init__(self, net: InstColorNet, classify: bool = False) -> None:
        super().__init__()
        self.net, self.classify = net, classify

    def forward(
        self, l_norm: torch.Tensor, hints: torch.Tensor, labels: torch.Tensor | None = None
    ):
        out = self.net.colorize(l_norm, labels=labels, classify=self.classify, hints=hints)
        return (out.ab, out.class_logits) if self.classify else out.ab


class InstanceGraph(nn.Module):
    """The instance generator: ``crops, crop_hints -> 13 features`` (as fusion consumes them)."""

    def __init__(self, net: InstColorNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor, crop_hints: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = network_input(crops, self.net.mask_value, crop_hints)
        out = self.net.instance(x, self.net.generator_hook("instance", crops))
        # rectified where the reference's in-place ReLU reaches the stored feature
        return tuple(
            torch.relu(f) if p in RELU_BEFORE_FUSION else f
            for p, f in zip(FUSION_POINTS, out.features)
        )


class FusionGraph(nn.Module):
    """The fusion generator.

    ``l, hints, placements, 13 features[, labels] -> ab, 13 weights[, logits]``; ``logits``
    when built with ``classify``.
    """

    def __init__(self, net: InstColorNet, classify: bool = False) -> None:
        super().__init__()
        self.net, self.classify = net, classify

    def forward(
        self,
        l_norm: torch.Tensor,
        hints: torch.Tensor,
        placements: torch.Tensor,
        *rest: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        features, labels = rest[: len(FUSION_POINTS)], (rest[len(FUSION_POINTS) :] or (None,))[0]
        grids = {}  # one placement per grid size, shared by the points at that size

        def placement_at(divisor: int, feature: torch.Tensor):
            if divisor not in grids:
                grids[divisor] = make_placement(
                    placements[PLACEMENT_DIVISORS.index(divisor)],
                    feature.shape[-1],
                    dtype=feature.dtype,
                    device=feature.device,
                )
            return grids[divisor]

        out = self.net.fusion.fuse_points(
            network_input(l_norm, self.net.mask_value, hints),
            lambda name: [features[FUSION_POINTS.index(name)]],
            placement_at,
            self.net.generator_hook("fusion", l_norm, labels),
            budget=None,  # one pass over all instances: N is a dynamic axis of the graph
            classify=self.classify,
        )
        return (out.ab, *out.weights, *((out.class_logits,) if self.classify else ()))


def semantic_is_identity(net: InstColorNet) -> bool:
    """True when every gamma and beta layer of the semantic block is zero (labels are moot)."""
    return all(
        not bool(t.any())
        for name, t in net.semantic.state_dict().items()
        if ".gamma." in name or ".beta." in name
    )


def _dims(names: tuple[str, ...], first: str, spatial: int) -> dict[str, dict[int, str]]:
    """Dynamic axes of per-point tensors: a shared first axis, per-point spatial names."""
    return {
        n: {0: first, spatial: f"height_{p}", spatial + 1: f"width_{p}"}
        for n, p in zip(names, FUSION_POINTS)
    }


def _specs(
    net: InstColorNet, size: int, classify: bool
) -> dict[str, tuple[nn.Module, tuple, dict]]:
    """``{graph: (module, example inputs, export keyword arguments)}``."""
    logits = ("logits",) if classify else ()
    quarter = {2: "height_4", 3: "width_4"}
    l_norm = torch.zeros(1, 1, size, size)
    hints = torch.zeros(1, 3, size, size)
    hints[:, 2] = net.mask_value
    labels = torch.zeros(1, size, size, dtype=torch.int64)
    img = {0: "batch", 2: "height", 3: "width"}
    spatial = {1: "height", 2: "width"}
    specs = {}
    for semantic in (False, True):
        if semantic and semantic_is_identity(net):
            continue
        suffix = "_semantic" if semantic else ""
        names = ("l", "hints", "labels") if semantic else ("l", "hints")
        axes = {"l": img, "hints": img, "ab": img, "labels": {0: "batch", **spatial}}
        axes["logits"] = {0: "batch", **quarter}
        specs["full" + suffix] = (
            FullGraph(net, classify).eval(),
            (l_norm, hints, labels) if semantic else (l_norm, hints),
            {
                "input_names": list(names),
                "output_names": ["ab", *logits],
                "dynamic_axes": axes if classify else _without(axes, "logits"),
            },
        )
        if not net.with_instances:
            continue
        n = 2
        feats = _example_features(net, n, size)
        inputs = ("l", "hints", "placements", *_FEATURES, *(("labels",) if semantic else ()))
        axes = {
            "l": {2: "height", 3: "width"},
            "hints": {2: "height", 3: "width"},
            "ab": {2: "height", 3: "width"},
            "labels": spatial,
            "placements": {1: "instances"},
            **_dims(_FEATURES, "instances", 2),
            **_dims(_WEIGHTS, "instances_plus_1", 1),
            **({"logits": quarter} if classify else {}),
        }
        placements = torch.tensor([[0, 0, 0, 0, 1, 1]] * n).repeat(4, 1, 1)
        placements[..., 4:] = torch.tensor([size // d for d in PLACEMENT_DIVISORS])[:, None, None]
        example = (l_norm, hints, placements, *feats, *((labels,) if semantic else ()))
        specs["fusion" + suffix] = (
            FusionGraph(net, classify).eval(),
            example,
            {
                "input_names": list(inputs),
                "output_names": ["ab", *_WEIGHTS, *logits],
                "dynamic_axes": axes,
            },
        )
    if net.with_instances:
        crop_axes = {0: "instances", 2: "height", 3: "width"}
        axes = {"crops": crop_axes, "crop_hints": crop_axes}
        axes.update(_dims(_FEATURES, "instances", 2))
        specs["instance"] = (
            InstanceGraph(net).eval(),
            (torch.zeros(2, 1, size, size), hints.expand(2, 3, size, size).contiguous()),
            {
                "input_names": ["crops", "crop_hints"],
                "output_names": list(_FEATURES),
                "dynamic_axes": axes,
            },
        )
    return specs


def _without(axes: dict, key: str) -> dict:
    return {k: v for k, v in axes.items() if k != key}


def _example_features(net: InstColorNet, n: int, size: int) -> list[torch.Tensor]:
    channels = fusion_channels(net.width)
    grid = {p: size // d for p, d in FUSION_SCALE_DIVISOR.items()}
    return [torch.zeros(n, channels[p], grid[p], grid[p]) for p in FUSION_POINTS]


def _check(path: Path, graph: str) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"checking the exported {graph} graph needs the onnx package, which is not "
            f'installed ({exc}); install it with: pip install "instacolor[onnx]"'
        ) from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(
            f"the exported {graph} graph {path} fails onnx.checker ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); please report this with the weights used"
        ) from exc


def export_onnx(
    loaded: LoadedWeights,
    folder: str | os.PathLike,
    *,
    working_size: int = 64,
    opset: int = ONNX_OPSET,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Export the networks of ``loaded`` to ONNX files in ``folder`` (created).

    Args:
        loaded: weights from :func:`~instacolor.weights.load_weights`.
        folder: output folder; files already there are replaced atomically.
        working_size: spatial size of the example inputs; the graphs accept any
            multiple of 8 (tested at 32 to 256), a small example exports faster.
        opset: ONNX opset (17 is tested).
        progress: called with each graph's name before it is exported.

    Returns:
        The folder.

    Raises:
        ExportError: the exporter or ``onnx.checker`` rejects a graph.
        MissingDependencyError: ``onnx`` is not installed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = loaded.net
    if next(net.parameters()).dtype != torch.float32 or next(net.parameters()).device.type != "cpu":
        net = copy.deepcopy(net).float().cpu()
    net = net.eval()
    files = {}
    for graph, (module, example, kwargs) in _specs(net, working_size, loaded.class_head).items():
        if progress is not None:
            progress(graph)
        target = folder / f"{graph}.onnx"
        partial = folder / f".{graph}.onnx.partial"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer and deprecation chatter
                torch.onnx.export(
                    module, example, str(partial), opset_version=opset, dynamo=False, **kwargs
                )
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise ExportError(
                f"exporting the {graph} network of {loaded.name!r} to ONNX opset {opset} with "
                f"{EXPORTER} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                f"expected opset 14-20 ({ONNX_OPSET} is tested): use --opset {ONNX_OPSET}"
            ) from exc
        try:
            _check(partial, graph)
        except Exception:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)
        files[graph] = {"file": target.name, "sha256": sha256_file(target), **_io(kwargs)}
    manifest = {
        "format": FORMAT_VERSION,
        "weights": loaded.name,
        "weights_sha256": weights_digest(loaded),
        "width": net.width,
        "mask_value": net.mask_value,
        "with_instances": net.with_instances,
        "semantic": "full_semantic" in files,
        "class_head": loaded.class_head,
        "opset": opset,
        "exporter": EXPORTER,
        "torch": torch.__version__,
        "graphs": files,
    }
    partial = folder / f".{MANIFEST_NAME}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, folder / MANIFEST_NAME)
    return folder


def _io(kwargs: dict) -> dict:
    return {"inputs": kwargs["input_names"], "outputs": kwargs["output_names"]}


def export_cached(loaded: LoadedWeights, *, opset: int = ONNX_OPSET) -> Path:
    """The export folder of ``loaded`` in the cache, exported on first use.

    The folder ``<cache>/onnx/<weights sha256[:16]>-o<opset>-t<torch version hash>`` is
    reused while its manifest names the same weights digest. A new export is written
    into a private temporary folder and renamed into place, so processes that start
    together (``--workers``, Ray actors) never see each other's half-written files: the
    first rename wins and the others use its folder.
    """
    digest = weights_digest(loaded)
    tag = hashlib.sha256(torch.__version__.encode()).hexdigest()[:8]
    folder = cache_dir() / "onnx" / f"{digest[:16]}-o{opset}-t{tag}"
    if _exported(folder, digest):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        export_onnx(loaded, temporary, opset=opset)
        if folder.exists() and not _exported(folder, digest):
            shutil.rmtree(folder)  # a stale or broken export
        with contextlib.suppress(OSError):  # another process renamed its export first
            os.rename(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def _exported(folder: Path, digest: str) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict):
        return False
    return manifest.get("weights_sha256") == digest and manifest.get("format") == FORMAT_VERSION
