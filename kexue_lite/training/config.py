"""BlockConfig: the one configuration of the shared tiny Transformer block.

Specified once in the curriculum's "Shared component" (02-attention-and-training) and used by
univae-attention-masks (kexue.fm/archives/8475), why-residuals-deepnet (8994), pre-norm-vs-post-norm (9009),
gau-without-warmup (8990), lossless-widening (8444) and ladder-side-tuning (9138). Validation happens once, in
``__post_init__``, which also fills the defaults that depend on other fields (``d_head``, ``n_kv_heads``, ``d_ff``,
``ffn``), so every module can read them as plain integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_int

__all__ = ["BlockConfig", "MIXERS", "ACTIVATIONS", "NORM_POSITIONS", "NORM_TYPES", "INITS"]

MIXERS = ("mha", "gau", "none")
ACTIVATIONS = ("gelu", "relu", "swish", "identity")
NORM_POSITIONS = ("pre", "post", "none")
NORM_TYPES = ("layernorm", "rmsnorm")
INITS = ("xavier", "lecun", "he", "normal", "torch")


def _positive_float(name: str, value: object, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _choice(name: str, value: object, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value  # type: ignore[return-value]


@dataclass
class BlockConfig:
    """Every switch of the shared block; the defaults are a Pre-LN MHA block with a GELU FFN.

    ``alpha`` weighs the identity path and ``branch_scale`` (epsilon) every branch output:
    pre ``x <- alpha x + eps F(N(x))``, post ``x <- N(alpha x + eps F(x))``, none ``x <- alpha x + eps F(x)``.
    ``init_gain`` (DeepNet's beta) multiplies the init std of ``v_proj, o_proj, fc1, fc2, uv_proj``.
    ``attn_scale``: True -> ``1/sqrt(d_head)``, False -> 1 (T5), a float -> that factor.
    ``rope_freqs``: explicit per-pair frequencies (``d_head/2`` of them, or ``gau_s/2`` for GAU), overriding
    ``rope_base`` (lossless-widening needs repeated frequencies).
    """

    d_model: int = 32
    n_heads: int = 4
    d_head: int | None = None
    n_kv_heads: int | None = None
    d_ff: int | None = None
    mixer: str = "mha"
    ffn: bool | None = None
    activation: str = "gelu"
    norm_position: str = "pre"
    norm_type: str = "layernorm"
    norm_eps: float = 1e-5
    alpha: float = 1.0
    branch_scale: float = 1.0
    init: str = "xavier"
    init_std: float = 0.02
    init_gain: float = 1.0
    bias: bool = True
    attn_scale: bool | float = True
    causal: bool = False
    rope: bool = False
    rope_base: float = 10000.0
    rope_freqs: torch.Tensor | None = None
    gau_s: int = 16
    gau_expansion: int = 2
    gau_qk_init: str = "ones"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model)
        check_int("n_heads", self.n_heads)
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) when d_head is None")
            self.d_head = self.d_model // self.n_heads
        check_int("d_head", self.d_head)
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        check_int("n_kv_heads", self.n_kv_heads)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_int("d_ff", self.d_ff)
        _choice("mixer", self.mixer, MIXERS)
        if self.ffn is None:
            self.ffn = self.mixer == "mha"
        if not isinstance(self.ffn, bool):
            raise TypeError(f"ffn must be a bool or None, got {type(self.ffn).__name__}")
        if self.mixer == "none" and not self.ffn:
            raise ValueError("mixer='none' with ffn=False leaves the block without any sublayer")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("norm_position", self.norm_position, NORM_POSITIONS)
        _choice("norm_type", self.norm_type, NORM_TYPES)
        _choice("init", self.init, INITS)
        _choice("gau_qk_init", self.gau_qk_init, ("ones", "normal"))
        _positive_float("norm_eps", self.norm_eps)
        _positive_float("init_std", self.init_std)
        _positive_float("init_gain", self.init_gain, allow_zero=True)
        _positive_float("rope_base", self.rope_base)
        for name in ("alpha", "branch_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.attn_scale, bool):
            _positive_float("attn_scale", self.attn_scale)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_int("gau_s", self.gau_s)
        check_int("gau_expansion", self.gau_expansion)
        rope_dim = self.gau_s if self.mixer == "gau" else self.d_head
        if self.rope:
            if rope_dim % 2:
                raise ValueError(f"rope needs an even {'gau_s' if self.mixer == 'gau' else 'd_head'}, got {rope_dim}")
            if self.rope_freqs is not None:
                freqs = torch.as_tensor(self.rope_freqs)
                if freqs.shape != (rope_dim // 2,) or not torch.isfinite(freqs).all():
                    raise ValueError(f"rope_freqs must be {rope_dim // 2} finite frequencies, got shape {tuple(freqs.shape)}")

    @property
    def scale(self) -> float:
        """The softmax scale of the attention logits (``attn_scale`` resolved)."""
        if self.attn_scale is True:
            return float(self.d_head) ** -0.5
        if self.attn_scale is False:
            return 1.0
        return float(self.attn_scale)
