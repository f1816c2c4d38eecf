"""train: a small training loop with linear warmup, returning the loss curve (the training part, univae-attention-masks).

``eta_t = lr * min(1, (t + 1) / warmup)`` (``warmup=0``: constant). The batch function receives one
``torch.Generator`` (CPU, seeded with ``seed``), so a run is reproducible from ``seed`` alone.

The optimisers are :mod:`kexue_lite.optim`'s (``torch.optim``'s formulas without importing ``torch._dynamo``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..optim import Optimizer, clip_grad_norm

__all__ = ["train", "batch_loss"]


def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def batch_loss(model: nn.Module, batch, loss: str | Callable = "token_ce") -> torch.Tensor:
    """The scalar loss of one ``(x, y)`` batch: ``"token_ce"`` (logits ``B x n x V`` vs ``y`` ``B x n``),
    ``"last_ce"`` (``logits[:, -1]`` vs ``y`` ``(B,)``) or a callable ``(model, batch) -> scalar``.
    A tuple ``x`` is unpacked into the model's arguments (e.g. ``(ids, segment_ids)``)."""
    if callable(loss):
        return loss(model, batch)
    x, y = batch
    logits = model(*x) if isinstance(x, (tuple, list)) else model(x)
    if isinstance(logits, tuple):
        logits = logits[0]
    if loss == "token_ce":
        if logits.ndim != 3 or logits.shape[:2] != y.shape:
            raise ValueError(f"token_ce needs logits (B, n, V) and targets (B, n), got {tuple(logits.shape)}, {tuple(y.shape)}")
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    if loss == "last_ce":
        if logits.ndim == 3:
            logits = logits[:, -1]
        return F.cross_entropy(logits, y)
    raise ValueError(f"loss must be 'token_ce', 'last_ce' or a callable, got {loss!r}")


def train(model: nn.Module, batch_fn: Callable[[torch.Generator], tuple], *, steps: int, lr: float, warmup: int = 0,
          loss: str | Callable = "token_ce", optimizer: str = "adam", betas: tuple[float, float] = (0.9, 0.999),
          weight_decay: float = 0.0, grad_clip: float | None = None, seed: int = 0,
          device: str | torch.device | None = None) -> dict:
    """Train ``model`` in place for ``steps`` steps; returns ``dict(loss, lr, seconds, diverged)``.

    ``batch_fn(generator) -> (x, y)`` draws a batch (e.g. ``lambda g: make_batch("sort", 32, 8, 10, g)``).
    ``optimizer``: ``"adam"``, ``"adamw"`` or ``"sgd"``. If the loss becomes non-finite, training stops there:
    ``diverged`` is True and the remaining entries of ``loss`` are NaN (the curve says where it broke).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if not (isinstance(lr, (int, float)) and 0 < lr < float("inf")):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    if not callable(batch_fn):
        raise TypeError("batch_fn must be callable: batch_fn(generator) -> (x, y)")
    if not (callable(loss) or loss in ("token_ce", "last_ce")):
        raise ValueError(f"loss must be 'token_ce', 'last_ce' or a callable, got {loss!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if device is not None:
        model.to(device)
    if optimizer not in Optimizer.KINDS:
        raise ValueError(f"optimizer must be one of {Optimizer.KINDS}, got {optimizer!r}")
    opt = Optimizer(params, optimizer, lr=lr, betas=betas, weight_decay=weight_decay)
    dev = params[0].device
    gen = torch.Generator().manual_seed(seed)
    losses, rates = np.full(steps, np.nan), np.zeros(steps)
    diverged = False
    model.train()
    start = time.perf_counter()
    for t in range(steps):
        rate = lr * min(1.0, (t + 1) / warmup) if warmup else lr
        rates[t] = rate
        value = batch_loss(model, _to(batch_fn(gen), dev), loss)
        if not torch.isfinite(value):
            diverged = True
            break
        opt.zero_grad()
        value.backward()
        if grad_clip is not None:
            clip_grad_norm(params, grad_clip)
        opt.step(rate)
        losses[t] = value.item()
    model.eval()
    return {"loss": losses, "lr": rates, "seconds": time.perf_counter() - start, "diverged": diverged}
