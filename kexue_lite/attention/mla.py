"""Multi-head latent attention: the training form and the absorbed decoding form (mha-mqa-gqa-mla, 10091).

Serves the notebook ``attention/mha-mqa-gqa-mla`` (kexue.fm/archives/10091; DeepSeek-V2, arXiv:2405.04434, §2.1).
Row-vector convention, ``y = x W``; one head ``s`` of the training form (the article's "MHA form") is

    c'_i = x_i W_dq,   c_i = x_i W_dkv                        (query and key/value latents)
    q_i = [c'_i W_qc[s],  (c'_i W_qr[s]) R_i]                  (d_head + d_rope)
    k_i = [c_i  W_kc[s],  (x_i  W_kr)    R_i]                  (the RoPE key is shared by all heads)
    v_i = c_i W_v[s];     o_t = sum_s softmax_i(q_t k_i^T / sqrt(d_head + d_rope)) v_i W_o[s]

and the decoding form (the "MQA form") caches only ``[c_i, (x_i W_kr) R_i]`` (``d_c + d_rope`` numbers per token):
the query of head ``s`` becomes ``[(c'_t W_qc[s]) W_kc[s]^T, (c'_t W_qr[s]) R_t]`` and the value path is
``(sum_i a_i c_i) W_v[s] W_o[s]``. ``R_i`` is RoPE in the row convention, ``x R_i = positional.rope_rotate(x, i,
theta)`` with pairs (2j, 2j+1) and ``theta_j = base^(-2j/d_rope)``; this module reuses
:mod:`kexue_lite.positional` and adds no RoPE code of its own. The RMSNorms DeepSeek-V2 puts after the two
down-projections and YaRN's logit scale are left out (they do not change the absorption).

``d_cq=None`` takes queries from ``x`` itself (no ``W_dq``), and ``d_rope=0`` drops the RoPE part (the article's
"Part 1" MLA), which is how GQA is written as a special case.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from .. import positional

__all__ = ["MultiHeadLatentAttention"]


def _size(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class MultiHeadLatentAttention(nn.Module):
    """Causal MLA with decoupled RoPE (DeepSeek-V2), in its training form and its absorbed decoding form.

    Parameters (row convention, shapes ``(in, out)``, one leading head axis where per head): ``W_dq`` (d, d_cq),
    ``W_qc`` (h, d_cq, d_head), ``W_qr`` (h, d_cq, d_rope), ``W_dkv`` (d, d_c), ``W_kc`` (h, d_c, d_head),
    ``W_kr`` (d, d_rope), ``W_v`` (h, d_c, d_v), ``W_o`` (h, d_v, d). Entries are N(0, 1/fan_in), drawn from a
    ``torch.Generator`` seeded with ``seed``. Both forms use the training scale ``1/sqrt(d_head + d_rope)``.
    """

    def __init__(self, d_model: int, n_heads: int, d_head: int, d_rope: int, d_c: int, d_cq: int | None = None,
                 d_v: int | None = None, rope_base: float = 10000.0, dtype: torch.dtype = torch.float64,
                 seed: int = 0) -> None:
        super().__init__()
        self.d_model = _size(d_model, "d_model")
        self.n_heads = _size(n_heads, "n_heads")
        self.d_head = _size(d_head, "d_head")
        self.d_rope = _size(d_rope, "d_rope", minimum=0)
        if self.d_rope % 2:
            raise ValueError(f"d_rope must be even (RoPE rotates pairs), got {d_rope}")
        self.d_c = _size(d_c, "d_c")
        self.d_cq = None if d_cq is None else _size(d_cq, "d_cq")
        self.d_v = self.d_head if d_v is None else _size(d_v, "d_v")
        if isinstance(rope_base, bool) or not isinstance(rope_base, numbers.Real) or not (
                math.isfinite(rope_base) and rope_base > 1):
            raise ValueError(f"rope_base must be a finite number > 1, got {rope_base!r}")
        self.rope_base = float(rope_base)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        _size(seed, "seed", minimum=0)
        gen = torch.Generator().manual_seed(int(seed))
        h, d = self.n_heads, self.d_model
        dq_in = d if self.d_cq is None else self.d_cq

        def draw(*shape: int) -> nn.Parameter:
            fan_in = shape[-2]
            w = torch.randn(*shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
            return nn.Parameter(w.to(dtype))

        self.W_dq = draw(d, self.d_cq) if self.d_cq is not None else None
        self.W_qc = draw(h, dq_in, self.d_head)
        self.W_dkv = draw(d, self.d_c)
        self.W_kc = draw(h, self.d_c, self.d_head)
        self.W_v = draw(h, self.d_c, self.d_v)
        self.W_o = draw(h, self.d_v, d)
        if self.d_rope:
            self.W_qr = draw(h, dq_in, self.d_rope)
            self.W_kr = draw(d, self.d_rope)
            self.theta = positional.rope_freqs(self.d_rope, self.rope_base)
        else:
            self.W_qr = self.W_kr = None
            self.theta = None
        self.scale = 1.0 / math.sqrt(self.d_head + self.d_rope)

    # ------------------------------------------------------------------ helpers
    @property
    def cache_width(self) -> int:
        """Numbers cached per token and layer by :meth:`decode`: ``d_c + d_rope``."""
        return self.d_c + self.d_rope

    def _check_input(self, x: torch.Tensor, positions) -> tuple[torch.Tensor, np.ndarray]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating tensor, got {x.dtype}")
        if x.ndim < 2 or x.shape[-1] != self.d_model or x.shape[-2] == 0:
            raise ValueError(f"x must be (..., n, d_model={self.d_model}) with n >= 1, got {tuple(x.shape)}")
        if x.dtype != self.W_dkv.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the weights are {self.W_dkv.dtype}; convert one of them")
        if not torch.isfinite(x).all():
            raise ValueError("x must be finite (no NaN or inf)")
        n = x.shape[-2]
        if positions is None:
            pos = np.arange(n, dtype=np.float64)
        else:
            pos = np.asarray(positions.detach().cpu() if isinstance(positions, torch.Tensor) else positions,
                             dtype=np.float64)
            if pos.shape != (n,):
                raise ValueError(f"positions must have shape ({n},), got {pos.shape}")
            if not np.isfinite(pos).all():
                raise ValueError("positions must be finite")
        return x, pos

    def _query_latent(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.W_dq is None else x @ self.W_dq

    def _rope(self, y: torch.Tensor, pos: np.ndarray) -> torch.Tensor:
        return positional.rope_rotate(y, pos, self.theta, layout="interleaved")

    # ------------------------------------------------------------------ training form
    def heads(self, x: torch.Tensor, positions=None) -> dict[str, torch.Tensor]:
        """Per-head ``q`` (..., h, n, d_head + d_rope), ``k`` (same), ``v`` (..., h, n, d_v) of the training form."""
        x, pos = self._check_input(x, positions)
        cq = self._query_latent(x).unsqueeze(-3)                       # (..., 1, n, d_cq)
        c = (x @ self.W_dkv).unsqueeze(-3)                             # (..., 1, n, d_c)
        q = cq @ self.W_qc                                             # (..., h, n, d_head)
        k = c @ self.W_kc
        v = c @ self.W_v
        if self.d_rope:
            q_r = self._rope(cq @ self.W_qr, pos)                      # (..., h, n, d_rope)
            k_r = self._rope(x @ self.W_kr, pos).unsqueeze(-3)         # (..., 1, n, d_rope), shared
            q = torch.cat([q, q_r], dim=-1)
            k = torch.cat([k, k_r.expand(*k.shape[:-1], self.d_rope)], dim=-1)
        return {"q": q, "k": k, "v": v}

    def forward(self, x: torch.Tensor, positions=None) -> torch.Tensor:
        """Training (MHA) form, causal: ``x`` (..., n, d) -> (..., n, d)."""
        p = self.heads(x, positions)
        n = x.shape[-2]
        scores = (p["q"] @ p["k"].transpose(-1, -2)) * self.scale      # (..., h, n, n)
        allowed = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        o = weights @ p["v"]                                           # (..., h, n, d_v)
        return (o @ self.W_o).sum(dim=-3)

    # ------------------------------------------------------------------ decoding form
    def absorbed_weights(self) -> dict[str, torch.Tensor]:
        """The merged matrices: ``W_qk`` = W_qc[s] W_kc[s]^T (h, d_cq, d_c) and ``W_vo`` = W_v[s] W_o[s] (h, d_c, d)."""
        return {"W_qk": self.W_qc @ self.W_kc.transpose(-1, -2), "W_vo": self.W_v @ self.W_o}

    def decode(self, x: torch.Tensor, positions=None, *, merged: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Absorbed (MQA) form, one token at a time from a cache of ``[c_i, k_r_i]``; returns ``(out, cache)``.

        ``cache`` has shape (..., n, d_c + d_rope). With ``merged=False`` the query is ``(c'_t W_qc) W_kc^T`` and the
        output ``((a c) W_v) W_o`` (two thin products, as done in practice); ``merged=True`` uses the precomputed
        :meth:`absorbed_weights` instead (the same in exact arithmetic).
        """
        if not isinstance(merged, bool):
            raise TypeError("merged must be a bool")
        x, pos = self._check_input(x, positions)
        n = x.shape[-2]
        absorbed = self.absorbed_weights() if merged else None
        cache = x.new_zeros(*x.shape[:-1], self.cache_width)
        outs = []
        for t in range(n):
            x_t = x[..., t : t + 1, :]                                 # (..., 1, d)
            entry = x_t @ self.W_dkv
            if self.d_rope:
                entry = torch.cat([entry, self._rope(x_t @ self.W_kr, pos[t : t + 1])], dim=-1)
            cache[..., t : t + 1, :] = entry
            cq = self._query_latent(x_t).unsqueeze(-3)                 # (..., 1, 1, d_cq)
            if merged:
                q = cq @ absorbed["W_qk"]                              # (..., h, 1, d_c)
            else:
                q = (cq @ self.W_qc) @ self.W_kc.transpose(-1, -2)
            if self.d_rope:
                q = torch.cat([q, self._rope(cq @ self.W_qr, pos[t : t + 1])], dim=-1)
            past = cache[..., : t + 1, :].unsqueeze(-3)                # (..., 1, t+1, d_c + d_r), shared by heads
            weights = torch.softmax((q @ past.transpose(-1, -2)) * self.scale, dim=-1)
            o_lat = weights @ past[..., : self.d_c]                    # (..., h, 1, d_c)
            out = o_lat @ absorbed["W_vo"] if merged else (o_lat @ self.W_v) @ self.W_o
            outs.append(out.sum(dim=-3))
        return torch.cat(outs, dim=-2), cache
