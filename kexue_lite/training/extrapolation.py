"""Training-free length extrapolation of a trained TinyTransformer (length-extrapolation-review, kexue.fm/archives/9948).

A model trained with RoPE at ``L_train`` is evaluated at ``L_test`` with its attention logits computed under a named
scheme, without retraining:

- ``"direct"``: positions ``0..n-1``, the trained frequencies ``theta``;
- ``"pi"``: positions divided by ``s = L_test / L_train`` (position interpolation);
- ``"ntk"``: the base multiplied by ``s^(d/(d-2))`` (``positional.ntk_freqs``);
- ``"yarn"``: ``positional.yarn_freqs`` and the logit factor ``(1 + 0.1 ln s)^2``;
- ``"yarn_logn"``: YaRN's frequencies with the position-dependent ``max(1, ln(m+1) / ln L_train)`` in place of YaRN's
  constant factor (the article's eq. clip-logn, which it reports works about as well);
- ``"logn"``: direct positions, the logits of query ``m`` multiplied by ``max(1, ln(m+1) / ln L_train)``
  (``positional.logn_scale``, entropy invariance);
- ``"rerope"`` / ``"leaky_rerope"``: relative position ``P`` kept for ``P < w``, ``w`` (ReRoPE) or
  ``w + (P - w)/k`` (Leaky ReRoPE) outside, computed with two rotated passes (``positional.rerope_scores``).

``scheme_logits`` computes the logits of one head for such a scheme; ``scheme_forward`` runs a ``TinyTransformer``
whose blocks are MHA blocks with RoPE, replacing each attention's logits by the scheme's.
``induction_batch`` draws the synthetic task of the notebook: a prefix of distinct tokens followed by its repetition.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import positional as pos
from ..attention.modules import prepare_mask

__all__ = ["SCHEMES", "make_scheme", "scheme_logits", "scheme_forward", "induction_batch", "induction_loss"]

SCHEMES = ("direct", "pi", "ntk", "yarn", "yarn_logn", "logn", "rerope", "leaky_rerope")


def _finite_positive(name: str, value: object, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} {minimum:g}, got {value}")
    return value


def make_scheme(name: str, d: int, base: float, L_train: int, L_test: int, *, window: int | None = None,
                k_leak: float = 16.0) -> dict:
    """The keyword arguments of ``scheme_logits`` for scheme ``name`` (see the module docstring), ``s = L_test / L_train``.

    ``base`` must be the trained model's RoPE base (``scheme_forward`` checks the direct frequencies against it).
    ``window`` (ReRoPE, Leaky ReRoPE) defaults to ``L_train // 2``; ``k_leak > 1`` is Leaky ReRoPE's compression.
    With ``L_test <= L_train`` (``s = 1``) every scheme except ReRoPE with ``window < L_test`` is plain RoPE.
    """
    if name not in SCHEMES:
        raise ValueError(f"name must be one of {SCHEMES}, got {name!r}")
    for arg, value in (("d", d), ("L_train", L_train), ("L_test", L_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    base = _finite_positive("base", base, 1.0)
    s = max(1.0, L_test / L_train)
    theta = pos.rope_freqs(d, base)
    out = {"theta": theta, "pos_scale": 1.0, "logit_scale": 1.0, "window": None, "k_leak": math.inf, "logn_L_train": None,
           "trained_theta": theta}
    if name == "pi":
        out["pos_scale"] = s
    elif name == "ntk":
        out["theta"] = pos.ntk_freqs(d, base, s)
    elif name == "yarn":
        out["theta"] = pos.yarn_freqs(d, base, L_train, s)
        out["logit_scale"] = pos.yarn_logit_scale(s)
    elif name == "yarn_logn":
        out["theta"] = pos.yarn_freqs(d, base, L_train, s)
        out["logn_L_train"] = int(L_train)
    elif name == "logn":
        out["logn_L_train"] = int(L_train)
    elif name in ("rerope", "leaky_rerope"):
        w = L_train // 2 if window is None else window
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        out["window"] = int(w)
        if name == "leaky_rerope":
            out["k_leak"] = _finite_positive("k_leak", k_leak, 1.0)
    return out


def scheme_logits(q: torch.Tensor, k: torch.Tensor, theta, *, scale: float = 1.0, pos_scale: float = 1.0,
                  logit_scale: float = 1.0, window: int | None = None, k_leak: float = math.inf,
                  logn_L_train: int | None = None) -> torch.Tensor:
    """Attention logits ``(..., n, n)`` of unrotated ``q``, ``k`` ``(..., n, d)`` under a scheme (causal part valid).

    ``scale * logit_scale * lambda_m * <R_{m/p} q_m, R_{j/p} k_j>`` with ``p = pos_scale`` and
    ``lambda_m = max(1, ln(m+1)/ln logn_L_train)`` (1 when ``logn_L_train`` is None); with a ``window`` the relative
    position ``P = m - j`` is replaced by ReRoPE's ``min(P, w)`` (``k_leak = inf``) or Leaky ReRoPE's
    ``w + (P - w)/k_leak`` for ``P >= w``, by the two-pass construction (article eq. of the two passes).
    """
    if not isinstance(q, torch.Tensor) or not isinstance(k, torch.Tensor):
        raise TypeError("q and k must be torch tensors")
    if not q.is_floating_point():
        raise ValueError(f"q must be a floating-point tensor, got {q.dtype}")
    if q.shape != k.shape or q.ndim < 2:
        raise ValueError(f"q and k must have the same shape (..., n, d), got {tuple(q.shape)} and {tuple(k.shape)}")
    scale = _finite_positive("scale", scale)
    pos_scale = _finite_positive("pos_scale", pos_scale)
    logit_scale = _finite_positive("logit_scale", logit_scale)
    if not (k_leak == math.inf or k_leak > 1):
        raise ValueError(f"k_leak must be > 1 or inf, got {k_leak!r}")
    if not torch.isfinite(q).all() or not torch.isfinite(k).all():
        raise ValueError("q and k must be finite")
    n = q.shape[-2]
    m = np.arange(n, dtype=np.float64)
    if window is None:
        logits = pos.rope_rotate(q, m / pos_scale, theta) @ pos.rope_rotate(k, m / pos_scale, theta).transpose(-1, -2)
    else:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        if pos_scale != 1.0:
            raise ValueError(f"pos_scale must be 1 with a window (ReRoPE keeps the positions), got {pos_scale}")
        inside = pos.rope_rotate(q, m, theta) @ pos.rope_rotate(k, m, theta).transpose(-1, -2)
        if k_leak == math.inf:
            outside = pos.rope_rotate(q, np.full(n, float(window)), theta) @ k.transpose(-1, -2)
        else:
            outside = (pos.rope_rotate(q, m / k_leak + window * (1 - 1 / k_leak), theta)
                       @ pos.rope_rotate(k, m / k_leak, theta).transpose(-1, -2))
        near = torch.as_tensor(np.subtract.outer(m, m) < window, device=q.device)
        logits = torch.where(near, inside, outside)
    factor = torch.full((n, 1), scale * logit_scale, dtype=q.dtype, device=q.device)
    if logn_L_train is not None:
        if isinstance(logn_L_train, bool) or not isinstance(logn_L_train, (int, np.integer)) or logn_L_train < 2:
            raise ValueError(f"logn_L_train must be an integer >= 2, got {logn_L_train!r}")
        lam = pos.logn_scale(m + 1, int(logn_L_train))
        factor = factor * torch.as_tensor(lam[:, None], dtype=q.dtype, device=q.device)
    return logits * factor


def _attention(mha, x: torch.Tensor, scheme: dict) -> torch.Tensor:
    cfg = mha.cfg
    B, n, _ = x.shape
    h, hkv, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    q = mha.q_proj(x).view(B, n, h, dh).transpose(1, 2)
    k = mha.k_proj(x).view(B, n, hkv, dh).transpose(1, 2)
    v = mha.v_proj(x).view(B, n, hkv, dh).transpose(1, 2)
    if hkv != h:
        k, v = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
    logits = scheme_logits(q, k, scheme["theta"], scale=cfg.scale, pos_scale=scheme["pos_scale"],
                           logit_scale=scheme["logit_scale"], window=scheme["window"], k_leak=scheme["k_leak"],
                           logn_L_train=scheme["logn_L_train"])
    mask = prepare_mask(None, n, n, True, x.device)
    w = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return mha.o_proj((w @ v).transpose(1, 2).reshape(B, n, -1))


@torch.no_grad()
def scheme_forward(model, ids: torch.Tensor, scheme: dict) -> torch.Tensor:
    """Logits ``(B, n, V)`` of a causal RoPE ``TinyTransformer`` (MHA blocks) with every attention under ``scheme``.

    ``scheme``: a dict from ``make_scheme``. With ``make_scheme("direct", ...)`` (the model's own frequencies) this
    equals ``model(ids)``.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "blocks"):
        raise TypeError(f"model must be a TinyTransformer, got {type(model).__name__}")
    if not (cfg.rope and cfg.causal and cfg.mixer == "mha"):
        raise ValueError("model must be a causal MHA TinyTransformer with rope=True")
    if not isinstance(scheme, dict) or set(scheme) != {"theta", "pos_scale", "logit_scale", "window", "k_leak", "logn_L_train",
                                                       "trained_theta"}:
        raise ValueError("scheme must be a dict from make_scheme")
    if len(np.asarray(scheme["theta"])) != cfg.d_head // 2:
        raise ValueError(f"scheme: theta must have d_head / 2 = {cfg.d_head // 2} frequencies")
    model_theta = (pos.rope_freqs(cfg.d_head, cfg.rope_base) if cfg.rope_freqs is None
                   else np.asarray(torch.as_tensor(cfg.rope_freqs).detach().cpu(), dtype=np.float64))
    if not np.allclose(np.asarray(scheme["trained_theta"], dtype=np.float64), model_theta, rtol=1e-9, atol=0.0):
        raise ValueError("scheme: make_scheme's d and base must be the model's (d_head, rope_base): its direct "
                         "frequencies differ from the model's")
    x = model.embed_inputs(ids)
    for block in model.blocks:
        x = block._sublayer(x, lambda hid, mha=block.mixer: _attention(mha, hid, scheme), block.norm1)
        if block.ffn is not None:
            x = block._sublayer(x, block.ffn, block.norm2)
    return model.head(model.final_norm(x))


def induction_batch(batch_size: int, seq_len: int, vocab: int, generator: torch.Generator | None = None,
                    period: int | None = None):
    """``(x, y)``: ``x`` is ``seq_len`` tokens, periodic with ``period`` (default ``seq_len // 2``): ``period`` distinct
    random tokens repeated; ``y`` the next token (``y[:, t] = x[:, t + 1]``; the last target repeats the last token).

    Positions ``period <= t <= seq_len - 2`` are predictable by induction (find the earlier copy of ``x[t]``, output
    its successor); the others are not scored (``induction_loss``). Needs ``2 <= period <= seq_len - 2`` and
    ``vocab >= period``.
    """
    for name, value, low in (("batch_size", batch_size, 1), ("seq_len", seq_len, 3), ("vocab", vocab, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    period = seq_len // 2 if period is None else period
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 2 <= period <= seq_len - 2:
        raise ValueError(f"period must be an integer in [2, seq_len - 2 = {seq_len - 2}], got {period!r}")
    if vocab < period:
        raise ValueError(f"vocab must be >= period = {period} (a block of distinct tokens), got {vocab}")
    block = torch.argsort(torch.rand(batch_size, vocab, generator=generator), dim=1)[:, :int(period)]
    x = block.repeat(1, -(-seq_len // int(period)))[:, :seq_len]
    y = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    return x, y


def induction_loss(logits: torch.Tensor, y: torch.Tensor, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-position cross-entropy (nats) and accuracy ``(n,)`` averaged over the batch; NaN off the scored positions
    ``period .. n - 2`` (see ``induction_batch``)."""
    if logits.ndim != 3 or logits.shape[:2] != y.shape:
        raise ValueError(f"logits must be (B, n, V) matching y (B, n), got {tuple(logits.shape)}, {tuple(y.shape)}")
    n = y.shape[1]
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 2 <= period <= n - 2:
        raise ValueError(f"period must be an integer in [2, n - 2 = {n - 2}], got {period!r}")
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), y, reduction="none").mean(0).double().cpu().numpy()
    acc = (logits.argmax(-1) == y).double().mean(0).cpu().numpy()
    off = np.ones(n, dtype=bool)
    off[int(period):n - 1] = False
    ce[off], acc[off] = np.nan, np.nan
    return ce, acc
