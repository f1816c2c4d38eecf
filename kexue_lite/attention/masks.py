"""Boolean attention masks, ``True`` meaning "query i may attend key j", indexed ``[..., query, key]``.

Causal, sliding-window and Λ-shaped masks (length-extrapolation-review, 9948); sequence-to-sequence masks
(UniLM, independent, UniAE) from segment ids (univae-attention-masks, 8475).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["causal_mask", "seq2seq_mask", "mask_allowed_counts", "MASK_KINDS"]


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


MASK_KINDS = ("unilm", "independent", "uniae")


def _check_kind(kind: str) -> None:
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")


def seq2seq_mask(segment_ids: Any, kind: str, cls_index: int = 0, key_valid: Any = None) -> Any:
    """Boolean sequence-to-sequence mask ``[..., query, key]`` from segment ids (univae-attention-masks, 8475).

    ``segment_ids`` (shape ``(n,)`` or ``(B, n)``, integer or bool, numpy or torch) holds 0 for the source and 1
    for the target, source first. With ``idx = cumsum(s)`` (0 on the source, 1, 2, ... on the target), as in
    bert4keras and the reference UniVAE code:

    * ``"unilm"``: ``M_ij = [idx_j <= idx_i]`` (the source is bidirectional, the target causal and sees the source);
    * ``"independent"``: ``M_ij = [s_i = s_j][idx_j <= idx_i]`` (source and target never see each other);
    * ``"uniae"``: independent, or ``j = cls_index`` (the whole key column of the [CLS] slot is opened, so every
      target row sees the source only through that one slot).

    ``key_valid`` (optional, shape of ``segment_ids``, bool) closes the key columns of padding. The result has
    shape ``segment_ids.shape + (n,)`` (``(n, n)`` or ``(B, n, n)``), the same library as the input (a torch input
    gives a torch bool tensor on its device). Raises ``ValueError`` for an unknown ``kind``, ids outside {0, 1},
    ids that decrease (the target must follow the source), a ``cls_index`` that is not a source position for
    ``"uniae"``, or a row left without any allowed key.
    """
    _check_kind(kind)
    is_torch = isinstance(segment_ids, torch.Tensor)
    s = segment_ids if is_torch else np.asarray(segment_ids)
    if s.dtype in (torch.bool, np.bool_):
        s = s.long() if is_torch else s.astype(np.int64)
    floating = (s.is_floating_point() or s.is_complex()) if is_torch else not np.issubdtype(s.dtype, np.integer)
    if floating:
        raise TypeError(f"segment_ids must hold integers (0 = source, 1 = target), got dtype {s.dtype}")
    if s.ndim not in (1, 2) or s.shape[-1] == 0:
        raise ValueError(f"segment_ids must have shape (n,) or (B, n) with n >= 1, got {tuple(s.shape)}")
    if bool(((s != 0) & (s != 1)).any()):
        raise ValueError("segment_ids must be 0 (source) or 1 (target)")
    steps = s[..., 1:] - s[..., :-1]
    if bool((steps < 0).any()):
        raise ValueError("segment_ids must be non-decreasing: the source (0) must precede the target (1)")
    n = s.shape[-1]
    if isinstance(cls_index, bool) or not isinstance(cls_index, (int, np.integer)) or not 0 <= cls_index < n:
        raise ValueError(f"cls_index must be an int in [0, {n}), got {cls_index!r}")
    if kind == "uniae" and bool((s[..., cls_index] != 0).any()):
        raise ValueError(f"cls_index = {cls_index} must be a source position (segment id 0) for kind='uniae'")
    idx = torch.cumsum(s, dim=-1) if is_torch else np.cumsum(s, axis=-1)
    mask = idx[..., None, :] <= idx[..., :, None]  # [query i, key j]: idx_j <= idx_i
    if kind in ("independent", "uniae"):
        mask = mask & (s[..., None, :] == s[..., :, None])
    if kind == "uniae":
        mask[..., :, cls_index] = True
    if key_valid is not None:
        kv = key_valid if is_torch else np.asarray(key_valid)
        if tuple(kv.shape) != tuple(s.shape) or kv.dtype not in (torch.bool, np.bool_):
            raise ValueError(f"key_valid must be a bool array of shape {tuple(s.shape)}, got {kv.dtype} {tuple(kv.shape)}")
        if is_torch:
            kv = kv.to(mask.device)
        mask = mask & kv[..., None, :]
        if not bool(mask.any(-1).all()):
            raise ValueError("key_valid leaves a query row with no allowed key")
    return mask


def mask_allowed_counts(a: int, b: int, kind: str) -> int:
    """Number of allowed (query, key) pairs of :func:`seq2seq_mask` for a source of length ``a`` and a target of
    length ``b`` (univae-attention-masks, 8475, derivation 1): ``a^2 + ab + b(b+1)/2`` (unilm),
    ``a^2 + b(b+1)/2`` (independent), ``a^2 + b + b(b+1)/2`` (uniae, which needs ``a >= 1``)."""
    _check_kind(kind)
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if a + b == 0:
        raise ValueError("a + b must be positive (an empty sequence has no mask)")
    if kind == "uniae" and a == 0:
        raise ValueError("a must be >= 1 for kind='uniae' (the [CLS] slot is a source position)")
    a, b = int(a), int(b)
    extra = {"unilm": a * b, "independent": 0, "uniae": b}[kind]
    return a * a + b * (b + 1) // 2 + extra
