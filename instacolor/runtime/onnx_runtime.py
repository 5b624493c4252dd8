"""Run exported networks with onnxruntime: the colorization stages without torch.

:class:`OnnxNetwork` loads a folder written by :func:`~instacolor.export.export_onnx`
(its files are checked against the manifest's sha256) and predicts ab exactly as
:meth:`~instacolor.models.network.InstColorNet.colorize` does, from numpy arrays: the
networks run in onnxruntime, torch computes nothing here (the ``instacolor`` package
itself still imports torch).

Example:
    >>> from instacolor.onnx_backend import OnnxNetwork  # doctest: +SKIP
    >>> net = OnnxNetwork("exported/")  # doctest: +SKIP
    >>> ab, weights = net.colorize(l_norm, crops=crops, placements=cells)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from instacolor.errors import InputError, MissingDependencyError, WeightsError
from instacolor.export import FORMAT_VERSION, MANIFEST_NAME
from instacolor.weights import sha256_file

__all__ = ["OnnxNetwork", "import_onnxruntime"]


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


class OnnxNetwork:
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
    def with_instances(self) -> bool:
        """Whether the export holds the instance and fusion networks."""
        return bool(self.manifest["with_instances"])

    @property
    def width(self) -> int:
        """Width of the exported generators."""
        return int(self.manifest["width"])

    def colorize(
        self,
        l_norm: np.ndarray,
        *,
        crops: np.ndarray | None = None,
        placements: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Predict ab for one image.

        Args:
            l_norm: ``(1, 1, S, S)`` float32 normalised L, ``(L - 50) / 100``.
            crops: ``(N, 1, S, S)`` float32 normalised L of the instance crops, or None.
            placements: ``(4, N, 6)`` int64 from
                :func:`~instacolor.models.network.placement_cells` for the crops' boxes.
            labels: ``(1, S, S)`` int64 semantic labels, or None.

        Returns:
            ``(ab (1, 2, S, S) float32, weights)``; ``weights`` holds the 13
            ``(N + 1, S_i, S_i)`` fusion weight maps when crops were given, else ``()``.
        """
        l_norm = np.ascontiguousarray(l_norm, dtype=np.float32)
        semantic = labels is not None and bool(self.manifest["semantic"])
        extra = {"labels": np.ascontiguousarray(labels, dtype=np.int64)} if semantic else {}
        suffix = "_semantic" if semantic else ""
        if crops is None or len(crops) == 0 or not self.with_instances:
            (ab,) = self.sessions["full" + suffix].run(["ab"], {"l": l_norm, **extra})
            return ab, ()
        if placements is None or placements.shape[:2] != (4, len(crops)):
            got = None if placements is None else placements.shape
            raise InputError(
                f"placements: expected shape (4, {len(crops)}, 6) for {len(crops)} crops "
                f"(instacolor.models.network.placement_cells), received {got}"
            )
        instance = self.sessions["instance"]
        features = instance.run(None, {"crops": np.ascontiguousarray(crops, dtype=np.float32)})
        names = [o.name for o in instance.get_outputs()]
        feeds = {
            "l": l_norm,
            "placements": np.ascontiguousarray(placements, dtype=np.int64),
            **dict(zip(names, features)),
            **extra,
        }
        ab, *weights = self.sessions["fusion" + suffix].run(None, feeds)
        return ab, tuple(weights)


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
