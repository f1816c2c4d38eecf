"""TinyTransformer: embeddings, a stack of TransformerBlocks, an optional final norm and a head.

Heads: ``"none"`` (hidden states), ``"lm"``/``"token"`` (per-token logits; tied to the embedding, ``h E^T + b``, when
``tie_embeddings`` and there is a vocabulary), ``"mlm"`` (BERT's head: dense, activation, LayerNorm, tied decoder
plus a vocabulary bias) and ``"cls"`` (a Linear on position 0). Serves the training part and univae-attention-masks.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .._checks import check_int
from .blocks import TransformerBlock, init_weights, make_activation, make_norm
from .config import BlockConfig

__all__ = ["TinyTransformer", "MLMHead", "HEADS"]

HEADS = ("none", "lm", "token", "mlm", "cls")


class MLMHead(nn.Module):
    """BERT's masked-LM head: ``LayerNorm(act(h W_dense + b)) E^T + b_vocab`` (``decoder.weight`` is ``E`` when tied)."""

    def __init__(self, cfg: BlockConfig, n_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = make_activation(cfg.activation)
        self.norm = make_norm(cfg)
        self.decoder = nn.Linear(cfg.d_model, n_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(h))))


class TinyTransformer(nn.Module):
    """``n_layers`` TransformerBlocks of one ``BlockConfig`` with embeddings and a head (spec "Shared component").

    With ``vocab_size=None`` the input is a float tensor ``(B, n, d_model)``; otherwise integer ids ``(B, n)``,
    embedded with ``N(0, embed_std^2)`` and (``positional="learned"``) learned positions ``N(0, pos_std^2)``;
    ``positional="none"`` adds none (use ``cfg.rope``). ``embed_norm`` applies a norm after embedding + position
    (BERT). ``final_norm=None`` means: one iff ``cfg.norm_position == "pre"``. Blocks are initialised by
    ``init_weights(block, cfg)``; ``seed`` (optional) makes the whole initialisation reproducible on its own.
    """

    def __init__(self, cfg: BlockConfig, n_layers: int, *, vocab_size: int | None = None, max_len: int = 128,
                 head: str = "none", n_classes: int | None = None, final_norm: bool | None = None,
                 embed_norm: bool = False, tie_embeddings: bool = True, positional: str = "learned",
                 embed_std: float = 1.0, pos_std: float = 0.1, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(cfg, BlockConfig):
            raise TypeError(f"cfg must be a BlockConfig, got {type(cfg).__name__}")
        check_int("n_layers", n_layers, 0)
        check_int("max_len", max_len)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if positional not in ("learned", "none"):
            raise ValueError(f"positional must be 'learned' or 'none', got {positional!r}")
        if vocab_size is not None:
            check_int("vocab_size", vocab_size)
        if n_classes is not None:
            check_int("n_classes", n_classes)
        if head == "cls" and n_classes is None:
            raise ValueError("head='cls' needs n_classes")
        if head in ("lm", "token", "mlm") and vocab_size is None and n_classes is None:
            raise ValueError(f"head={head!r} needs vocab_size or n_classes")
        for name, std in (("embed_std", embed_std), ("pos_std", pos_std)):
            if not (isinstance(std, (int, float)) and 0 <= std < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {std!r}")
        self.cfg, self.n_layers, self.vocab_size, self.max_len, self.head_kind = cfg, n_layers, vocab_size, max_len, head
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        d = cfg.d_model
        self.embed = nn.Embedding(vocab_size, d) if vocab_size is not None else None
        self.pos = nn.Embedding(max_len, d) if positional == "learned" else None
        with torch.no_grad():
            if self.embed is not None:
                self.embed.weight.normal_(0.0, embed_std, generator=gen)
            if self.pos is not None:
                self.pos.weight.normal_(0.0, pos_std, generator=gen)
        self.embed_norm = make_norm(cfg) if embed_norm else nn.Identity()
        self.blocks = nn.ModuleList(init_weights(TransformerBlock(cfg), cfg, gen) for _ in range(n_layers))
        use_final = cfg.norm_position == "pre" if final_norm is None else final_norm
        self.final_norm = make_norm(cfg) if use_final else nn.Identity()
        n_out = n_classes if n_classes is not None else vocab_size
        tied = tie_embeddings and self.embed is not None and n_classes is None
        if head == "none":
            self.head = nn.Identity()
        elif head == "mlm":
            self.head = init_weights(MLMHead(cfg, n_out), cfg, gen)
            if tied:
                self.head.decoder.weight = self.embed.weight
        else:
            self.head = init_weights(nn.Linear(d, n_out), cfg, gen)
            if tied and head in ("lm", "token"):
                self.head.weight = self.embed.weight
        self.tied = tied and head in ("lm", "token", "mlm")

    def embed_inputs(self, inputs: torch.Tensor, positions=None) -> torch.Tensor:
        """The block-0 input: embedding (+ learned position) (+ embed_norm); float inputs pass through the same path."""
        if self.embed is not None:
            if inputs.dtype not in (torch.int64, torch.int32) or inputs.ndim != 2:
                raise TypeError(f"inputs must be integer ids (B, n) for a model with a vocabulary, got {inputs.dtype} {tuple(inputs.shape)}")
            x = self.embed(inputs)
        else:
            if not inputs.is_floating_point() or inputs.ndim != 3 or inputs.shape[-1] != self.cfg.d_model:
                raise TypeError(f"inputs must be a float tensor (B, n, {self.cfg.d_model}) without a vocabulary, "
                                f"got {inputs.dtype} {tuple(inputs.shape)}")
            x = inputs
        n = x.shape[1]
        if self.pos is not None:
            if n > self.max_len:
                raise ValueError(f"sequence length {n} exceeds max_len {self.max_len}")
            idx = torch.arange(n, device=x.device) if positions is None else torch.as_tensor(positions, device=x.device).long()
            x = x + self.pos(idx)
        return self.embed_norm(x)

    def forward(self, inputs: torch.Tensor, mask=None, positions=None, skip_layers: Iterable[int] = (),
                return_hidden: bool = False):
        """``out`` or ``(out, hidden)``; ``hidden`` has ``n_layers + 1`` states (block-0 input, then each block's output).

        A layer in ``skip_layers`` is skipped (its output repeats its input). ``mask`` goes to every block.
        """
        skip = set(skip_layers)
        bad = [i for i in skip if not (isinstance(i, int) and 0 <= i < self.n_layers)]
        if bad:
            raise ValueError(f"skip_layers must be layer indices in [0, {self.n_layers}), got {bad}")
        x = self.embed_inputs(inputs, positions)
        hidden = [x]
        for i, block in enumerate(self.blocks):
            if i not in skip:
                x = block(x, mask=mask, positions=positions)
            hidden.append(x)
        h = self.final_norm(x)
        out = self.head(h[:, 0]) if self.head_kind == "cls" else self.head(h)
        return (out, hidden) if return_hidden else out
