"""Parameter-efficient fine-tuning of a frozen TinyTransformer, and what back-propagation has to keep in memory.

Serves ladder-side-tuning (kexue.fm/archives/9138): ``SavedTensorMeter`` (the bytes autograd saves for the backward
pass), ``Adapter``/``with_adapters`` (Houlsby et al. 2019, one adapter after each chosen block), ``PromptTuned``
(trainable prompt vectors before the input, Lester et al. 2021), ``LadderSideNetwork`` (Sung, Cho & Bansal 2022, in
Su's variant ``s <- block_i(s) + proj_{i+1}(h_tap)`` or the paper's gate), and exact parameter counts of BERT and of
Su's LST-CLUE ladder. Each wrapper freezes the backbone it receives and trains only its own parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .._checks import check_int
from .blocks import TransformerBlock, init_weights, make_norm
from .model import TinyTransformer

__all__ = ["freeze", "count_params", "SavedTensorMeter", "Adapter", "with_adapters", "AdaptedModel", "PromptTuned",
           "LadderSideNetwork", "bert_layer_params", "bert_param_count", "ladder_param_count"]


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and switch to ``eval()`` (no dropout); returns ``module``."""
    module.requires_grad_(False)
    return module.eval()


def count_params(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (distinct) parameters, only those with ``requires_grad`` if ``trainable_only``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class SavedTensorMeter:
    """``with SavedTensorMeter(exclude=model.parameters()) as m: loss = f(x)`` counts what autograd saves for backward.

    ``m.bytes``/``m.count``: ``numel * element_size`` and number of every saved tensor whose ``data_ptr()`` is not that
    of an excluded tensor (pass the parameters: they are saved by reference and cost no new memory; their bytes go to
    ``m.param_bytes``). A tensor saved twice is counted twice in ``m.bytes`` (e.g. a block's normalised input, saved by
    each of the q, k and v projections). ``m.unique_bytes`` counts each underlying storage once, at its full size
    (``untyped_storage().nbytes()``), which is what the saved tensors actually keep alive. Both are proxies of
    activation memory ("saved activations"), not peak memory: allocator overhead, gradients and optimiser states are
    not included.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        exclude = list(exclude)
        if any(not isinstance(t, torch.Tensor) for t in exclude):
            raise TypeError("exclude must be an iterable of tensors (e.g. model.parameters())")
        self._excluded = {t.data_ptr() for t in exclude}
        self._excluded_storages = {t.untyped_storage().data_ptr() for t in exclude}
        self.bytes = 0
        self.count = 0
        self.param_bytes = 0
        self._storages: dict[int, int] = {}
        self._ctx = None

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        size = t.numel() * t.element_size()
        if t.data_ptr() in self._excluded:
            self.param_bytes += size
        else:
            self.bytes += size
            self.count += 1
            storage = t.untyped_storage()
            if storage.data_ptr() not in self._excluded_storages:
                self._storages[storage.data_ptr()] = max(self._storages.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    @property
    def unique_bytes(self) -> int:
        """Bytes of the distinct storages behind the saved (non-excluded) tensors, each counted once."""
        return sum(self._storages.values())

    @property
    def unique_megabytes(self) -> float:
        """``unique_bytes / 2**20``."""
        return self.unique_bytes / 2**20

    def __enter__(self) -> SavedTensorMeter:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)

    @property
    def megabytes(self) -> float:
        """``bytes / 2**20``."""
        return self.bytes / 2**20


class Adapter(nn.Module):
    """``x + up(gelu(down(x)))`` with a ``bottleneck``-wide hidden layer; ``up`` starts at zero (the identity)."""

    def __init__(self, d_model: int, bottleneck: int = 8) -> None:
        super().__init__()
        for name, v in (("d_model", d_model), ("bottleneck", bottleneck)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.down = nn.Linear(d_model, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _new_head(d: int, n_out: int | None) -> nn.Module | None:
    if n_out is None:
        return None
    return nn.Linear(d, check_int("n_out", n_out))


def _check_backbone(backbone: object) -> TinyTransformer:
    if not isinstance(backbone, TinyTransformer):
        raise TypeError(f"backbone must be a TinyTransformer, got {type(backbone).__name__}")
    return backbone


class AdaptedModel(nn.Module):
    """A frozen backbone with an ``Adapter`` after each block in ``adapted`` and an optional new head (see ``with_adapters``)."""

    def __init__(self, backbone: TinyTransformer, adapted: list[int], bottleneck: int = 8, n_out: int | None = None) -> None:
        super().__init__()
        self.backbone = freeze(_check_backbone(backbone))
        self.adapters = nn.ModuleDict({str(i): Adapter(backbone.cfg.d_model, bottleneck) for i in adapted})
        self.new_head = _new_head(backbone.cfg.d_model, n_out)

    def forward(self, inputs: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        bb = self.backbone
        x = bb.embed_inputs(inputs, positions)
        for i, block in enumerate(bb.blocks):
            x = block(x, mask=mask, positions=positions)
            if str(i) in self.adapters:
                x = self.adapters[str(i)](x)
        h = bb.final_norm(x)
        return self.new_head(h) if self.new_head is not None else bb.head(h)


def with_adapters(backbone: TinyTransformer, positions: str = "all", *, bottleneck: int = 8, n_out: int | None = None) -> AdaptedModel:
    """Adapters after every block (``"all"``), the last block only (``"top"``) or the first only (``"bottom"``).

    The backbone is frozen; ``n_out`` adds a new trainable token head on the final hidden state (else the frozen
    backbone head is used).
    """
    L = len(_check_backbone(backbone).blocks)
    where = {"all": list(range(L)), "top": [L - 1], "bottom": [0]}
    if positions not in where:
        raise ValueError(f"positions must be one of {tuple(where)}, got {positions!r}")
    return AdaptedModel(backbone, where[positions], bottleneck, n_out)


class PromptTuned(nn.Module):
    """``n_prompt`` trainable vectors placed before the embedded input of a frozen backbone (prompt tuning).

    The prompt positions are dropped from the output; ``n_out`` adds a new trainable head.
    """

    def __init__(self, backbone: TinyTransformer, n_prompt: int = 4, *, n_out: int | None = None, seed: int = 0) -> None:
        super().__init__()
        if isinstance(n_prompt, bool) or not isinstance(n_prompt, int) or n_prompt < 1:
            raise ValueError(f"n_prompt must be a positive int, got {n_prompt!r}")
        self.backbone = freeze(_check_backbone(backbone))
        g = torch.Generator().manual_seed(seed)
        self.prompt = nn.Parameter(0.02 * torch.randn(n_prompt, backbone.cfg.d_model, generator=g))
        self.new_head = _new_head(backbone.cfg.d_model, n_out)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        x = bb.embed_inputs(inputs)
        p = self.prompt.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat([p, x], dim=1)
        for block in bb.blocks:
            x = block(x)
        h = bb.final_norm(x[:, self.prompt.shape[0]:])
        return self.new_head(h) if self.new_head is not None else bb.head(h)


class LadderSideNetwork(nn.Module):
    """A small side network fed by the frozen backbone's hidden states (Ladder Side-Tuning).

    The backbone runs under ``torch.no_grad()`` in eval mode (``return_hidden=True``); ``taps`` index its hidden states
    (0 = the embedding output, l = block l's output), ``n_side_layers + 1`` of them (``None``: evenly spaced from 0 to
    L). With side width ``d_s = d_model / reduction`` and bias-free projections ``proj_i: d_model -> d_s``:
    ``s = proj_0(h_{tap_0})``, then for each side block i: ``s = block_i(s) + proj_{i+1}(h_{tap_{i+1}})`` (``mix="add"``,
    Su's LST-CLUE) or ``s = mu_i block_i(s) + (1 - mu_i) proj_{i+1}(h)`` with ``mu_i = sigmoid(gate_i)`` (``"gate"``,
    the paper's form; ``gate_i`` starts at 0). Side blocks use the backbone's ``BlockConfig`` at width ``d_s``
    (``n_heads`` kept if it divides ``d_s``, else 1); then a final norm if Pre-LN and a ``head`` ("token" or "cls")
    with ``n_out`` outputs (default: the backbone's vocabulary).
    """

    def __init__(self, backbone: TinyTransformer, *, reduction: int = 4, n_side_layers: int = 2, taps: list[int] | None = None,
                 mix: str = "add", head: str = "token", n_out: int | None = None, seed: int = 0) -> None:
        super().__init__()
        self.backbone = freeze(_check_backbone(backbone))
        cfg, L = backbone.cfg, len(backbone.blocks)
        for name, v in (("reduction", reduction), ("n_side_layers", n_side_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if cfg.d_model % reduction:
            raise ValueError(f"reduction ({reduction}) must divide d_model ({cfg.d_model})")
        if mix not in ("add", "gate"):
            raise ValueError(f"mix must be 'add' or 'gate', got {mix!r}")
        if head not in ("token", "cls"):
            raise ValueError(f"head must be 'token' or 'cls', got {head!r}")
        if taps is None:
            taps = [int(t) for t in np.round(np.linspace(0, L, n_side_layers + 1))]
        taps = list(taps)
        if len(taps) != n_side_layers + 1:
            raise ValueError(f"taps must have n_side_layers + 1 = {n_side_layers + 1} entries, got {len(taps)}")
        if any(not isinstance(t, (int, np.integer)) or not 0 <= t <= L for t in taps):
            raise ValueError(f"taps must be hidden-state indices in [0, {L}], got {taps}")
        n_out = backbone.vocab_size if n_out is None else n_out
        if n_out is None:
            raise ValueError("n_out is needed when the backbone has no vocabulary")
        d_s = cfg.d_model // reduction
        heads = cfg.n_heads if d_s % cfg.n_heads == 0 else 1
        side_cfg = dataclasses.replace(cfg, d_model=d_s, n_heads=heads, d_head=None, n_kv_heads=None, d_ff=None, rope_freqs=None)
        g = torch.Generator().manual_seed(seed)
        self.taps, self.mix, self.head_kind, self.side_cfg = taps, mix, head, side_cfg
        self.proj = nn.ModuleList(nn.Linear(cfg.d_model, d_s, bias=False) for _ in taps)
        init_weights(self.proj, side_cfg, g)
        self.side_blocks = nn.ModuleList(init_weights(TransformerBlock(side_cfg), side_cfg, g) for _ in range(n_side_layers))
        self.gates = nn.Parameter(torch.zeros(n_side_layers)) if mix == "gate" else None
        self.final_norm = make_norm(side_cfg) if side_cfg.norm_position == "pre" else nn.Identity()
        self.head = init_weights(nn.Linear(d_s, check_int("n_out", n_out)), side_cfg, g)

    def forward(self, inputs: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
        with torch.no_grad():
            self.backbone.eval()
            _, hidden = self.backbone(inputs, mask=mask, positions=positions, return_hidden=True)
        s = self.proj[0](hidden[self.taps[0]])
        for i, block in enumerate(self.side_blocks):
            h = self.proj[i + 1](hidden[self.taps[i + 1]])
            if self.gates is None:
                s = block(s, mask=mask, positions=positions) + h
            else:
                mu = torch.sigmoid(self.gates[i])
                s = mu * block(s, mask=mask, positions=positions) + (1 - mu) * h
        s = self.final_norm(s)
        return self.head(s[:, 0] if self.head_kind == "cls" else s)


def bert_layer_params(hidden: int, ffn: int) -> int:
    """One BERT layer: ``4h^2 + 2hf + 9h + f`` (Q, K, V, O with biases; FFN with biases; two LayerNorms)."""
    h, f = check_int("hidden", hidden), check_int("ffn", ffn)
    return 4 * h * h + 2 * h * f + 9 * h + f


def bert_param_count(vocab: int, max_pos: int, hidden: int, ffn: int, layers: int, type_vocab: int = 2, pooler: bool = True) -> int:
    """BERT's parameters: ``(V + P_pos + T) h + 2h`` (embeddings, embedding LayerNorm) ``+ L P(h, f)`` ``+ h^2 + h`` (pooler)."""
    V, P, T, L = (check_int(n, v) for n, v in (("vocab", vocab), ("max_pos", max_pos), ("type_vocab", type_vocab), ("layers", layers)))
    h = check_int("hidden", hidden)
    return (V + P + T) * h + 2 * h + L * bert_layer_params(h, ffn) + (h * h + h if pooler else 0)


def ladder_param_count(backbone_hidden: int, side_hidden: int = 128, side_ffn: int = 512, side_layers: int = 4, n_taps: int = 5) -> int:
    """Su's LST-CLUE ladder: ``side_layers`` BERT layers of width ``side_hidden`` plus ``n_taps`` bias-free projections."""
    hb, hs, k = (check_int(n, v) for n, v in (("backbone_hidden", backbone_hidden), ("side_hidden", side_hidden), ("n_taps", n_taps)))
    return check_int("side_layers", side_layers) * bert_layer_params(hs, side_ffn) + k * hs * hb
