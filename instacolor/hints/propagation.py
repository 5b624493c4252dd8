"""Edge-aware propagation of known values over an image, guided by its luminance.

Colorization by optimisation (Levin, Lischinski & Weiss 2004): neighbouring pixels with
similar luminance should have similar values. Each pixel ``r`` and its 8 neighbours
``s`` are joined by the affinity

    w_rs = exp(-(Y_r - Y_s)^2 / clip(c * (v_r + v_s) / 2, v_min, v_max))

(``Y = L / 100``; ``v_r`` the variance of ``Y`` over the 3x3 window around ``r``;
``c = 0.6`` as in Levin et al.'s code; the two pixels' variances are averaged so that
the affinity is symmetric). The clip is ours: the floor ``v_min = 1e-3`` (a standard
deviation of about 3 L units) keeps film grain and JPEG noise from blocking the spread
in flat regions, the cap ``v_max = 1e-2`` (10 L units) makes a strong edge stop it
whatever the local contrast (Levin's local variance alone scales every edge to about
the same weight). Measured with 10 oracle hints on kodak24 at 256 (docs/hints.md):
Levin's own floor 2e-6 without the cap gave 0.27 dB less. Known pixels keep their
values; every other pixel solves

    (1 + decay) * sum_s w_rs * x_r - sum_s w_rs * x_s = 0,

i.e. it is the affinity-weighted mean of its neighbours (Levin's normalised rows),
shrunk by ``1 / (1 + decay)``. With ``decay = 0`` this is Levin's system: one known
value then colours everything it is connected to. A small ``decay`` makes a value fade
with distance (a length of about ``sqrt(3 / (8 decay))`` pixels in a flat region) and
stop at a strong luminance edge, where the affinities are tiny.

The matrix is symmetric positive definite, so one factorisation (``"direct"``, SuperLU)
or a Jacobi-preconditioned conjugate-gradient solve (``"cg"``) serves every channel.
Known pixels are eliminated from the unknowns, so they come out exactly as given
whatever the solver's tolerance. The direct solve orders the unknowns by a nested
dissection of the pixel grid (:func:`dissection_order`: halves split by a row or column
of pixels, the separator last) and factorises without pivoting (the matrix is positive
definite): on the 128x128 grids of the reference matches the whole solve took about
half the time it took with SuperLU's default column ordering (0.05 against 0.10 s CPU),
for the same solution (within 1e-12).

Example:
    >>> import numpy as np
    >>> light = np.full((8, 8), 50.0, np.float32)
    >>> known = np.zeros((8, 8), bool); known[0, 0] = True
    >>> values = np.zeros((1, 8, 8), np.float32); values[0, 0, 0] = 10.0
    >>> out = propagate(light, known, values)
    >>> float(out[0, 0, 0]), bool(np.allclose(out, 10.0))
    (10.0, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from instacolor.errors import InputError

if TYPE_CHECKING:  # scipy is imported where it is used: it is slow to import
    import scipy.sparse as sp

__all__ = [
    "METHODS",
    "affinity",
    "decay_for_length",
    "dissection_order",
    "fit_chroma",
    "local_variance",
    "propagate",
    "propagate_pooled",
    "system",
]

#: Solvers of :func:`propagate`.
METHODS = ("direct", "cg")
#: Levin et al.'s scale of the local variance, and our floor and cap of it (Y in [0, 1]).
VARIANCE_SCALE = 0.6
VARIANCE_FLOOR = 1e-3
VARIANCE_CAP = 1e-2
#: Keeps the matrix non-singular where a region holds no known pixel and decay is 0.
_EPSILON = 1e-9
#: The 4 of 8 neighbour offsets ``(dy, dx)`` that list each pair once.
_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: Largest block :func:`dissection_order` leaves in row-major order.
_DISSECTION_LEAF = 4


def local_variance(y: np.ndarray) -> np.ndarray:
    """Population variance of ``y`` ``(h, w)`` over each pixel's 3x3 window in the image."""
    padded = np.pad(y.astype(np.float64), 1)
    ones = np.pad(np.ones_like(y, dtype=np.float64), 1)
    h, w = y.shape
    total = sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    square = sum(padded[dy : dy + h, dx : dx + w] ** 2 for dy in range(3) for dx in range(3))
    count = sum(ones[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    mean = total / count
    return np.maximum(square / count - mean * mean, 0.0)


def affinity(light: np.ndarray) -> sp.csr_matrix:
    """The symmetric 8-neighbour affinity matrix ``W`` ``(h*w, h*w)`` of an L image.

    Args:
        light: ``(h, w)`` L in ``[0, 100]``.

    Returns:
        float64 CSR matrix, ``W[r, s] = w_rs`` for 8-neighbours (row-major pixel
        index), zero diagonal.
    """
    y = light.astype(np.float64) / 100.0
    var = local_variance(y)
    h, w = y.shape
    index = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for dy, dx in _OFFSETS:
        ys = slice(0, h - dy)
        xs = slice(max(0, -dx), w - max(0, dx))
        yt = slice(dy, h)
        xt = slice(max(0, dx), w - max(0, -dx))
        diff = y[ys, xs] - y[yt, xt]
        sigma = np.clip(
            VARIANCE_SCALE * (var[ys, xs] + var[yt, xt]) / 2, VARIANCE_FLOOR, VARIANCE_CAP
        )
        rows.append(index[ys, xs].ravel())
        cols.append(index[yt, xt].ravel())
        vals.append(np.exp(-(diff * diff) / sigma).ravel())
    import scipy.sparse as sp

    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    upper = sp.coo_matrix((v, (r, c)), shape=(h * w, h * w))
    return (upper + upper.T).tocsr()


def system(light: np.ndarray, decay: float) -> sp.csr_matrix:
    """The full matrix ``(1 + decay) D - W + eps I`` (``D`` the row sums of ``W``)."""
    weights = affinity(light)
    degree = np.asarray(weights.sum(axis=1)).ravel()
    import scipy.sparse as sp

    return (sp.diags((1.0 + decay) * degree + _EPSILON) - weights).tocsr()


def dissection_order(shape: tuple[int, int], pixels: np.ndarray) -> np.ndarray:
    """A nested-dissection elimination order of some pixels of an 8-connected grid.

    The grid is halved across its longer side by one row (or column) of pixels, which
    no 8-neighbour edge crosses; the two halves are ordered first (recursively), the
    separating line last. Blocks of at most :data:`_DISSECTION_LEAF` pixels (or at most
    2 wide) keep row-major order. Eliminating in this order keeps the fill of a sparse
    factorisation near the least possible for a grid; computed for the given pixels
    only, level by level (no recursion), so a few pixels of a large image cost little.

    Args:
        shape: ``(h, w)`` of the grid.
        pixels: ``(n,)`` distinct row-major indices of the pixels to order (increasing).

    Returns:
        ``(n,)`` positions into ``pixels``, in elimination order.
    """
    h, w = shape
    ys, xs = np.divmod(np.asarray(pixels, np.int64), w)
    lo_y, hi_y = np.zeros_like(ys), np.full_like(ys, h)
    lo_x, hi_x = np.zeros_like(xs), np.full_like(xs, w)
    keys = []  # one digit per level: 0 first half (or done), 1 second half, 2 separator
    active = np.ones(ys.shape, bool)
    while active.any():
        bh, bw = hi_y - lo_y, hi_x - lo_x
        active &= (bh * bw > _DISSECTION_LEAF) & (np.minimum(bh, bw) > 2)
        rows = active & (bh >= bw)
        cols = active & ~rows
        digit = np.zeros(ys.shape, np.int8)
        for split, pos, lo, hi, size in ((rows, ys, lo_y, hi_y, bh), (cols, xs, lo_x, hi_x, bw)):
            mid = lo + size // 2
            before, after = split & (pos < mid), split & (pos > mid)
            digit[split & (pos == mid)] = 2
            digit[after] = 1
            hi[before], lo[after] = mid[before], mid[after] + 1
        active &= digit != 2
        keys.append(digit)
    return np.lexsort((np.arange(ys.size), *keys[::-1]))


def decay_for_length(length: float | None) -> float:
    """The ``decay`` whose fall-off length in a flat region is ``length`` pixels.

    ``None`` or infinity: 0 (Levin's system, no fall-off).
    """
    if length is None or math.isinf(length):
        return 0.0
    if not length > 0:
        raise InputError(f"length: expected a number of pixels > 0, received {length!r}")
    return 3.0 / (8.0 * length * length)


def propagate(
    light: np.ndarray,
    known: np.ndarray,
    values: np.ndarray,
    *,
    decay: float = 0.0,
    method: str = "direct",
    tol: float = 1e-6,
    maxiter: int = 2000,
) -> np.ndarray:
    """Spread ``values`` from the ``known`` pixels over the image, edge-aware.

    Args:
        light: ``(h, w)`` float L in ``[0, 100]``, the guide.
        known: ``(h, w)`` bool, the pixels whose values are given.
        values: ``(C, h, w)`` float, the given values (read where ``known``).
        decay: fall-off towards 0 away from the known pixels (``>= 0``; see
            :func:`decay_for_length`).
        method: ``"direct"`` (sparse LU, exact) or ``"cg"`` (Jacobi-preconditioned
            conjugate gradients to relative residual ``tol``, at most ``maxiter`` steps).
        tol, maxiter: the conjugate-gradient stopping rule.

    Returns:
        ``(C, h, w)`` float32: ``values`` at the known pixels (exactly), the solution
        elsewhere; zeros when no pixel is known.

    Raises:
        InputError: mismatched shapes, non-finite input, a negative ``decay`` or an
            unknown ``method``.
    """
    light, known, values = np.asarray(light), np.asarray(known), np.asarray(values)
    if light.ndim != 2 or known.shape != light.shape or values.shape[1:] != light.shape:
        raise InputError(
            f"propagate: expected light (h, w), known (h, w) and values (C, h, w) of one "
            f"size, received {light.shape}, {known.shape} and {values.shape}"
        )
    if known.dtype != np.bool_ or values.ndim != 3:
        raise InputError(
            f"propagate: expected a bool known mask and 3-d values, received {known.dtype} "
            f"and {values.ndim}-d values"
        )
    if not (np.isfinite(light).all() and np.isfinite(values[:, known]).all()):
        raise InputError("propagate: expected finite light and values, received NaN or infinity")
    if not (math.isfinite(decay) and decay >= 0):
        raise InputError(f"decay: expected a finite number >= 0, received {decay!r}")
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, received {method!r}")
    out = np.zeros(values.shape, np.float32)
    flat_known = known.ravel()
    if not flat_known.any():
        return out
    given = values.reshape(values.shape[0], -1)[:, flat_known].astype(np.float64)
    out.reshape(values.shape[0], -1)[:, flat_known] = given
    if flat_known.all():
        return out
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg, splu

    matrix = system(light, decay)
    free = ~flat_known
    if method == "direct":  # unknowns in nested-dissection order, no pivoting (SPD)
        unknown = np.flatnonzero(free)
        unknown = unknown[dissection_order(light.shape, unknown)]
        rows = matrix[unknown]
        rhs = -(rows[:, flat_known] @ given.T)  # (n_free, C)
        factor = splu(
            rows[:, unknown].tocsc(),
            permc_spec="NATURAL",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        solved = factor.solve(np.ascontiguousarray(rhs))
        out.reshape(values.shape[0], -1)[:, unknown] = solved.T
        return out
    a_ff = matrix[free][:, free]
    rhs = -(matrix[free][:, flat_known] @ given.T)  # (n_free, C)
    jacobi = sp.diags(1.0 / a_ff.diagonal())
    columns = []
    for c in range(rhs.shape[1]):
        x, _ = cg(a_ff, rhs[:, c], rtol=tol, maxiter=maxiter, M=jacobi)
        columns.append(x)
    out.reshape(values.shape[0], -1)[:, free] = np.stack(columns)
    return out


def propagate_pooled(
    light: np.ndarray,
    known: np.ndarray,
    values: np.ndarray,
    *,
    decay: float = 0.0,
    step: int = 2,
) -> np.ndarray:
    """:func:`propagate` on the grid pooled by ``step``, upsampled back bilinearly.

    For known pixels a few pixels apart (a reference's matches: one every ``S / 32``
    working cells), the solve on the pooled grid (each block's mean L; a block holding
    known pixels is known, at their mean value; ``decay`` scaled so that the fall-off
    length in pixels stays) costs about ``step**3`` less than the full one's sparse
    factorisation. Known pixels keep their values exactly.

    Args:
        light, known, values, decay: as for :func:`propagate`; ``h`` and ``w``
            multiples of ``step``.
        step: the pooling factor (``>= 1``; 1 is :func:`propagate` itself).

    Returns:
        ``(C, h, w)`` float32.

    Raises:
        InputError: as :func:`propagate`, or a ``step`` that does not divide the grid.
    """
    light, known, values = np.asarray(light), np.asarray(known), np.asarray(values)
    shape = getattr(light, "shape", ())
    if not (isinstance(step, int) and step >= 1 and len(shape) == 2):
        raise InputError(f"step: expected an int >= 1 and light (h, w), received {step!r}, {shape}")
    if shape[0] % step or shape[1] % step:
        raise InputError(
            f"step: expected a divisor of the grid's sides, received {step} for {shape}"
        )
    if step == 1:
        return propagate(light, known, values, decay=decay)
    if known.shape != shape or values.ndim != 3 or values.shape[1:] != shape:
        raise InputError(
            f"propagate: expected light (h, w), known (h, w) and values (C, h, w) of one "
            f"size, received {shape}, {known.shape} and {values.shape}"
        )
    h, w = shape[0] // step, shape[1] // step
    light_c = light.reshape(h, step, w, step).mean((1, 3), dtype=np.float64)
    blocks = known.reshape(h, step, w, step)
    count = blocks.sum((1, 3))
    total = np.where(known, values, 0.0).reshape(-1, h, step, w, step).sum((2, 4))
    values_c = (total / np.maximum(count, 1)).astype(np.float32)
    field = propagate(light_c, count > 0, values_c, decay=decay * step * step)
    out = _upsample(_upsample(field.astype(np.float64), step, 1), step, 2)
    out[:, known] = values[:, known]
    return out.astype(np.float32)


def _upsample(x: np.ndarray, step: int, axis: int) -> np.ndarray:
    """``x`` linearly upsampled by ``step`` along ``axis`` (pixel centres, the edges held:
    ``align_corners=False``); elementwise, no BLAS threads."""
    n = x.shape[axis]
    src = np.clip((np.arange(n * step) + 0.5) / step - 0.5, 0.0, n - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    weight = (src - low).reshape(shape)
    return np.take(x, low, axis) * (1.0 - weight) + np.take(x, high, axis) * weight


def fit_chroma(
    ab: np.ndarray,
    known: np.ndarray,
    target: np.ndarray,
    ridge: float = 0.01,
    light: np.ndarray | None = None,
) -> np.ndarray:
    """A global colour correction least-squares fitted to the hinted cells, ridge to identity.

    The networks' chroma is too weak (regression to the mean) and its error varies with
    the luminance (a sky's blue, a field's green) by amounts the hints reveal. Without
    ``light``: ``g * ab + (c_a, c_b)``, one gain ``g`` on both channels and an offset per
    channel. With ``light``: per channel ``g_c * ab_c + c_c + d_c * (L / 100 - 1/2)``.
    Each gain is clipped to [0, 4]; every term is shrunk towards ``g = 1``, ``c = d = 0``
    with a weight ``ridge`` relative to the data's (so a single point barely moves them).

    Args:
        ab: ``(2, h, w)`` predicted ab; known: ``(h, w)`` bool; target: ``(2, h, w)``.
        ridge: relative weight of the prior.
        light: ``(h, w)`` L in ``[0, 100]``, or None for the model without luminance.

    Returns:
        ``(2, h, w)`` float32 corrected ab (``ab`` itself when nothing is known).
    """
    n = int(known.sum())
    if not n:
        return ab
    if light is not None:
        return _fit_with_light(ab, known, target, ridge, np.asarray(light, np.float64))
    p, t = ab[:, known].astype(np.float64), target[:, known].astype(np.float64)
    design = np.zeros((2 * n, 3))
    design[:n, 0], design[n:, 0], design[:n, 1], design[n:, 2] = p[0], p[1], 1.0, 1.0
    prior = ridge * n * np.diag([max(float((p**2).mean()), 1.0), 1.0, 1.0])
    rhs = design.T @ t.ravel() + prior @ np.array([1.0, 0.0, 0.0])
    g, ca, cb = np.linalg.solve(design.T @ design + prior, rhs)
    g = min(max(g, 0.0), 4.0)
    return (g * ab + np.array([ca, cb], np.float64)[:, None, None]).astype(np.float32)


def _fit_with_light(ab, known, target, ridge: float, light: np.ndarray) -> np.ndarray:
    """Per channel ``g ab + c + d (L/100 - 1/2)``, ridge towards ``(1, 0, 0)``."""
    n = int(known.sum())
    centred = light / 100.0 - 0.5
    l_known = centred[known]
    out = np.empty(ab.shape, np.float64)
    for c in range(2):
        p, t = ab[c][known].astype(np.float64), target[c][known].astype(np.float64)
        design = np.stack([p, np.ones(n), l_known], 1)
        scale = [max(float((p**2).mean()), 1.0), 1.0, max(float((l_known**2).mean()), 1e-3)]
        prior = ridge * n * np.diag(scale)
        g, offset, slope = np.linalg.solve(
            design.T @ design + prior, design.T @ t + prior @ np.array([1.0, 0.0, 0.0])
        )
        out[c] = min(max(g, 0.0), 4.0) * ab[c] + offset + slope * centred
    return out.astype(np.float32)
