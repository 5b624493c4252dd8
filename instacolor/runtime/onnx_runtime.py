"""The onnxruntime runtime: the exported networks, run from numpy without torch.

:class:`OnnxRuntime` loads a folder written by :func:`~instacolor.runtime.export.
export_onnx` (its files are checked against the manifest's sha256) and implements
:class:`~instacolor.runtime.base.Runtime`: ``run(NetworkInputs) -> NetOutput``, exactly
as :class:`~instacolor.runtime.torch_runtime.TorchRuntime` does (ab within 1e-4). The
networks run in onnxruntime; this module computes nothing with torch.

Example:
    >>> from instacolor.runtime.onnx_runtime import OnnxRuntime  # doctest: +SKIP
    >>> runtime = OnnxRuntime("exported/")  # doctest: +SKIP
    >>> out = runtime.run(inputs)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from instacolor.errors import MissingDependencyError, WeightsError
from instacolor.structures import NetOutput, NetworkInputs
from instacolor.weights import sha256_file

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "OnnxRuntime", "import_onnxruntime"]

#: Name of the manifest file in an export folder.
MANIFEST_NAME = "instacolor-onnx.json"
#: Version of the folder layout; :class:`OnnxRuntime` refuses others (2: the graphs take
#: the hint channels ``hints`` / ``crop_hints``).
FORMAT_VERSION = 2


def import_onnxruntime():
    """The onnxruntime module, or a :class:`MissingDependencyError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            f"backend='onnxruntime' needs the onnxruntime package, which is not installed or "
            f'does not import ({exc}); install it with: pip install "instacolor[onnx]", or '
            "use backend='torch'"
        ) from exc
    return onnxruntime


class OnnxRuntime:
    """The exported full-image, instance and fusion networks in onnxruntime sessions.

    Args:
        folder: an export folder (``instacolor-onnx.json`` and the ``.onnx`` files).
        threads: intra-op threads of each session (None: onnxruntime's default).
        providers: onnxruntime execution providers (default: CPU).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        WeightsError: the manifest is missing or of another format, or a file is
            missing or does not match its recorded sha256.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        ort = import_onnxruntime()
        self.folder = Path(folder)
        self.manifest = _read_manifest(self.folder)
        options = ort.SessionOptions()
        # no busy-waiting after a run: torch (reading, reconstruction) runs next on the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.sessions = {}
        for graph, entry in self.manifest["graphs"].items():
            path = self.folder / entry["file"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise WeightsError(
                    f"{path}: expected the {graph} graph with sha256 {entry['sha256'][:16]}... "
                    "as the manifest records; it is missing or changed: export the weights "
                    "again (tools/export_onnx.py)"
                )
            self.sessions[graph] = ort.InferenceSession(
                str(path), options, providers=list(providers)
            )

    @property
    def class_head(self) -> bool:
        """Whether the graphs also output the classification head's logits."""
        return bool(self.manifest.get("class_head"))

    @property
    def with_instances(self) -> bool:
        """Whether the export holds the instance and fusion networks."""
        return bool(self.manifest["with_instances"])

    name = "onnxruntime"

    @property
    def width(self) -> int:
        """Width of the exported generators."""
        return int(self.manifest["width"])

    def run(self, inputs: NetworkInputs) -> NetOutput:
        """Predict ab (and the fusion weights when there are crops) for one image.

        Args:
            inputs: the image's :class:`~instacolor.structures.NetworkInputs`.

        Returns:
            :class:`~instacolor.structures.NetOutput`: ab ``(1, 2, S, S)`` in network
            units; the 13 fusion weight maps when crops were given and the export holds
            the instance networks, else ``()``.
        """
        l_norm = np.ascontiguousarray(inputs.l, dtype=np.float32)
        hints = self._hints(inputs.hints, 1, inputs.working_size)
        semantic = inputs.labels is not None and bool(self.manifest["semantic"])
        extra = {"labels": np.ascontiguousarray(inputs.labels, dtype=np.int64)} if semantic else {}
        suffix = "_semantic" if semantic else ""
        if not inputs.instance_count or not self.with_instances:
            feeds = {"l": l_norm, "hints": hints, **extra}
            ab, *logits = self.sessions["full" + suffix].run(None, feeds)
            return NetOutput(ab=ab, class_logits=logits[0] if logits else None)
        instance = self.sessions["instance"]
        crops = np.ascontiguousarray(inputs.crops, dtype=np.float32)
        crop_hints = self._hints(inputs.crop_hints, len(crops), inputs.working_size)
        features = instance.run(None, {"crops": crops, "crop_hints": crop_hints})
        names = [o.name for o in instance.get_outputs()]
        feeds = {
            "l": l_norm,
            "hints": hints,
            "placements": np.ascontiguousarray(inputs.placements, dtype=np.int64),
            **dict(zip(names, features)),
            **extra,
        }
        ab, *weights = self.sessions["fusion" + suffix].run(None, feeds)
        logits = weights.pop() if self.manifest.get("class_head") else None
        return NetOutput(ab=ab, weights=tuple(weights), class_logits=logits)

    def _hints(self, hints: np.ndarray | None, n: int, size: int) -> np.ndarray:
        """The given hint channels, or the automatic ones (zeros, the mask value)."""
        if hints is not None:
            return np.ascontiguousarray(hints, dtype=np.float32)
        auto = np.zeros((n, 3, size, size), np.float32)
        auto[:, 2] = self.manifest["mask_value"]
        return auto


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(
            f"{folder}: expected an ONNX export folder with a readable {MANIFEST_NAME} "
            f"({type(exc).__name__}: {exc}); write one with tools/export_onnx.py"
        ) from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: expected export format {FORMAT_VERSION}, received "
            f"{manifest.get('format')!r}; export the weights again with this version of instacolor"
        )
    return manifest
