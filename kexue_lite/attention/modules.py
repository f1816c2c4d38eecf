"""Attention modules of the shared tiny Transformer: MultiHeadAttention (MHA, GQA, MQA; RoPE) and GatedAttentionUnit.

Both take a ``kexue_lite.training.BlockConfig`` (read by attribute; this module does not import ``training``) and
work on ``(B, n, d)`` tensors in the row-vector convention ``y = x W``. Module names are fixed (``q_proj``, ``k_proj``,
``v_proj``, ``o_proj``; ``uv_proj``, ``z_proj``, ``qk_scale``, ``qk_offset``) because hooks and widening address
them by name. RoPE is ``kexue_lite.positional.rope_rotate`` (interleaved pairs, ``theta_i = base^(-2i/d)``).
Masks are boolean, ``True`` meaning "query i may attend key j", indexed ``[..., query, key]``.
Serves mha-mqa-gqa-mla (kexue.fm/archives/10091), gau-without-warmup (8990) and the training part.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..positional import rope_freqs, rope_rotate

__all__ = ["MultiHeadAttention", "GatedAttentionUnit", "prepare_mask"]


def prepare_mask(mask, n_q: int, n_k: int, causal: bool, device: torch.device) -> torch.Tensor | None:
    """The boolean mask to apply, ``(..., n_q, n_k)`` (None when nothing is masked); ``causal`` ANDs ``j <= i``.

    ``mask``: boolean, ``(n_q, n_k)``, ``(B, n_q, n_k)`` or ``(B, heads, n_q, n_k)``; numpy or torch.
    Raises ``ValueError`` if a query row allows no key (its softmax would be 0/0).
    """
    out = None
    if mask is not None:
        m = torch.as_tensor(mask, device=device)
        if m.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {m.dtype}")
        if m.ndim < 2 or m.shape[-2:] != (n_q, n_k):
            raise ValueError(f"mask must end in ({n_q}, {n_k}), got {tuple(m.shape)}")
        out = m
    if causal:
        tril = torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(n_k - n_q)
        out = tril if out is None else out & tril
    if out is not None and not bool(out.any(-1).all()):
        raise ValueError("mask: every query row must allow at least one key")
    return out


def _thetas(cfg, dim: int) -> np.ndarray:
    if cfg.rope_freqs is not None:
        return np.asarray(torch.as_tensor(cfg.rope_freqs).detach().cpu(), dtype=np.float64)
    return rope_freqs(dim, cfg.rope_base)


def _positions(positions, n: int) -> np.ndarray:
    if positions is None:
        return np.arange(n, dtype=np.float64)
    pos = np.asarray(positions.detach().cpu() if isinstance(positions, torch.Tensor) else positions, dtype=np.float64)
    if pos.shape != (n,):
        raise ValueError(f"positions must have shape ({n},), got {pos.shape}")
    return pos


def _to_4d(mask: torch.Tensor) -> torch.Tensor:
    return mask.unsqueeze(1) if mask.ndim == 3 else mask  # (B, n, n) -> (B, 1, n, n); (n, n) and 4-D broadcast


class MultiHeadAttention(nn.Module):
    """``softmax(scale (x W_q)(x W_k)^T + mask) (x W_v) W_o`` over ``n_heads`` heads of size ``d_head``.

    ``cfg.n_kv_heads`` key/value heads are shared by groups of ``n_heads / n_kv_heads`` query heads (GQA; 1 is MQA),
    repeated with ``repeat_interleave`` on the head axis (query head h reads kv head ``h // group``). With
    ``cfg.rope`` queries and keys are rotated by their positions (default ``0..n-1``) before the product.
    """

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        h, hkv, dh, d = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model
        self.q_proj = nn.Linear(d, h * dh, bias=cfg.bias)
        self.k_proj = nn.Linear(d, hkv * dh, bias=cfg.bias)
        self.v_proj = nn.Linear(d, hkv * dh, bias=cfg.bias)
        self.o_proj = nn.Linear(h * dh, d, bias=cfg.bias)

    def weights(self, x: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        """The attention matrix ``(B, n_heads, n, n)`` (rows sum to 1; masked entries exactly 0)."""
        return self._attend(x, mask, positions)[0]

    def _attend(self, x: torch.Tensor, mask, positions) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        if x.ndim != 3 or x.shape[-1] != cfg.d_model:
            raise ValueError(f"x must be (B, n, d_model={cfg.d_model}), got {tuple(x.shape)}")
        B, n, _ = x.shape
        h, hkv, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        q = self.q_proj(x).view(B, n, h, dh).transpose(1, 2)
        k = self.k_proj(x).view(B, n, hkv, dh).transpose(1, 2)
        v = self.v_proj(x).view(B, n, hkv, dh).transpose(1, 2)
        if cfg.rope:
            pos, theta = _positions(positions, n), _thetas(cfg, dh)
            q, k = rope_rotate(q, pos, theta), rope_rotate(k, pos, theta)
        if hkv != h:
            k, v = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
        logits = cfg.scale * q @ k.transpose(-1, -2)
        m = prepare_mask(mask, n, n, cfg.causal, x.device)
        if m is not None:
            logits = logits.masked_fill(~_to_4d(m), float("-inf"))
        return torch.softmax(logits, dim=-1), v

    def forward(self, x: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        w, v = self._attend(x, mask, positions)
        B, _, n, _ = w.shape
        return self.o_proj((w @ v).transpose(1, 2).reshape(B, n, -1))


class GatedAttentionUnit(nn.Module):
    """GAU (Hua et al. 2022, FLASH): ``O = (U * (A V)) W_o`` with ``A = relu(Q K^T / sqrt(s))^2 / n``.

    ``U, V = swish(x W_uv)`` (``e = gau_expansion * d_model`` each), ``Z = swish(x W_z)`` (``s = gau_s``),
    ``Q = Z * qk_scale[0] + qk_offset[0]``, ``K = Z * qk_scale[1] + qk_offset[1]``; ``n`` is the full sequence length
    (also in the causal case, where ``A`` is made lower-triangular); masked entries of ``A`` are 0. ``qk_scale`` starts
    at ones ("ones", the article and GAU-alpha) or N(0, 0.02^2) ("normal", the FLASH code): see ``init_weights``.
    """

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        d, s, e = cfg.d_model, cfg.gau_s, cfg.gau_expansion * cfg.d_model
        self.e, self.s = e, s
        self.uv_proj = nn.Linear(d, 2 * e, bias=cfg.bias)
        self.z_proj = nn.Linear(d, s, bias=cfg.bias)
        self.qk_scale = nn.Parameter(torch.ones(2, s))
        self.qk_offset = nn.Parameter(torch.zeros(2, s))
        self.o_proj = nn.Linear(e, d, bias=cfg.bias)

    def weights(self, x: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        """The matrix ``A`` ``(B, n, n)`` (not normalised by rows: ``relu^2`` divided by ``n``)."""
        cfg = self.cfg
        if x.ndim != 3 or x.shape[-1] != cfg.d_model:
            raise ValueError(f"x must be (B, n, d_model={cfg.d_model}), got {tuple(x.shape)}")
        n = x.shape[1]
        z = F.silu(self.z_proj(x))
        q = z * self.qk_scale[0] + self.qk_offset[0]
        k = z * self.qk_scale[1] + self.qk_offset[1]
        if cfg.rope:
            pos, theta = _positions(positions, n), _thetas(cfg, self.s)
            q, k = rope_rotate(q, pos, theta), rope_rotate(k, pos, theta)
        a = torch.relu(q @ k.transpose(-1, -2) / math.sqrt(self.s)) ** 2 / n
        m = prepare_mask(mask, n, n, cfg.causal, x.device)
        if m is not None:
            a = a * (m if m.ndim < 4 else m.squeeze(1)).to(a.dtype)
        return a

    def forward(self, x: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        a = self.weights(x, mask, positions)
        u, v = F.silu(self.uv_proj(x)).split(self.e, dim=-1)
        return self.o_proj(u * (a @ v))
