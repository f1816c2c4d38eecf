"""Performer's positive random features for the exponential kernel (performer-to-linear-attention, 8338).

Choromanski et al., "Rethinking Attention with Performers" (ICLR 2021), Lemma 1: for ``omega ~ N(0, I_d)``,
``E[exp(omega.x - |x|^2/2) exp(omega.y - |y|^2/2)] = exp(x.y)``; eq. (4) of kexue.fm/archives/8338.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .softmax import _check_float_array

Array = np.ndarray | torch.Tensor

__all__ = ["random_features", "performer_features"]


def _check_size(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if x <= 0:
        raise ValueError(f"{name} must be a positive integer, got {x}")
    return int(x)


def random_features(
    m: int,
    d: int,
    *,
    orthogonal: bool = False,
    generator: torch.Generator | int | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``(m, d)`` projection ``omega`` whose rows are ``N(0, I_d)`` (Performer, Choromanski et al. 2021).

    ``orthogonal=True``: rows come in blocks of ``d`` mutually orthogonal directions (QR of a Gaussian matrix,
    signs fixed so the directions are Haar-distributed), each row's norm resampled from ``chi_d`` so that every
    row is still marginally ``N(0, I_d)`` (the ORF variant). ``generator``: a ``torch.Generator`` or an int seed
    (``None``: torch's global generator). ``ValueError`` if ``m <= 0`` or ``d <= 0``.
    """
    m, d = _check_size(m, "m"), _check_size(d, "d")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(int(generator))
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")
    if not orthogonal:
        return torch.randn(m, d, generator=generator, dtype=torch.float64).to(dtype)
    blocks = []
    for _ in range(-(-m // d)):
        g = torch.randn(d, d, generator=generator, dtype=torch.float64)
        qm, r = torch.linalg.qr(g)
        qm = qm * torch.sign(torch.diagonal(r))[None, :]  # Haar measure (Mezzadri 2007)
        blocks.append(qm.T)  # rows orthonormal
    w = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1)  # chi_d
    return (w * norms[:, None]).to(dtype)


def performer_features(x: Array, omega: Array, *, drop_norm: bool = False) -> Array:
    """Positive random features ``exp(x omega^T - |x|^2/2) / sqrt(m)`` (eq. (4) of the article; Performer's FAVOR+).

    ``x (..., d)``, ``omega (m, d)`` (from :func:`random_features`); returns ``(..., m)``, so that
    ``performer_features(q, w) . performer_features(k, w)`` is an unbiased estimate of ``exp(q.k)``.
    ``drop_norm=True`` omits the ``-|x|^2/2`` term (the article's step: for queries it cancels in the row
    normalisation; for keys it does not). numpy or torch (``omega`` is converted to ``x``'s type and dtype).
    """
    x = _check_float_array(x, "x")
    if isinstance(x, torch.Tensor):
        w = omega if isinstance(omega, torch.Tensor) else torch.from_numpy(np.asarray(omega))
        w = _check_float_array(w, "omega").to(device=x.device, dtype=x.dtype)
    else:
        w = omega.detach().cpu().numpy() if isinstance(omega, torch.Tensor) else omega
        w = _check_float_array(w, "omega").astype(x.dtype, copy=False)
    if w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(f"omega must be (m, d) with d = x.shape[-1] = {x.shape[-1]}, got {tuple(w.shape)}")
    proj = x @ (w.T)
    if not drop_norm:
        proj = proj - 0.5 * (x * x).sum(-1)[..., None]
    out = (torch.exp(proj) if isinstance(x, torch.Tensor) else np.exp(proj)) / math.sqrt(w.shape[0])
    return out
