"""Lossless widening of a trained TinyTransformer and its ablations (lossless-widening, 8444).

kexue.fm/archives/8444 asks for a deterministic map from a trained model of width ``d`` to one of width ``k d``
(same depth, same number of heads) that computes the same function. Every layer's net effect must be the
norm-preserving map "repeat each coordinate ``k`` times, divide by ``sqrt(k)``" (:func:`widen_vector`). The rules,
per parameter (row-vector convention ``y = x W + b``; ``nn.Linear`` stores ``W`` transposed, which changes nothing
since both axes are repeated):

===========================================  =====================================================
component                                    rule (every widened axis repeated ``k`` times)
===========================================  =====================================================
token, position embeddings; norm weights     ``/ sqrt(k)``
dense layers (``v_proj``, ``o_proj``)         ``W / k``, ``b / sqrt(k)``
``q_proj``, ``k_proj``                       the same times ``k^(1/4)`` when the logits are scaled by ``1/sqrt(d_head)``
FFN ``fc1`` (any activation)                 ``W / sqrt(k)``, ``b`` unchanged
FFN ``fc2``                                  ``W / (k sqrt(k))``, ``b / sqrt(k)`` (the article's table has ``b / 2``)
norm ``eps`` (input is repeat/sqrt(k))       ``eps / k``
head: dense and decoder Linears              ``W / sqrt(k)``, ``b`` unchanged
head: LayerNorm (its input is a pure repeat)  weights ``/ sqrt(k)``, ``eps`` unchanged
vocabulary bias                              unchanged
===========================================  =====================================================

With RoPE the query/key features are repeated in pairs (``[x1, x2, x1, x2, x3, x4, ...]``) and each per-pair
frequency is reused ``k`` times; the book's observation (not the article's) is that this restores exactness.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

__all__ = ["widen_vector", "widen_index", "widen_model", "copy_divergence"]

_LAYOUTS = ("interleave", "tile", "pairwise")


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return k


def widen_index(d: int, k: int = 2, layout: str = "interleave") -> torch.Tensor:
    """Indices ``idx`` (length ``k d``) with ``widened = x[..., idx]`` before the ``1/sqrt(k)`` (8444, eq. vt / vt-2).

    ``"interleave"``: ``[0, 0, 1, 1, ...]`` (the article's repetition); ``"tile"``: ``[0, 1, .., d-1, 0, 1, ...]``
    (the variant that breaks the head reshape); ``"pairwise"``: ``[0, 1, 0, 1, 2, 3, 2, 3, ...]`` (RoPE pairs).
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    k = _check_k(k)
    j = torch.arange(k * d)
    if layout == "interleave":
        return j // k
    if layout == "tile":
        return j % d
    if layout == "pairwise":
        if d % 2:
            raise ValueError(f"pairwise repetition needs an even last dimension, got d={d}")
        return 2 * (j // (2 * k)) + j % 2
    raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")


def widen_vector(x: torch.Tensor, k: int = 2, *, pairwise: bool = False, scale: bool = True,
                 tile: bool = False) -> torch.Tensor:
    """``x~_i = x_{ceil(i/k)} / sqrt(k)`` along the last axis (8444, eq. vt; ``pairwise``: eq. vt-2).

    ``scale=False`` keeps the pure repetition; ``tile=True`` repeats the whole vector instead (ablation). The norm
    is preserved when ``scale`` is on: ``|x~| = |x|``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating-point dtype, got {x.dtype}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite entries")
    k = _check_k(k)
    if pairwise and tile:
        raise ValueError("pairwise and tile are exclusive layouts; pass at most one")
    layout = "pairwise" if pairwise else "tile" if tile else "interleave"
    out = x[..., widen_index(x.shape[-1], k, layout).to(x.device)]
    return out / math.sqrt(k) if scale else out


# ----------------------------------------------------------------------------------------------- the model
def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or "norm" in type(module).__name__.lower()


def _role(name: str, owner: nn.Module) -> str:
    """Which rule a parameter follows, from its module's name and type."""
    parts = name.split(".")
    top, mod = parts[0], (parts[-2] if len(parts) > 1 else "")
    if top == "head":
        if isinstance(owner, nn.Linear):
            return "head_linear"
        if _is_norm(owner):
            return "head_norm"
        return "unchanged"  # the vocabulary bias
    if mod in ("q_proj", "k_proj"):
        return "qk"
    if mod in ("v_proj", "o_proj"):
        return "dense"
    if mod in ("fc1", "fc2"):
        return mod
    if _is_norm(owner):
        return "norm"
    if top in ("embed", "pos", "segment", "seg_embed") or isinstance(owner, nn.Embedding):
        return "vector"
    raise NotImplementedError(f"widen_model has no rule for parameter {name!r}")


def _widen_param(name: str, role: str, old: torch.Tensor, new_shape: torch.Size, k: int, *, qk: float,
                 layout: str, qk_layout: str, ffn2_bias_divisor: float,
                 index_cache: dict | None = None) -> torch.Tensor:
    out = old.detach()
    index_cache = {} if index_cache is None else index_cache  # (size, layout, device) -> widen_index, per model
    grown = []
    for axis, (a, b) in enumerate(zip(old.shape, new_shape)):
        if b == a * k and k > 1:
            grown.append(axis)
        elif b != a:
            raise ValueError(f"parameter {name!r}: axis {axis} goes from {a} to {b}, not x{k}")
    is_bias = old.ndim == 1
    for axis in grown:
        lay = qk_layout if role == "qk" and axis == 0 else layout
        key = (old.shape[axis], lay, out.device)  # k is fixed within one call, so it need not be in the key
        if key not in index_cache:
            index_cache[key] = widen_index(old.shape[axis], k, lay).to(out.device)
        idx = index_cache[key]
        out = out.index_select(axis, idx)
    rk = math.sqrt(k)
    factor = {
        "qk": (qk / rk if is_bias else qk / k),
        "dense": (1 / rk if is_bias else 1 / k),
        "fc1": (1.0 if is_bias else 1 / rk),
        "fc2": (1 / ffn2_bias_divisor if is_bias else 1 / (k * rk)),
        "norm": 1 / rk,
        "vector": 1 / rk,
        "head_norm": 1 / rk,
        "head_linear": (1.0 if is_bias else 1 / rk),
        "unchanged": 1.0,
    }[role]
    return out * factor


def _build_like(model: nn.Module, cfg) -> nn.Module:
    """A fresh TinyTransformer with ``model``'s constructor arguments (read back from its modules) and a new ``cfg``."""
    embed = getattr(model, "embed", None)
    head, kind = model.head, model.head_kind
    n_out = None
    if kind == "cls":
        n_out = head.out_features
    elif kind == "mlm":
        n_out = head.decoder.out_features
    elif kind in ("lm", "token"):
        n_out = head.out_features
    n_classes = n_out if (n_out is not None and (kind == "cls" or n_out != model.vocab_size)) else None
    kwargs = dict(vocab_size=model.vocab_size, max_len=model.max_len, head=kind, n_classes=n_classes,
                  final_norm=not isinstance(model.final_norm, nn.Identity),
                  embed_norm=not isinstance(model.embed_norm, nn.Identity),
                  tie_embeddings=bool(getattr(model, "tied", False)) or embed is None,
                  positional="learned" if getattr(model, "pos", None) is not None else "none")
    return type(model)(cfg, model.n_layers, **kwargs)


def widen_model(model: nn.Module, k: int = 2, *, rope_pairwise: bool | None = None, rope_freqs: str = "repeat",
                ffn2_bias_divisor: float | None = None, qk_factor: bool = True, tile: bool = False,
                scale_eps: bool = True) -> nn.Module:
    """A new model of width ``k d`` (``d_ff``, ``d_head`` times ``k``, same heads and depth) computing the same function.

    Implements the corrected table of 8444 (module docstring). The keywords other than ``k`` exist for the failure
    demos; their defaults are the exact rule:

    * ``rope_pairwise`` (None: pairwise iff ``cfg.rope``): repeat query/key features in pairs (article, eq. vt-2);
    * ``rope_freqs``: ``"repeat"`` reuses each per-pair frequency ``k`` times (exact); ``"standard"`` uses
      ``base^(-2i/(k d_head))`` (the article's setting, not exact);
    * ``ffn2_bias_divisor`` (None: ``sqrt(k)``): the article's table uses 2 for ``k = 2``;
    * ``qk_factor``: the ``k^(1/4)`` on queries and keys (needed iff ``attn_scale is True``);
    * ``tile``: repeat ``[x, x]`` instead of ``[x1, x1, x2, x2]`` (breaks the head reshape);
    * ``scale_eps``: divide the eps of the norms that see repeat/sqrt(k) by ``k``.

    The model is copied, not modified; the new one is in eval mode iff the old one is. For a model without a
    vocabulary (float inputs), feed it ``widen_vector(inputs, k)``.
    """
    k = _check_k(k)
    cfg = model.cfg
    if cfg.mixer == "gau":
        raise NotImplementedError("widen_model covers mixer='mha' and 'none', not mixer='gau' (the GAU is not derived here)")
    if rope_freqs not in ("repeat", "standard"):
        raise ValueError(f"rope_freqs must be 'repeat' or 'standard', got {rope_freqs!r}")
    if ffn2_bias_divisor is not None and not (isinstance(ffn2_bias_divisor, (int, float)) and ffn2_bias_divisor > 0
                                              and math.isfinite(ffn2_bias_divisor)):
        raise ValueError(f"ffn2_bias_divisor must be a positive number, got {ffn2_bias_divisor!r}")
    pairwise = bool(cfg.rope) if rope_pairwise is None else bool(rope_pairwise)
    if pairwise and tile:
        raise ValueError("rope_pairwise and tile are exclusive; pass at most one")
    d_head = cfg.d_head if cfg.d_head is not None else cfg.d_model // cfg.n_heads
    d_ff = cfg.d_ff if cfg.d_ff is not None else 4 * cfg.d_model
    new = {"d_model": k * cfg.d_model, "d_head": k * d_head, "d_ff": k * d_ff}
    if cfg.rope:
        if rope_freqs == "repeat":
            theta = cfg.rope_freqs
            if theta is None:
                from ..positional import rope_freqs as _rope_freqs

                theta = torch.as_tensor(_rope_freqs(d_head, cfg.rope_base), dtype=torch.float64)
            new["rope_freqs"] = torch.as_tensor(theta).repeat_interleave(k)
        else:
            new["rope_freqs"] = None
    wcfg = dataclasses.replace(cfg, **new)
    wide = _build_like(model, wcfg)
    ref = next(model.parameters())
    wide = wide.to(device=ref.device, dtype=ref.dtype)
    qk = k ** 0.25 if (qk_factor and cfg.attn_scale is True) else 1.0
    layout = "tile" if tile else "interleave"
    qk_layout = "pairwise" if pairwise else layout
    div = math.sqrt(k) if ffn2_bias_divisor is None else float(ffn2_bias_divisor)
    old_params = dict(model.named_parameters())
    owners = dict(wide.named_modules())
    index_cache: dict = {}
    with torch.no_grad():
        for name, p in wide.named_parameters():
            if name not in old_params:
                raise ValueError(f"parameter {name!r} of the widened model has no counterpart")
            owner = owners[name.rsplit(".", 1)[0]] if "." in name else wide
            role = _role(name, owner)
            p.copy_(_widen_param(name, role, old_params[name], p.shape, k, qk=qk, layout=layout,
                                 qk_layout=qk_layout, ffn2_bias_divisor=div, index_cache=index_cache))
        for (name, m_new), (_, m_old) in zip(wide.named_modules(), model.named_modules()):
            if hasattr(m_new, "eps") and isinstance(getattr(m_old, "eps", None), float):
                in_head = name.split(".")[0] == "head"
                m_new.eps = m_old.eps if (in_head or not scale_eps) else m_old.eps / k
    wide.train(model.training)
    return wide


def copy_divergence(model: nn.Module, k: int, *, rope_pairwise: bool | None = None, grads: bool = False) -> float:
    """Max |copy_a - copy_b| over every widened axis of every parameter (0.0 right after :func:`widen_model`).

    ``grads=True`` reads ``.grad`` instead (identical copies receive identical gradients). ``model`` is the wide
    model; the narrow sizes are its sizes divided by ``k``. A NaN anywhere makes the result NaN (never a false 0.0).
    """
    k = _check_k(k)
    cfg = model.cfg
    if cfg.d_model % k:
        raise ValueError(f"k={k} does not divide the model width {cfg.d_model}")
    pairwise = bool(cfg.rope) if rope_pairwise is None else bool(rope_pairwise)
    diffs = []  # one 0-d tensor per widened axis; a single conversion to float at the end
    seen = set()  # a tied parameter is visited once, under its first name, as named_parameters() does
    for mod_name, owner in model.named_modules():
        for leaf, p in owner.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            name = f"{mod_name}.{leaf}" if mod_name else leaf
            t = p.grad if grads else p
            if t is None:
                if grads:
                    raise ValueError(f"parameter {name!r} has no gradient; call backward first")
                continue
            t = t.detach()
            role = _role(name, owner)
            if role == "unchanged" or k == 1:
                continue
            if role == "vector":
                axes = [t.ndim - 1]
            elif role == "head_linear" and t.ndim == 2 and owner.out_features != owner.in_features:
                axes = [1]  # a decoder d -> V: only its input axis was widened
            elif role == "head_linear" and t.ndim == 1 and owner.out_features != owner.in_features:
                axes = []
            else:
                axes = list(range(t.ndim))
            for axis in axes:
                size = t.shape[axis]
                if size % k:
                    raise ValueError(f"parameter {name!r}: axis {axis} of size {size} is not a multiple of k={k}")
                x = t.movedim(axis, -1)
                if role == "qk" and axis == 0 and pairwise:
                    x = x.reshape(*x.shape[:-1], size // (2 * k), k, 2).movedim(-2, -1)  # (..., pairs, 2, k)
                else:
                    x = x.reshape(*x.shape[:-1], size // k, k)
                diffs.append((x - x[..., :1]).abs().max())
    return float(torch.stack(diffs).max()) if diffs else 0.0
