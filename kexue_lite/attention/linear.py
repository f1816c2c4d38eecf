"""Linear attention (Katharopoulos et al. 2020) by prefix sums: the kernel form of attention.

Serves the RoPE notebook (kexue.fm/archives/8265: RoPE rotates the numerator features only) and
performer-to-linear-attention (8338).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .softmax import _check_float_array

Array = np.ndarray | torch.Tensor

__all__ = ["feature_linear_attention", "feature_map", "linear_attention", "FEATURE_MAPS"]


def feature_linear_attention(fq: Array, fk: Array, v: Array, causal: bool = True, num_q: Array | None = None, num_k: Array | None = None) -> Array:
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


FEATURE_MAPS = ("elu1", "exp", "relu", "softmax")


def feature_map(x: Array, kind: str = "elu1") -> Array:
    """Non-negative feature map for linear attention (kexue.fm/archives/8338, eq. (2) e^x, eq. (3) 1 + elu).

    ``"elu1"``: ``1 + elu(x)`` (equals ``1 + x`` for ``x > 0`` and exactly ``e^x`` for ``x <= 0``, Katharopoulos
    et al. 2020); ``"exp"``: ``e^x`` elementwise (the article's choice); ``"relu"``: ``max(x, 0)``;
    ``"softmax"``: softmax over the last dimension (Shen et al., efficient attention). numpy or torch, same type
    and dtype out. ``ValueError`` for an unknown ``kind``.
    """
    if not isinstance(kind, str) or kind not in FEATURE_MAPS:
        raise ValueError(f"kind must be one of {FEATURE_MAPS}, got {kind!r}")
    x = _check_float_array(x, "x")
    if isinstance(x, torch.Tensor):
        if kind == "elu1":
            return torch.nn.functional.elu(x) + 1
        if kind == "exp":
            return torch.exp(x)
        if kind == "relu":
            return torch.relu(x)
        return torch.softmax(x, dim=-1)
    if kind == "elu1":
        return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0))).astype(x.dtype, copy=False)
    if kind == "exp":
        return np.exp(x)
    if kind == "relu":
        return np.maximum(x, 0)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _features(x: Array, phi: str | Callable[[Array], Array], name: str) -> Array:
    if callable(phi) and not isinstance(phi, str):
        f = _check_float_array(phi(x), f"{name}(x)")
    else:
        if not isinstance(phi, str) or phi not in FEATURE_MAPS:
            raise ValueError(f"{name} must be one of {FEATURE_MAPS} or a callable, got {phi!r}")
        f = feature_map(x, phi)
    if bool((f < 0).any()):
        raise ValueError(f"{name} yields negative features; linear attention needs non-negative ones (they form the normaliser)")
    return f


def linear_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    phi: str | Callable[[Array], Array] = "elu1",
    varphi: str | Callable[[Array], Array] | None = None,
    causal: bool = False,
    return_weights: bool = False,
    eps: float = 0.0,
) -> Array | tuple[Array, Array]:
    """Linear attention ``O_i = sum_j (phi(q_i) . varphi(k_j)) v_j / (sum_j phi(q_i) . varphi(k_j) + eps)``.

    Eq. (1) of kexue.fm/archives/8338 (performer-to-linear-attention). ``phi`` (queries) and ``varphi`` (keys,
    default ``phi``) are a kind of :func:`feature_map` or a callable; negative features raise ``ValueError``.
    Cost ``O(n d_f d_v)``: the non-causal case forms ``varphi(K)^T V`` once; the causal case (``j <= i``, needs
    ``n == n_k``) is the RNN form, prefix sums of ``varphi(k_j) v_j^T`` and ``varphi(k_j)``
    (:func:`feature_linear_attention`). ``return_weights=True`` also builds the explicit ``(n, n_k)`` matrix (for
    plots; quadratic). A zero normaliser (possible with ``relu``) raises ``ValueError`` unless ``eps > 0``.
    numpy in, numpy out (dtype kept); torch in, torch out.
    """
    q = _check_float_array(q, "q")
    k = _check_float_array(k, "k")
    v = _check_float_array(v, "v")
    is_torch = isinstance(q, torch.Tensor)
    if any(isinstance(t, torch.Tensor) != is_torch for t in (k, v)):
        raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v must be at least 2-D (..., n, d), got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k (..., n_k, d_k) and v (..., n_k, d_v) must share n_k, got {tuple(k.shape)}, {tuple(v.shape)}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal=True needs as many queries as keys, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    fq = _features(q, phi, "phi")
    fk = _features(k, phi if varphi is None else varphi, "varphi")
    if fq.shape[-1] != fk.shape[-1]:
        raise ValueError(f"phi(q) and varphi(k) must have the same number of features, got {fq.shape[-1]} and {fk.shape[-1]}")
    ein = torch.einsum if is_torch else np.einsum
    if causal:
        if is_torch:
            fq_b, fk_b = torch.broadcast_tensors(fq, fk)
            v_b = v.expand(*fq_b.shape[:-1], v.shape[-1])
            ksum = fk_b.cumsum(-2)
        else:
            fq_b, fk_b = (np.array(a) for a in np.broadcast_arrays(fq, fk))  # writable copies for torch.from_numpy
            v_b = np.array(np.broadcast_to(v, fq_b.shape[:-1] + v.shape[-1:]))
            ksum = np.cumsum(fk_b, -2)
        den = (fq_b * ksum).sum(-1)[..., None]
        if not bool((den + eps > 0).all()):
            raise ValueError("phi, varphi: a normaliser sum_j phi(q_i).varphi(k_j) is 0; pass eps > 0 or use a positive feature map")
        out = feature_linear_attention(fq_b, fk_b, v_b, causal=True)
        if eps:
            out = out * (den / (den + eps))
        out = out.to(q.dtype) if is_torch else np.asarray(out, dtype=np.result_type(q, k, v))
    else:
        kv = ein("...jf,...je->...fe", fk, v)
        den = ein("...if,...f->...i", fq, fk.sum(-2))[..., None]
        if not bool((den + eps > 0).all()):
            raise ValueError("phi, varphi: a normaliser sum_j phi(q_i).varphi(k_j) is 0; pass eps > 0 or use a positive feature map")
        out = ein("...if,...fe->...ie", fq, kv) / (den + eps)
    if not return_weights:
        return out
    a = fq @ (fk.transpose(-1, -2) if is_torch else np.swapaxes(fk, -1, -2))
    if causal:
        n = q.shape[-2]
        tri = np.tril(np.ones((n, n), dtype=bool))
        a = a * (torch.from_numpy(tri).to(a) if is_torch else tri.astype(a.dtype))
    a = a / (a.sum(-1)[..., None] + eps)
    return out, a
