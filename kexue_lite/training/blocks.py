"""The shared block: norms, FeedForward, TransformerBlock (pre, post or no norm; DeepNorm alpha and branch scale), init.

Each sublayer ``F`` (the mixer, then the FFN) with its norm ``N`` computes (curriculum "Shared component"):
pre ``x <- alpha x + eps F(N(x))``; post ``x <- N(alpha x + eps F(x))``; none ``x <- alpha x + eps F(x)``,
with ``alpha = cfg.alpha`` and ``eps = cfg.branch_scale``. Serves every notebook of the training part and
univae-attention-masks (kexue.fm/archives/8475).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..attention.modules import GatedAttentionUnit, MultiHeadAttention
from .config import BlockConfig

__all__ = ["RMSNorm", "make_norm", "make_activation", "FeedForward", "TransformerBlock", "init_weights", "GAINED"]

GAINED = ("v_proj", "o_proj", "fc1", "fc2", "uv_proj")  # DeepNet's beta multiplies these modules' init std


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension (no centring, no bias)."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg: BlockConfig, d: int | None = None) -> nn.Module:
    """The configured norm over ``d`` (default ``cfg.d_model``) features: LayerNorm (weight and bias) or RMSNorm."""
    d = cfg.d_model if d is None else d
    return nn.LayerNorm(d, eps=cfg.norm_eps) if cfg.norm_type == "layernorm" else RMSNorm(d, cfg.norm_eps)


def make_activation(name: str) -> nn.Module:
    """``gelu`` (the erf form), ``relu``, ``swish`` (= SiLU) or ``identity``."""
    acts = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "identity": nn.Identity}
    if name not in acts:
        raise ValueError(f"activation must be one of {tuple(acts)}, got {name!r}")
    return acts[name]()


class FeedForward(nn.Module):
    """``act(x W_1 + b_1) W_2 + b_2`` with ``fc1`` (d -> d_ff) and ``fc2`` (d_ff -> d)."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.act = make_activation(cfg.activation)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """One block: the mixer sublayer (``mixer``: MHA, GAU or absent) then the FFN sublayer (``ffn``, or absent).

    ``norm1``/``norm2`` belong to the mixer/FFN sublayer (``nn.Identity`` when ``norm_position="none"`` or when the
    sublayer is absent). ``forward(x: (B, n, d), mask=None, positions=None) -> (B, n, d)``; ``mask`` and
    ``positions`` go to the mixer.
    """

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        if not isinstance(cfg, BlockConfig):
            raise TypeError(f"cfg must be a BlockConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.mixer = {"mha": MultiHeadAttention, "gau": GatedAttentionUnit}[cfg.mixer](cfg) if cfg.mixer != "none" else None
        self.ffn = FeedForward(cfg) if cfg.ffn else None
        normed = cfg.norm_position != "none"
        self.norm1 = make_norm(cfg) if normed and self.mixer is not None else nn.Identity()
        self.norm2 = make_norm(cfg) if normed and self.ffn is not None else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    def _sublayer(self, x: torch.Tensor, branch, norm: nn.Module) -> torch.Tensor:
        a, eps = self.cfg.alpha, self.cfg.branch_scale
        if self.cfg.norm_position == "pre":
            return a * x + eps * self.drop(branch(norm(x)))
        if self.cfg.norm_position == "post":
            return norm(a * x + eps * self.drop(branch(x)))
        return a * x + eps * self.drop(branch(x))

    def forward(self, x: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        if self.mixer is not None:
            x = self._sublayer(x, lambda h: self.mixer(h, mask=mask, positions=positions), self.norm1)
        if self.ffn is not None:
            x = self._sublayer(x, self.ffn, self.norm2)
        return x


def _std(cfg: BlockConfig, fan_in: int, fan_out: int) -> float:
    return {"xavier": math.sqrt(2.0 / (fan_in + fan_out)), "lecun": math.sqrt(1.0 / fan_in),
            "he": math.sqrt(2.0 / fan_in), "normal": cfg.init_std}[cfg.init]


@torch.no_grad()
def init_weights(module: nn.Module, cfg: BlockConfig, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every ``nn.Linear`` inside ``module`` from ``N(0, std^2)`` per ``cfg.init``; returns ``module``.

    std: xavier ``sqrt(2/(fan_in+fan_out))``, lecun ``sqrt(1/fan_in)``, he ``sqrt(2/fan_in)``, normal ``init_std``;
    multiplied by ``init_gain`` for modules named ``v_proj, o_proj, fc1, fc2, uv_proj`` (DeepNet's beta). Biases 0,
    norm weights 1 (biases 0), GAU ``qk_scale`` ones or ``N(0, 0.02^2)`` (``gau_qk_init``), ``qk_offset`` 0.
    ``init="torch"`` keeps PyTorch's default Linear init. Embeddings are left alone.
    """
    if not isinstance(cfg, BlockConfig):
        raise TypeError(f"cfg must be a BlockConfig, got {type(cfg).__name__}")
    for name, sub in module.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(sub, nn.Linear) and cfg.init != "torch":
            std = _std(cfg, sub.in_features, sub.out_features) * (cfg.init_gain if leaf in GAINED else 1.0)
            sub.weight.normal_(0.0, std, generator=generator)
            if sub.bias is not None:
                sub.bias.zero_()
        elif isinstance(sub, (nn.LayerNorm, RMSNorm)):
            sub.weight.fill_(1.0)
            if getattr(sub, "bias", None) is not None:
                sub.bias.zero_()
        elif isinstance(sub, GatedAttentionUnit):
            if cfg.gau_qk_init == "ones":
                sub.qk_scale.fill_(1.0)
            else:
                sub.qk_scale.normal_(0.0, 0.02, generator=generator)
            sub.qk_offset.zero_()
    return module
