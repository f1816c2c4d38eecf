"""UniAE: one Transformer as a multi-scale (V)AE by attention masks (univae-attention-masks, 8475).

A stack of the shared :class:`~kexue_lite.training.TransformerBlock` reads ``[CLS source ; BOS target]``. The first
``n_independent`` (= k) blocks use the "independent" mask (source and target never see each other); the other L - k
blocks use the UniAE mask (the target sees the source only through the [CLS] slot). Before each of those L - k
blocks the [CLS] vector is squeezed through a bottleneck: ``down`` (d -> d_latent), l2-normalisation (plus fixed-sigma
Gaussian noise for the VAE), ``up`` (d_latent -> d), and the result overwrites the slot. The code of a sentence is the
concatenation of the (L - k) unit vectors, (L - k) * d_latent numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_int
from ..attention.masks import seq2seq_mask

__all__ = ["UniAE", "uniae_target_positions", "uniae_loss", "latent_size"]


def latent_size(n_layers: int, n_independent: int, d_latent: int) -> int:
    """Number of latent numbers, ``(L - k) * d_latent`` (8475, derivation 3); 0 when ``k = L`` (no latent layer)."""
    check_int("n_layers", n_layers)
    check_int("n_independent", n_independent, 0)
    check_int("d_latent", d_latent)
    if n_independent > n_layers:
        raise ValueError(f"n_independent must be <= n_layers = {n_layers}, got {n_independent}")
    return (n_layers - n_independent) * d_latent


def uniae_target_positions(segment_ids: torch.Tensor) -> torch.Tensor:
    """Bool ``(B, n)``: positions ``p`` whose next token is a target token predicted from the target stream
    (``s_p = s_{p+1} = 1``): BOS predicts the first target token, and so on; the last position predicts nothing."""
    if not isinstance(segment_ids, torch.Tensor) or segment_ids.ndim != 2:
        raise ValueError("segment_ids must be a (B, n) tensor")
    out = torch.zeros_like(segment_ids, dtype=torch.bool)
    out[:, :-1] = (segment_ids[:, :-1] == 1) & (segment_ids[:, 1:] == 1)
    return out


class UniAE(nn.Module):
    """UniAE / UniVAE built from the shared TransformerBlock with per-layer masks (8475).

    ``vocab_size`` counts every id, special ones ([CLS], [BOS], padding) included. ``latent="vae"`` adds
    ``noise_std`` Gaussian noise to the unit-norm latent while training (fixed sigma and unit-norm mean: the KL to
    N(0, I) is a constant, so no KL term is needed; the noise uses torch's global generator). ``seed`` seeds the
    initialisation only (torch's global generator is restored afterwards).
    """

    def __init__(self, vocab_size: int, d_model: int = 32, n_heads: int = 4, n_layers: int = 4, n_independent: int = 2,
                 d_latent: int = 4, max_len: int = 64, norm_position: str = "pre", latent: str = "ae",
                 noise_std: float = 0.3, seed: int = 0, *, cls_index: int = 0, d_ff: int | None = None) -> None:
        super().__init__()
        from .blocks import TransformerBlock, init_weights
        from .config import BlockConfig

        check_int("vocab_size", vocab_size, 2)
        check_int("d_model", d_model)
        check_int("n_heads", n_heads)
        check_int("max_len", max_len, 2)
        if latent_size(n_layers, n_independent, d_latent) == 0:
            raise ValueError(f"n_independent must be < n_layers = {n_layers} (a UniAE needs a latent layer), got {n_independent}")
        if latent not in ("ae", "vae"):
            raise ValueError(f"latent must be 'ae' or 'vae', got {latent!r}")
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not 0 <= noise_std < math.inf:
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        check_int("seed", seed, 0)
        check_int("cls_index", cls_index, 0)
        if norm_position not in ("pre", "post", "none"):
            raise ValueError(f"norm_position must be 'pre', 'post' or 'none', got {norm_position!r}")
        self.vocab_size, self.max_len, self.cls_index = vocab_size, max_len, cls_index
        self.n_layers, self.n_independent, self.d_latent = n_layers, n_independent, d_latent
        self.latent, self.noise_std = latent, float(noise_std)
        #: the mask kind of each block: k "independent", then L - k "uniae"
        self.kinds = ["independent"] * n_independent + ["uniae"] * (n_layers - n_independent)
        cfg_kw: dict[str, Any] = dict(d_model=d_model, n_heads=n_heads, norm_position=norm_position)
        if d_ff is not None:
            cfg_kw["d_ff"] = d_ff
        self.cfg = BlockConfig(**cfg_kw)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab_size, d_model)
            self.pos = nn.Embedding(max_len, d_model)
            nn.init.normal_(self.embed.weight, std=1.0)
            nn.init.normal_(self.pos.weight, std=0.1)
            self.blocks = nn.ModuleList(TransformerBlock(self.cfg) for _ in range(n_layers))
            for block in self.blocks:
                init_weights(block, self.cfg)
            m = n_layers - n_independent
            self.down = nn.ModuleList(nn.Linear(d_model, d_latent) for _ in range(m))
            self.up = nn.ModuleList(nn.Linear(d_latent, d_model) for _ in range(m))
            self.final_norm = nn.LayerNorm(d_model) if norm_position == "pre" else nn.Identity()
            self.head = nn.Linear(d_model, vocab_size)
            for lin in [*self.down, *self.up, self.head]:  # Xavier (normal), zero bias
                nn.init.normal_(lin.weight, std=math.sqrt(2 / sum(lin.weight.shape)))
                nn.init.zeros_(lin.bias)

    @property
    def latent_dim(self) -> int:
        """``(L - k) * d_latent``, the size of :meth:`encode`'s output."""
        return latent_size(self.n_layers, self.n_independent, self.d_latent)

    def split_latent(self, z: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """A ``(B, (L-k) d_latent)`` tensor or a list of L - k ``(B, d_latent)`` tensors -> the list."""
        m = self.n_layers - self.n_independent
        if isinstance(z, torch.Tensor):
            if z.ndim != 2 or z.shape[1] != self.latent_dim:
                raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
            return list(z.split(self.d_latent, dim=1))
        z = list(z)
        if len(z) != m or any(not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != self.d_latent for t in z):
            raise ValueError(f"z must be a list of {m} tensors of shape (B, {self.d_latent})")
        return z

    def _check_inputs(self, ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
            raise ValueError("ids must be a (B, n) integer tensor")
        if not 2 <= ids.shape[1] <= self.max_len:
            raise ValueError(f"ids must have 2 to max_len = {self.max_len} positions, got {ids.shape[1]}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size:
            raise ValueError(f"ids must lie in [0, vocab_size = {self.vocab_size})")
        if not isinstance(segment_ids, torch.Tensor):
            raise ValueError("segment_ids must be a tensor")
        if segment_ids.ndim == 1:
            segment_ids = segment_ids.expand(ids.shape[0], -1)
        if segment_ids.shape != ids.shape:
            raise ValueError(f"segment_ids must have the shape of ids {tuple(ids.shape)}, got {tuple(segment_ids.shape)}")
        return segment_ids

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Token plus learned position embeddings, the input of block 0."""
        return self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))[None]

    def hidden(self, x: torch.Tensor, segment_ids: torch.Tensor, z: Any = None, key_valid: torch.Tensor | None = None,
               noise: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks on embeddings ``x`` (B, n, d). Returns the last block's output and the encoder's unit
        latents (one (B, d_latent) per latent layer). A given ``z`` replaces the encoder's latent in the slot."""
        zs = None if z is None else self.split_latent(z)
        masks = {kind: seq2seq_mask(segment_ids, kind, self.cls_index, key_valid).to(x.device) for kind in set(self.kinds)}
        c, mus = self.cls_index, []
        for layer, (block, kind) in enumerate(zip(self.blocks, self.kinds)):
            if layer >= self.n_independent:
                i = layer - self.n_independent
                mu = F.normalize(self.down[i](x[:, c]), dim=-1)
                mus.append(mu)
                zl = mu if zs is None else zs[i].to(x.dtype)
                if noise and zs is None and self.noise_std > 0:
                    zl = zl + self.noise_std * torch.randn_like(zl)
                x = torch.cat([x[:, :c], self.up[i](zl)[:, None], x[:, c + 1:]], dim=1)  # overwrite the [CLS] slot
            x = block(x, mask=masks[kind])
        return x, mus

    def forward(self, ids: torch.Tensor, segment_ids: torch.Tensor, z: Any = None,
                key_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(logits (B, n, vocab), latents)``; noise (VAE) only while training and only when ``z`` is None."""
        segment_ids = self._check_inputs(ids, segment_ids)
        h, mus = self.hidden(self.embed_ids(ids), segment_ids, z, key_valid,
                             noise=self.training and self.latent == "vae")
        return self.head(self.final_norm(h)), mus

    def encode(self, ids: torch.Tensor, segment_ids: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """The code ``(B, (L - k) d_latent)``: the unit latents of all latent layers, concatenated (no noise)."""
        segment_ids = self._check_inputs(ids, segment_ids)
        return torch.cat(self.hidden(self.embed_ids(ids), segment_ids, None, key_valid, noise=False)[1], dim=1)

    @torch.no_grad()
    def decode(self, z: Any, length: int, bos_id: int, source_len: int | None = None) -> torch.Tensor:
        """Greedy decoding of ``length`` tokens from the code ``z`` alone. The source part is a dummy of
        ``source_len`` slots (default ``length + 1``, as in ``[CLS s]``): only its [CLS] slot is read, and that slot
        is overwritten by ``z``; its length still sets the target's positions."""
        check_int("length", length)
        check_int("bos_id", bos_id, 0)
        if bos_id >= self.vocab_size:
            raise ValueError(f"bos_id must be < vocab_size = {self.vocab_size}")
        source_len = length + 1 if source_len is None else check_int("source_len", source_len)
        if source_len + length > self.max_len:
            raise ValueError(f"source_len + length must be <= max_len = {self.max_len}")
        zs = self.split_latent(z)
        B, dev = zs[0].shape[0], zs[0].device
        out = torch.full((B, 1), bos_id, dtype=torch.long, device=dev)
        for _ in range(length):
            ids = torch.cat([torch.full((B, source_len), bos_id, dtype=torch.long, device=dev), out], dim=1)
            seg = torch.cat([torch.zeros(B, source_len, dtype=torch.long, device=dev),
                             torch.ones(B, out.shape[1], dtype=torch.long, device=dev)], dim=1)
            logits, _ = self(ids, seg, z=zs)
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return out[:, 1:]

    @torch.no_grad()
    def reconstruction_accuracy(self, ids: torch.Tensor, segment_ids: torch.Tensor, targets: torch.Tensor) -> float:
        """Teacher-forced accuracy of predicting ``targets`` (B, T) at the target positions (no noise)."""
        segment_ids = self._check_inputs(ids, segment_ids)
        h, _ = self.hidden(self.embed_ids(ids), segment_ids, None, None, noise=False)
        logits = self.head(self.final_norm(h))
        where = uniae_target_positions(segment_ids)
        if not isinstance(targets, torch.Tensor) or targets.ndim != 2 or bool((where.sum(1) != targets.shape[1]).any()):
            raise ValueError(f"targets must be (B, T) with T = the number of predicted target positions, got "
                             f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}")
        pred = logits.argmax(-1)[where].view(targets.shape)
        return float((pred == targets.to(pred.device)).double().mean())


def uniae_loss(model: UniAE, batch: Any) -> torch.Tensor:
    """Cross-entropy on the target only, shifted by one (BOS predicts the first target token, and so on): the loss
    ``train(..., loss=uniae_loss)`` takes with ``make_batch("uniae_copy", ...)``'s ``((ids, segment_ids), targets)``."""
    (ids, segment_ids), _ = batch
    logits, _ = model(ids, segment_ids)
    where = uniae_target_positions(segment_ids.expand_as(ids) if segment_ids.ndim == 1 else segment_ids)
    next_ids = torch.cat([ids[:, 1:], ids[:, :1]], dim=1)  # the token each position predicts
    return F.cross_entropy(logits[where], next_ids[where])
