"""Rank, stable rank and row entropy of attention matrices (performer-to-linear-attention, 8338).

The article (kexue.fm/archives/8338, section "low rank") compares the rank of softmax attention, which the
elementwise exponential can raise to ``n``, with that of linear attention, capped at the feature dimension.
"""

from __future__ import annotations

import numpy as np
import torch

from .softmax import _check_float_array

Array = np.ndarray | torch.Tensor

__all__ = ["singular_values", "numerical_rank", "stable_rank", "row_entropy"]


def _matrix(a: object, name: str = "A") -> np.ndarray:
    a = _check_float_array(a, name)
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {a.shape}")
    return a.astype(np.float64)


def singular_values(A: Array) -> np.ndarray:
    """Singular values of the 2-D matrix ``A`` in float64, largest first."""
    return np.linalg.svd(_matrix(A), compute_uv=False)


def numerical_rank(A: Array, rtol: float = 1e-6) -> int:
    """Number of singular values ``> rtol * sigma_1`` (SVD in float64). ``ValueError`` if ``rtol`` not in (0, 1)."""
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating)) or not (0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    s = singular_values(A)
    if s[0] == 0:
        return 0
    return int((s > rtol * s[0]).sum())


def stable_rank(A: Array) -> float:
    """Stable rank ``||A||_F^2 / ||A||_2^2 = sum sigma_i^2 / sigma_1^2`` (between 1 and the rank). ``ValueError`` for A = 0."""
    s = singular_values(A)
    if s[0] == 0:
        raise ValueError("A is the zero matrix; its stable rank is undefined")
    return float((s**2).sum() / s[0] ** 2)


def row_entropy(A: Array, normalized: bool = True) -> Array:
    """Shannon entropy ``-sum_j a_ij log a_ij`` (nats, ``0 log 0 = 0``) of each row of an attention matrix.

    ``A (..., n, n_k)`` has non-negative rows summing to 1 (else ``ValueError``). ``normalized=True`` divides by
    ``log n_k``, so 1 means a uniform row (average pooling) and 0 a one-hot row. numpy or torch, same type out.
    """
    A = _check_float_array(A, "A")
    if A.ndim < 1 or A.shape[-1] < (2 if normalized else 1):
        raise ValueError(f"A must have at least {2 if normalized else 1} keys (last axis) to take a{' normalised' if normalized else 'n'} entropy, got shape {tuple(A.shape)}")
    is_torch = isinstance(A, torch.Tensor)
    a = A.detach().cpu().numpy().astype(np.float64) if is_torch else A.astype(np.float64)
    if (a < 0).any():
        raise ValueError("A must be non-negative (rows are probability distributions)")
    tol = 1e-4 if A.dtype in (np.float32, np.float16, torch.float32, torch.float16, torch.bfloat16) else 1e-8
    if not np.allclose(a.sum(-1), 1.0, atol=tol):
        raise ValueError("A: every row must sum to 1")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0).sum(-1)
    if normalized:
        h = h / np.log(a.shape[-1])
    return torch.from_numpy(h).to(A.dtype) if is_torch else h.astype(A.dtype)
