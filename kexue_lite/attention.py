"""Attention helpers that know nothing about positions (``positional`` may use them, not the reverse).

Serves the RoPE notebook (kexue.fm/archives/8265): linear attention (Katharopoulos et al. 2020) with an
optional separate pair of numerator features, so that RoPE can rotate the numerator only.
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = ["linear_attention"]


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
