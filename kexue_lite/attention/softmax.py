"""Plain softmax attention, stable (the row maximum is subtracted before exponentiating).

Serves length-extrapolation-review (9948), performer-to-linear-attention (8338) and every notebook of the
attention part. Works on numpy arrays and torch tensors alike (the output has the type, dtype and device of
``q``); masks are boolean, ``True`` meaning "query i may attend key j", indexed ``[..., query, key]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = ["softmax_attention"]


def _check_float_array(x: object, name: str, *, allow_empty: bool = False) -> Array:
    """Return ``x`` as a float numpy array or float torch tensor; raise naming ``name`` otherwise.

    Lists become numpy arrays. Integer or boolean dtypes raise ``TypeError``; empty input and non-finite
    entries (NaN, +-inf) raise ``ValueError``.
    """
    if isinstance(x, torch.Tensor):
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
        if x.numel() == 0 and not allow_empty:
            raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x.detach()).all()):
            raise ValueError(f"{name} contains NaN or infinite entries")
        return x
    if isinstance(x, (list, tuple, np.ndarray)) or np.isscalar(x):
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must have a floating dtype, got {a.dtype}")
        if a.size == 0 and not allow_empty:
            raise ValueError(f"{name} must not be empty, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite entries")
        return a
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _as_bool_mask(mask: object, like: Array) -> Array:
    """The mask as a boolean array of the same library (and device) as ``like``."""
    if isinstance(like, torch.Tensor):
        m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
        if m.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {m.dtype}")
        return m.to(like.device)
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True = may attend), got {m.dtype}")
    return m


def softmax_attention(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """``O = softmax(scale * q k^T, masked) v``: softmax attention, the a_ij of eq. (8) of kexue.fm/archives/8338 (performer-to-linear-attention).

    Shapes: ``q (..., n, d_k)``, ``k (..., n_k, d_k)``, ``v (..., n_k, d_v)``; leading dimensions broadcast.
    ``scale=None`` means ``1/sqrt(d_k)``; ``scale=1.0`` is the article's unscaled formula. ``mask`` is boolean
    (``True`` = may attend), broadcastable to ``(..., n, n_k)``; it may be passed as the 4th positional argument.
    ``causal=True`` adds the causal mask, the queries being the last ``n`` of the ``n_k`` positions.
    The row maximum is subtracted before exponentiating, so large logits do not overflow; masked weights are
    exactly 0. A query with no allowed key raises ``ValueError``. ``return_weights=True`` also returns the
    ``(..., n, n_k)`` weight matrix. numpy in, numpy out; torch in, torch out (autograd works).
    """
    q = _check_float_array(q, "q")
    is_torch = isinstance(q, torch.Tensor)
    k = _check_float_array(k, "k")
    v = _check_float_array(v, "v")
    if any(isinstance(t, torch.Tensor) != is_torch for t in (k, v)):
        raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v must be at least 2-D (..., n, d), got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q (..., n, d_k) and k (..., n_k, d_k) must share d_k, got {tuple(q.shape)}, {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k (..., n_k, d_k) and v (..., n_k, d_v) must share n_k, got {tuple(k.shape)}, {tuple(v.shape)}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    elif isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite real number or None, got {scale!r}")
    n, n_k = q.shape[-2], k.shape[-2]
    if is_torch:
        logits = scale * (q @ k.transpose(-1, -2))
    else:
        logits = scale * (q @ np.swapaxes(k, -1, -2))
    allowed = None
    if mask is not None:
        allowed = _as_bool_mask(mask, q)
        try:
            np.broadcast_shapes(tuple(allowed.shape), tuple(logits.shape))
        except ValueError:
            raise ValueError(f"mask of shape {tuple(allowed.shape)} does not broadcast to the logits {tuple(logits.shape)}") from None
    if causal:
        if n > n_k:
            raise ValueError(f"causal=True needs n <= n_k (queries are the last n of the n_k positions), got n = {n}, n_k = {n_k}")
        tri = np.arange(n_k)[None, :] <= np.arange(n_k - n, n_k)[:, None]
        tri = torch.from_numpy(tri).to(q.device) if is_torch else tri
        allowed = tri if allowed is None else allowed & tri
    if allowed is not None:
        if is_torch:
            allowed = allowed.expand(logits.shape)
            if not bool(allowed.any(-1).all()):
                raise ValueError("mask: every query must be allowed at least one key (a row is fully masked)")
            logits = logits.masked_fill(~allowed, float("-inf"))
        else:
            allowed = np.broadcast_to(allowed, logits.shape)
            if not allowed.any(-1).all():
                raise ValueError("mask: every query must be allowed at least one key (a row is fully masked)")
            logits = np.where(allowed, logits, -np.inf)
    if is_torch:
        logits = logits - logits.amax(-1, keepdim=True).detach()
        w = torch.exp(logits)
        w = w / w.sum(-1, keepdim=True)
    else:
        logits = logits - logits.max(-1, keepdims=True)
        w = np.exp(logits)
        w = w / w.sum(-1, keepdims=True)
    out = w @ v
    return (out, w) if return_weights else out
