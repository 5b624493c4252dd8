"""Dot products of upsampled feature maps without upsampling them.

Reference matching (:mod:`instacolor.hints.reference`) compares every cell of a target's
grid with every cell of the references' grids; the encoder's coarse feature maps
(strides 16 and 32) are brought to that grid by bilinear upsampling. Upsampling is
linear, ``up(t) = A t``, so the products of all pairs of upsampled cells are
``A (t r^T) A^T``: the products of the coarse cells (a few hundred of them), then the
upsampling applied to the rows and columns of that small matrix, one axis at a time
(bilinear upsampling is separable, ``A = a ⊗ a``). The same numbers as products of the
upsampled maps within float rounding, for a fraction of the work where the maps have
many channels (320 channels on an 8x8 map: 1/6 of the time at a 32x32 grid).

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> t, r = torch.randn(1, 5, 4, 4), torch.randn(2, 5, 4, 4)
    >>> up = lambda f: F.interpolate(f, (8, 8), mode="bilinear").flatten(2).transpose(1, 2)
    >>> want = up(t)[0] @ up(r).reshape(-1, 5).T
    >>> a = interpolation_matrix(4, 8)
    >>> got = upsampled_products(up_rows(t)[0], up_rows(r), a)
    >>> bool(torch.allclose(got, want, atol=1e-5))
    True
    >>> norms = upsampled_norms(up_rows(t)[0], a)
    >>> bool(torch.allclose(norms, up(t)[0].norm(dim=1), atol=1e-5))
    True
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

__all__ = ["interpolation_matrix", "up_rows", "upsampled_norms", "upsampled_products"]


@cache
def interpolation_matrix(small: int, big: int) -> torch.Tensor:
    """``(big, small)`` weights of 1-D linear upsampling (``align_corners=False``), the
    factor of :func:`torch.nn.functional.interpolate`'s bilinear mode along one axis."""
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor, kept for later calls
        eye = torch.eye(small)[None]
        weights = F.interpolate(eye, size=big, mode="linear", align_corners=False)
    return weights[0].T.contiguous()


def up_rows(features: torch.Tensor) -> torch.Tensor:
    """``(B, g*g, C)`` cells (row-major) of feature maps ``(B, C, g, g)``."""
    return features.flatten(2).transpose(1, 2).contiguous()


def upsampled_products(
    t: torch.Tensor, r: torch.Tensor, a: torch.Tensor, t_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Dot products of the bilinear upsamplings of ``t`` and of each map of ``r``.

    Args:
        t: ``(g*g, C)`` the cells of one ``g x g`` map, row-major.
        r: ``(N, g*g, C)`` the cells of ``N`` maps.
        a: ``(G, g)`` :func:`interpolation_matrix` ``(g, G)``.
        t_scale: ``(G*G,)`` factor of each upsampled cell of ``t`` (None: 1).

    Returns:
        ``(G*G, N*G*G)``: ``[i, n*G*G + j]`` the product of upsampled cell ``i`` of ``t``
        (times ``t_scale[i]``) and upsampled cell ``j`` of map ``n`` of ``r``.
    """
    big, g = a.shape
    x = t @ r.reshape(-1, r.shape[-1]).T  # (g*g, N*g*g): the coarse cells' products
    x = (a @ x.reshape(g, -1)).reshape(big, g, -1)  # t's rows upsampled
    x = torch.matmul(a, x)  # (G, G, N*g*g): and its columns
    if t_scale is not None:
        x = x * t_scale.reshape(big, big, 1)
    x = x.reshape(-1, g, g)
    x = x.transpose(1, 2) @ a.T  # (G*G*N, g, G): r's rows upsampled
    x = x.transpose(1, 2) @ a.T  # (G*G*N, G, G): and its columns
    return x.reshape(big * big, -1)


def upsampled_norms(t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``(G*G,)`` norms of the cells of the bilinear upsampling of ``t`` ``(g*g, C)``
    (row-major cells of a ``g x g`` map) by ``a`` ``(G, g)``, from the products of its
    cells (in float64: a quadratic form of cells that may nearly cancel)."""
    g = a.shape[1]
    a = a.double()
    gram = (t.double() @ t.double().T).reshape(g, g, g, g)  # [y, x, y', x']
    rows = torch.einsum("Yi,Yk,ijkl->Yjl", a, a, gram)  # (G, g, g): rows upsampled
    squares = torch.einsum("Xj,Xl,Yjl->YX", a, a, rows)  # (G, G)
    return squares.clamp_min(0).sqrt().reshape(-1).to(t.dtype)
