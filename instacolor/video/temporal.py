"""Colour carried along time: scene cuts and the chroma blend within a shot.

Within a shot the chroma of frame ``t`` is

    ab_t = w * warp(ab_{t-1}) + (1 - w) * (net_t + delta_t),
    w = memory * reliability * (1 - confidence_weight * confidence_t),

where ``warp`` follows the optical flow computed on the gray frames
(:mod:`instacolor.video.flow`), ``reliability`` is 0 where the flow fails its
forward-backward check (occlusions, new content) and falls with the gray-level mismatch,
and ``confidence_t`` is the network's own confidence where the weights have a trained
head (else 0). With ``follow > 0`` the weight is also multiplied by
``follow² / (follow² + |s_t|²)``, where ``s_t = keep · reliability · warp(s_{t-1}) +
(1 - keep) (net_t + delta_t - warp(ab_{t-1}))`` is the innovation (the new chroma's
departure from the carried one) averaged along the motion over a few frames: frame-to-frame
noise averages out of it and keeps the full memory, while a departure that persists (a
genuine colour change, a light coming on) grows it and lowers the memory there, so the
carried colour follows within a few frames instead of lagging. Colour therefore stays
where objects stay, and new content takes the network's colour. ``delta_t`` carries
keyframe hints: on a frame with hints it is the hinted chroma minus the network's own,
and it is warped forward through the rest of the shot (dropped where the flow fails), so
the hinted colours follow what they were put on. At a scene cut (the gray histograms of
consecutive frames differ by more than ``cut_threshold`` in total variation) everything
resets.

Example:
    >>> import numpy as np
    >>> stab = Stabilizer(Stabilization())
    >>> gray = np.full((24, 32), 100, np.uint8)
    >>> ab = np.zeros((24, 32, 2), np.float32)
    >>> step = stab.step(gray, ab)
    >>> step.cut, step.ab.shape
    (True, (24, 32, 2))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from instacolor.errors import InputError
from instacolor.video.flow import FlowSettings, Motion, estimate_motion, warp

__all__ = [
    "INNOVATION_KEEP",
    "Stabilization",
    "Stabilizer",
    "StabilizerState",
    "Step",
    "histogram_distance",
]

_BINS = 32
#: Share of the innovation average ``s_t`` kept from the frame before (about 5 frames).
INNOVATION_KEEP = 0.8


@dataclass(frozen=True)
class Stabilization:
    """How much colour is carried along time, and where shots begin.

    Attributes:
        enabled: False: every frame keeps the network's colour (plain per-frame output;
            shots are still found and reported).
        memory: largest weight of the carried colour, in ``[0, 1)``; higher is steadier
            and slower to follow genuine colour changes.
        confidence_weight: how much the network's confidence (weights with a trained
            head) lowers the carried colour's weight, in ``[0, 1]``.
        cut_threshold: total-variation distance of the gray histograms of two
            consecutive frames above which a new shot starts, in ``(0, 1]``.
        flow_size: longer side of the grid the flow and the carried chroma live on
            (pixels, 64 to 2048); the chroma is joined to the full-resolution
            luminance afterwards.
        flow: DIS preset and forward-backward tolerances.
        carry_rounding: 8-bit output: each frame's rounding error is carried to the next
            along the flow, so a tracked point keeps its rounding instead of flickering by
            it (:mod:`instacolor.video.rounding`); False: every frame rounded on its own.
        follow: Lab units of persistent innovation at which the memory is halved
            (see the module docstring), >= 0; 0: the memory does not depend on it.
    """

    enabled: bool = True
    memory: float = 0.99
    confidence_weight: float = 0.5
    cut_threshold: float = 0.35
    flow_size: int = 512
    flow: FlowSettings = field(default_factory=lambda: FlowSettings(preset="medium"))
    carry_rounding: bool = True
    follow: float = 4.0

    def __post_init__(self) -> None:
        checks = (
            ("memory", self.memory, 0.0, 0.999),
            ("confidence_weight", self.confidence_weight, 0.0, 1.0),
            ("cut_threshold", self.cut_threshold, 1e-6, 1.0),
            ("follow", self.follow, 0.0, 1000.0),
        )
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{name}: expected a number, received {value!r}")
            if not low <= value <= high:
                raise InputError(f"{name}: expected a number in [{low}, {high}], received {value}")
        if (
            isinstance(self.flow_size, bool)
            or not isinstance(self.flow_size, int)
            or not 64 <= self.flow_size <= 2048
        ):
            raise InputError(
                f"flow_size: expected an integer from 64 to 2048, received {self.flow_size!r}"
            )
        for name in ("enabled", "carry_rounding"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise InputError(f"{name}: expected True or False, received {value!r}")

    def record(self) -> dict:
        """The settings as JSON-ready values (manifest, resume check)."""
        return asdict(self)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance in ``[0, 1]`` of the 32-bin histograms of two gray frames."""
    ha = np.bincount((a >> 3).ravel(), minlength=_BINS) / a.size
    hb = np.bincount((b >> 3).ravel(), minlength=_BINS) / b.size
    return 0.5 * float(np.abs(ha - hb).sum())


_OPTIONAL = ("delta", "rounding", "innovation")


@dataclass(frozen=True, eq=False)
class StabilizerState:
    """What one frame leaves for the next (saved at chunk ends for ``--resume``).

    Attributes:
        gray: ``(h, w)`` uint8 gray frame at the flow grid.
        ab: ``(h, w, 2)`` float32 chroma given out for that frame.
        delta: ``(h, w, 2)`` float32 carried keyframe-hint correction, or None.
        rounding: ``(H, W, 2)`` float16 8-bit rounding error of the frame at its full
            resolution (:mod:`instacolor.video.rounding`), or None.
        innovation: ``(h, w, 2)`` float32 innovation average ``s_t`` (``follow > 0``),
            or None.
    """

    gray: np.ndarray
    ab: np.ndarray
    delta: np.ndarray | None = None
    rounding: np.ndarray | None = None
    innovation: np.ndarray | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"gray": self.gray, "ab": self.ab}
        for name in _OPTIONAL:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> StabilizerState:
        optional = {name: arrays.get(name) for name in _OPTIONAL}
        return cls(
            gray=np.asarray(arrays["gray"]),
            ab=np.asarray(arrays["ab"]),
            **{k: None if v is None else np.asarray(v) for k, v in optional.items()},
        )


@dataclass(frozen=True, eq=False)
class Step:
    """One frame through the stabiliser.

    Attributes:
        ab: ``(h, w, 2)`` float32 chroma for the frame.
        cut: the frame starts a new shot.
        reliable: mean flow reliability from the previous frame (0 at a cut).
        motion: the flow from the previous frame, or None (a cut; per-frame output).
    """

    ab: np.ndarray
    cut: bool
    reliable: float
    motion: Motion | None = None


class Stabilizer:
    """Carries chroma from frame to frame within a shot (see the module docstring).

    Args:
        settings: memory, confidence weight, cut threshold, flow settings.
        state: the state left by the frame before (``--resume``), or None to start a shot.
    """

    def __init__(self, settings: Stabilization, state: StabilizerState | None = None) -> None:
        self.settings = settings
        self.state = state

    def is_cut(self, gray: np.ndarray) -> bool:
        """Whether ``gray`` starts a new shot after the current state."""
        if self.state is None or self.state.gray.shape != gray.shape:
            return True
        return histogram_distance(self.state.gray, gray) > self.settings.cut_threshold

    def step(
        self,
        gray: np.ndarray,
        ab_net: np.ndarray,
        confidence: np.ndarray | None = None,
        hinted: np.ndarray | None = None,
    ) -> Step:
        """The chroma of the next frame.

        Args:
            gray: ``(h, w)`` uint8 gray frame at the flow grid.
            ab_net: ``(h, w, 2)`` float32 network chroma without hints.
            confidence: ``(h, w)`` float32 in ``[0, 1]`` or None.
            hinted: ``(h, w, 2)`` float32 network chroma with this frame's keyframe
                hints, or None when the frame has none.

        Returns:
            A :class:`Step`; the stabiliser's state moves to this frame.
        """
        cut = self.is_cut(gray)
        settings = self.settings
        if cut:
            delta = None if hinted is None else hinted - ab_net
            out = ab_net if hinted is None else hinted
            self.state = StabilizerState(gray, out, delta)
            return Step(out, True, 0.0)
        previous = self.state
        if not settings.enabled and previous.delta is None and hinted is None:
            self.state = StabilizerState(gray, ab_net)  # plain per-frame: no flow needed
            return Step(ab_net, False, 1.0)
        motion = estimate_motion(previous.gray, gray, settings.flow)
        delta = previous.delta
        if hinted is not None:
            delta = hinted - ab_net
        elif delta is not None:
            delta = warp(delta, motion) * motion.consistent[..., None]
        target = ab_net if delta is None else ab_net + delta
        innovation = None
        if hinted is not None or not settings.enabled:
            out = target
        else:
            weight = settings.memory * motion.reliability
            if confidence is not None and settings.confidence_weight > 0:
                weight = weight * (1.0 - settings.confidence_weight * confidence)
            carried = warp(previous.ab, motion)
            if settings.follow > 0:
                innovation = self._innovation(target - carried, motion)
                size = np.square(innovation).sum(axis=2)
                weight = weight * (settings.follow**2 / (settings.follow**2 + size))
            weight = weight[..., None]
            out = weight * carried + (1.0 - weight) * target
        out = out.astype(np.float32, copy=False)
        self.state = StabilizerState(gray, out, delta, innovation=innovation)
        return Step(out, False, motion.reliable_fraction, motion)

    def _innovation(self, residual: np.ndarray, motion: Motion) -> np.ndarray:
        """``s_t`` from this frame's ``(h, w, 2)`` residual and the state's ``s_{t-1}``."""
        innovation = (1.0 - INNOVATION_KEEP) * residual
        before = self.state.innovation
        if before is not None and before.shape == residual.shape:
            kept = warp(before, motion) * (INNOVATION_KEEP * motion.reliability)[..., None]
            innovation += kept
        return innovation.astype(np.float32, copy=False)
