"""Attention helpers that know nothing about positions (``positional`` may use them, not the reverse).

Serves the RoPE notebooks: linear attention (Katharopoulos et al. 2020) with an optional separate pair of
numerator features, so that RoPE can rotate the numerator only (kexue.fm/archives/8265); causal, sliding-window
and Λ-shaped masks and plain softmax attention (9948).
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = ["linear_attention", "causal_mask", "softmax_attention"]


def linear_attention(fq: Array, fk: Array, v: Array, causal: bool = True, num_q: Array | None = None, num_k: Array | None = None) -> Array:
    """``out_i = sum_{j<=i} (nq_i . nk_j) v_j / sum_{j<=i} (fq_i . fk_j)`` by prefix sums, ``O(n d d_v)``.

    ``fq, fk``: non-negative feature maps ``(..., n, d)`` (the denominator); ``num_q, num_k`` (default
    ``fq, fk``): the numerator features, which may be rotated (RoPE) and hence signed; ``v``:
    ``(..., n, d_v)``. ``causal=False`` sums over all ``j``. numpy or torch (same type out).
    """
    numpy = isinstance(fq, np.ndarray)
    tensors = [torch.from_numpy(np.asarray(t, dtype=np.float64)) if numpy else t for t in (fq, fk, v)]
    fq_t, fk_t, v_t = tensors
    nq_t = fq_t if num_q is None else (torch.from_numpy(np.asarray(num_q, dtype=np.float64)) if numpy else num_q)
    nk_t = fk_t if num_k is None else (torch.from_numpy(np.asarray(num_k, dtype=np.float64)) if numpy else num_k)
    if fq_t.shape != fk_t.shape or nq_t.shape != nk_t.shape or fq_t.shape[:-1] != v_t.shape[:-1] or nq_t.shape[:-1] != fq_t.shape[:-1]:
        raise ValueError(f"fq, fk (and num_q, num_k) must be (..., n, d) and v (..., n, d_v) with the same n, got "
                         f"{tuple(fq_t.shape)}, {tuple(fk_t.shape)}, {tuple(nq_t.shape)}, {tuple(nk_t.shape)}, {tuple(v_t.shape)}")
    if bool((fq_t < 0).any()) or bool((fk_t < 0).any()):
        raise ValueError("fq and fk must be non-negative feature maps (they form the normaliser)")
    kv = nk_t[..., :, :, None] * v_t[..., :, None, :]  # (..., n, d, d_v)
    if causal:
        kv, ksum = kv.cumsum(-3), fk_t.cumsum(-2)
    else:
        kv, ksum = kv.sum(-3, keepdim=True), fk_t.sum(-2, keepdim=True)
    num = (nq_t[..., :, :, None] * kv).sum(-2)
    den = (fq_t * ksum).sum(-1, keepdim=True)
    out = num / den
    return out.numpy() if numpy else out


def causal_mask(n_q: int, n_k: int | None = None, window: int | None = None, n_sink: int = 0) -> np.ndarray:
    """Boolean ``(n_q, n_k)`` mask: query ``i`` (the last ``n_q`` of ``n_k`` positions) may attend to key ``j``.

    Causal: ``j <= i``. With ``window``: only the last ``window`` keys (``j > i - window``), plus the first
    ``n_sink`` keys (the Λ-shaped mask: an "attention sink").
    """
    n_k = n_q if n_k is None else n_k
    for name, v in (("n_q", n_q), ("n_k", n_k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_k < n_q:
        raise ValueError(f"n_k must be >= n_q, got n_q = {n_q}, n_k = {n_k}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if n_sink < 0:
        raise ValueError(f"n_sink must be >= 0, got {n_sink}")
    i = np.arange(n_k - n_q, n_k)[:, None]
    j = np.arange(n_k)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= (j > i - window) | (j < n_sink)
    return allowed


def softmax_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """``softmax(scale q k^T + log mask) v`` with ``scale = 1/sqrt(d)`` by default (numpy, stable)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q (..., n_q, d), k (..., n_k, d) and v (..., n_k, d_v) do not match: {q.shape}, {k.shape}, {v.shape}")
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = scale * q @ np.swapaxes(k, -1, -2)
    if mask is not None:
        if not np.asarray(mask).any(-1).all():
            raise ValueError("every query must be allowed at least one key")
        logits = np.where(mask, logits, -np.inf)
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    return (w / w.sum(-1, keepdims=True)) @ v
