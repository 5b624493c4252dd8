"""The reusable :class:`Colorizer`: networks loaded once, many images colorized.

Example:
    >>> import numpy as np
    >>> from instacolor import Colorizer
    >>> gray = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) % 256).astype(np.uint8)
    >>> colorizer = Colorizer(working_size=64)  # doctest: +SKIP
    >>> colorizer.colorize(gray, instances=[[4, 4, 40, 30]]).shape  # doctest: +SKIP
    (48, 64, 3)
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from instacolor.arguments import as_instances, as_semantic
from instacolor.decode import confidence_at, decode, resolve_decoding
from instacolor.detection.base import Detector, DetectorConfig
from instacolor.detection.factory import build_detector
from instacolor.errors import InputError
from instacolor.hints import HintSettings, as_hints, match_beside
from instacolor.io.image import DEFAULT_COLOR_TOLERANCE, read_luminance, to_output
from instacolor.models.generator import FUSION_POINTS
from instacolor.models.inputs import prepare_inputs
from instacolor.runtime.base import BACKENDS, make_runtime
from instacolor.structures import ColorizeResult, Decoding, SemanticMap
from instacolor.weights import load_weights

__all__ = ["MAX_SATURATION", "Colorizer"]

MAX_SATURATION = 4.0


def _check_saturation(saturation: Any) -> float:
    if (
        isinstance(saturation, bool)
        or not isinstance(saturation, (int, float))
        or not 0.0 <= saturation <= MAX_SATURATION
    ):
        raise InputError(
            f"saturation: expected a number from 0 to {MAX_SATURATION:g}, received "
            f"{saturation!r}; use 1 for the colours as predicted, above 1 for more vivid"
        )
    return float(saturation)


class Colorizer:
    """Loads the networks once and colorizes many images.

    Args:
        weights: registered name, ``.safetensors`` file, InstColorization checkpoint
            folder or siggraph17 ``.pth`` (see :mod:`instacolor.weights`).
        device: torch device for the networks.
        working_size: square size the networks run at (multiple of 8, at least 32);
            None: the size the weights were trained at (``loaded.working_size``: 128 for
            instacolor's own weights, 256 for InstColorization's and siggraph17's).
        color_tolerance: largest channel difference (fraction of full scale) for an RGB
            input to count as gray.
        detector: None (instances only when given), a backend name for
            :func:`~instacolor.detection.factory.make_detector` (``"torchvision"``,
            ``"detectron2"``, ``"torchvision+sam"``...), or a
            :class:`~instacolor.detection.Detector`. It runs when ``colorize`` is called
            without ``instances``.
        detector_config: thresholds, top-k, minimum box size, class filter.
        fallback_to_full_image: when the named detector cannot be built (weights missing
            offline, package not installed), warn with
            :class:`~instacolor.detection.DetectorUnavailableWarning` and colorize with
            the full-image network only instead of raising. Off by default: instacolor
            never drops instances silently.
        saturation: factor on the predicted chroma (ab) before reconstruction. 1.0 (the
            default) is what the networks predict, the PSNR-best choice; larger values
            give more vivid but less often correct colours (docs/model-card.md measures
            the trade-off).
        decode: how the chroma is decoded: a :class:`~instacolor.structures.Decoding`
            or its spec, ``"regression"`` (the regression head, as the reference),
            ``"annealed-mean"`` (the classification head's distribution, Zhang et al.
            2016; needs weights with a trained head), ``"annealed-mean:T"`` or
            ``"annealed-mean:T:MIX"`` (temperature; the annealed mean's weight blended
            with the regression); parts left out and None: the weights' default
            (``loaded.decoding``). See :mod:`instacolor.decode`.
        backend: ``"torch"``, or ``"onnxruntime"`` to run the networks in onnxruntime
            (exported once per weights into the cache, see :mod:`instacolor.runtime.export`; CUDA
            provider on a CUDA ``device``). Same ab within 1e-4.
        hint_channels, hint_propagation: how hints act (:class:`~instacolor.hints.
            HintSettings`); hint_channels None: for weights with mask value 0 (siggraph17).

    Raises:
        InputError: a bad ``working_size``, ``saturation``, ``decode`` or ``backend``;
            ``annealed-mean`` for weights without a trained head.
        WeightsError: the weights cannot be found or loaded.
        MissingDependencyError: ``backend="onnxruntime"`` without onnxruntime or onnx.
        ExportError: the networks could not be exported for onnxruntime.
    """

    def __init__(
        self,
        weights: str | os.PathLike = "default",
        *,
        device: str | torch.device = "cpu",
        working_size: int | None = None,
        color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
        detector: str | Detector | None = None,
        detector_config: DetectorConfig | None = None,
        fallback_to_full_image: bool = False,
        saturation: float = 1.0,
        decode: Decoding | str | None = None,
        backend: str = "torch",
        hint_channels: bool | None = None,
        hint_propagation: str = "working",
    ) -> None:
        saturation = _check_saturation(saturation)
        if backend not in BACKENDS:
            raise InputError(f"backend: expected one of {BACKENDS}, received {backend!r}")
        if working_size is not None and (
            not isinstance(working_size, int) or working_size < 32 or working_size % 8
        ):
            raise InputError(
                f"working_size: expected a multiple of 8 of at least 32 (or None: the "
                f"weights' own), received {working_size!r}"
            )
        self.device = torch.device(device)
        self.color_tolerance = color_tolerance
        self.saturation = saturation
        self.loaded = load_weights(weights, device=self.device)
        self.working_size = working_size or self.loaded.working_size
        self.net = self.loaded.net
        self.backend = backend
        self.decoding = resolve_decoding(self.loaded, decode)
        channels = self.net.mask_value == 0.0 if hint_channels is None else hint_channels
        self.hinting = HintSettings(channels=channels, propagation=hint_propagation)
        self.runtime = make_runtime(self.loaded, backend, self.device)
        self.detector, self.detector_error = build_detector(
            detector, detector_config, self.device, fallback_to_full_image
        )

    def __repr__(self) -> str:
        return (
            f"Colorizer(weights={self.loaded.name!r}, width={self.net.width}, "
            f"device='{self.device}', working_size={self.working_size}, "
            f"saturation={self.saturation}, decode={self.decoding.spec!r}, "
            f"backend={self.backend!r})"
        )

    def colorize(
        self,
        image: Any,
        *,
        instances: Any = None,
        semantic: Any = None,
        saturation: float | None = None,
        decode: Decoding | str | None = None,
        hints: Any = None,
        reference: Any = None,
    ) -> Any:
        """Colorize one grayscale image; the image alone (:meth:`colorize_full` has the
        arguments and returns everything else too).

        Returns:
            The colorized image in the input's kind: numpy of the same dtype with 3
            channels; PIL ``RGB`` for PIL and path inputs.
        """
        return self.colorize_full(
            image, instances=instances, semantic=semantic, saturation=saturation,
            decode=decode, hints=hints, reference=reference,
        ).image  # fmt: skip

    @torch.inference_mode()
    def colorize_full(
        self,
        image: Any,
        *,
        instances: Any = None,
        semantic: Any = None,
        saturation: float | None = None,
        decode: Decoding | str | None = None,
        hints: Any = None,
        reference: Any = None,
    ) -> ColorizeResult:
        """Colorize one grayscale image; everything the colorization produced.

        Args:
            image: numpy array (uint8, uint16 or float in [0, 1]; gray or RGB holding
                gray), PIL image, or path.
            instances: None (the detector's instances when the colorizer has one,
                else the full-image network only), :class:`Instances`, boxes
                ``(N, 4)`` XYXY in input pixels (clipped to the image), bool masks
                ``(N, H, W)``, or COCO annotations of this image.
            semantic: None, :class:`SemanticMap` or an ``(H, W)`` int label map. With
                detected instances and no map given, the detector's semantic map is used,
                or one painted from the detected masks.
            saturation: factor on the predicted chroma for this image (None: the
                colorizer's ``saturation``); applied after the networks, no reload.
            decode: decoding for this image, a :class:`~instacolor.structures.Decoding`
                or its spec (parts left out and None: the colorizer's); no reload.
            hints: None, :class:`Hints` or points ``[(x, y, color[, radius])]`` in input
                pixels, colour ``(r, g, b)`` 0-255, ``"#rrggbb"`` or ``Lab(a, b)``.
            reference: colour photo(s) to take colours from (path, ``(H, W, 3)`` array or
                PIL image, or a list of them; :mod:`instacolor.hints.reference`).

        Returns:
            A :class:`ColorizeResult` whose ``image`` is in the input's kind (as
            :meth:`colorize` returns it).
        """
        t0 = time.perf_counter()
        l_full, kind = read_luminance(image, color_tolerance=self.color_tolerance)
        decoding = resolve_decoding(self.loaded, decode, base=self.decoding)
        result = self._colorize_plane(
            l_full, instances, semantic, saturation, decoding, kind.dtype, t0, hints, reference
        )
        return replace(result, image=to_output(result.image, kind))

    @torch.inference_mode()
    def colorize_light(
        self,
        light: np.ndarray,
        *,
        instances: Any = None,
        semantic: Any = None,
        saturation: float | None = None,
        decode: Decoding | str | None = None,
        hints: Any = None,
        out_dtype: type[np.uint8] | type[np.uint16] | None = np.uint16,
        reference: Any = None,
    ) -> ColorizeResult:
        """Colorize a full-resolution L plane, e.g. ``ScanImage.light`` of an archival scan.

        The networks run at ``working_size`` on a downscaled copy; the predicted chroma is
        upsampled guided by ``light`` and joined to ``light`` itself, so the output keeps
        the original luminance at full precision (see :func:`~instacolor.reconstruct.
        reconstruct`).

        Args:
            light: ``(H, W)`` float32 CIE L in ``[0, 100]``.
            instances: as for :meth:`colorize`, in the pixels of ``light``.
            semantic: as for :meth:`colorize`.
            saturation, decode, hints, reference: as for :meth:`colorize_full`.
            out_dtype: ``numpy.uint8`` or ``numpy.uint16``: the dtype of the sRGB image;
                None: no image (the result's ``image`` is None; its chroma, confidence
                and maps are the same), for a caller that joins chroma and L itself.

        Returns:
            A :class:`ColorizeResult` whose ``image`` is ``(H, W, 3)`` sRGB of ``out_dtype``.

        Raises:
            InputError: ``light`` is not an ``(H, W)`` float32 array of finite L in
                ``[0, 100]``, or a bad ``out_dtype``, ``instances`` or ``semantic``.

        Example:
            >>> import numpy as np
            >>> light = np.full((30, 40), 60.0, np.float32)
            >>> colorizer = Colorizer("instacolor-untrained-w16", working_size=32)  # doctest: +SKIP
            >>> colorizer.colorize_light(light).image.dtype  # doctest: +SKIP
            dtype('uint16')
        """
        t0 = time.perf_counter()
        if not isinstance(light, np.ndarray) or light.ndim != 2 or light.dtype != np.float32:
            got = (getattr(light, "shape", None), getattr(light, "dtype", type(light).__name__))
            raise InputError(f"light: expected an (H, W) float32 array of L, received {got}")
        if min(light.shape) < 1 or not np.isfinite(light).all():
            raise InputError(
                f"light: expected a non-empty array of finite L in [0, 100], received shape "
                f"{light.shape} with NaN/infinite values or no pixels"
            )
        dtype = None if out_dtype is None else np.dtype(out_dtype)
        if dtype is not None and dtype not in (np.uint8, np.uint16):
            raise InputError(
                f"out_dtype: expected numpy.uint8, numpy.uint16 or None, received {dtype}"
            )
        decoding = resolve_decoding(self.loaded, decode, base=self.decoding)
        return self._colorize_plane(
            light, instances, semantic, saturation, decoding, dtype, t0, hints, reference
        )

    def _colorize_plane(
        self,
        l_full: np.ndarray,
        instances: Any,
        semantic: Any,
        saturation: float | None,
        decoding: Decoding,
        out_dtype: np.dtype | None,
        t0: float,
        hints: Any = None,
        reference: Any = None,
    ) -> ColorizeResult:
        """read -> detect -> inputs -> runtime -> reconstruct on a full-resolution L plane.

        The result's ``image`` is the raw ``(H, W, 3)`` RGB of ``out_dtype`` (None for None).
        """
        saturation = self.saturation if saturation is None else _check_saturation(saturation)
        size = (int(l_full.shape[0]), int(l_full.shape[1]))
        inst = as_instances(instances, size)
        sem = as_semantic(semantic)
        t_detect = time.perf_counter()
        backend = None
        if inst is None and self.detector is not None:
            found = self.detector.detect(l_full)
            inst, backend = found.instances, found.backend
            if sem is None and (found.semantic is not None or len(inst)):
                sem = found.semantic or SemanticMap.from_instances(inst)
        t_detect = time.perf_counter() - t_detect
        fuse = inst is not None and len(inst) > 0 and self.runtime.with_instances
        if inst is not None and len(inst) > 0 and not fuse:
            warnings.warn(
                f"weights {self.loaded.name!r} have no instance network: the {len(inst)} "
                "instances are ignored and the full-image network runs alone",
                stacklevel=3,
            )
        hints = as_hints(hints, size, inst)
        inputs = prepare_inputs(
            l_full, inst if fuse else None, sem, self.working_size, mask_value=self.net.mask_value,
            hints=hints if self.hinting.channels else None, hint_instances=inst,
        )  # fmt: skip
        t1 = time.perf_counter()
        if reference is not None:  # read, checked and encoded beside the networks
            out, match = match_beside(inputs.light, reference, lambda: self.runtime.run(inputs))
        else:
            out, match = self.runtime.run(inputs), None
        ab, confidence = decode(out, decoding)
        if saturation != 1.0:
            ab = ab * saturation
        ab = self.hinting.propagate(ab, inputs.light, hints, inst, size, match)
        t2 = time.perf_counter()
        rgb = None
        if out_dtype is not None:
            rgb = self.hinting.reconstruct(ab, inputs.light, l_full, hints, inst, out_dtype)
        t3 = time.perf_counter()
        return ColorizeResult(
            image=rgb,
            ab=ab.numpy(),
            instances=inst if fuse else None,
            semantic=sem,
            weight_maps=dict(zip(FUSION_POINTS, out.weights)),
            timings={
                "detect": t_detect,
                "prepare": t1 - t0 - t_detect,
                "network": t2 - t1,
                "reconstruct": t3 - t2,
                "total": t3 - t0,
            },
            model=self.loaded.name,
            weights_sha256=self.loaded.sha256,
            detector=backend,
            working_size=self.working_size,
            saturation=saturation,
            decoding=decoding,
            confidence=None if confidence is None else confidence_at(confidence, size),
            hints=hints,
            reference_map=None if match is None else confidence_at(match.confidence, size),
        )
