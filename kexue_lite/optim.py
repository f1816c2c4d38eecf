"""Adam, AdamW and SGD, and gradient clipping, written out with ``torch.optim``'s update formulas.

Why not ``torch.optim``: constructing any of its optimisers (and calling ``clip_grad_norm_``) imports
``torch._dynamo``, about 1.4 s of CPU per notebook on the 2-core build machine, more than many of the notebooks'
training loops. These are the single-tensor algorithms of ``torch.optim`` with the same operations in the same order,
so the parameters they produce are bit-for-bit those of ``torch.optim`` (checked in ``tests/test_optim.py``). Complex
parameters are updated as pairs of real numbers, as ``torch.optim`` does. Used by ``kexue_lite.training.train``, the
diffusion trainers and the Fourier density fits.

Adam: ``m <- lerp(m, g, 1 - b1)``, ``v <- b2 v + (1 - b2) g^2``,
``p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; weight decay adds ``wd p`` to ``g`` (Adam, SGD)
or multiplies ``p`` by ``1 - lr wd`` first (AdamW).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "clip_grad_norm"]


class Optimizer:
    """``kind`` in ``("adam", "adamw", "sgd")`` on ``params``; ``step(lr=None)`` uses ``self.lr`` unless given one."""

    KINDS = ("adam", "adamw", "sgd")

    def __init__(self, params: Iterable[torch.Tensor], kind: str = "adam", lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"optimizer must be one of {self.KINDS}, got {kind!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if not (eps > 0 and weight_decay >= 0):
            raise ValueError(f"eps must be > 0 and weight_decay >= 0, got {eps!r}, {weight_decay!r}")
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty")
        self.kind, self.lr, self.betas, self.eps, self.weight_decay = kind, float(lr), betas, eps, weight_decay
        self.t = 0
        self.state = [None if kind == "sgd" else (torch.zeros_like(_real(p)), torch.zeros_like(_real(p))) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.betas
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            g, p = _real(p.grad), _real(p)
            if self.kind == "adamw":
                p.mul_(1 - lr * self.weight_decay)
            elif self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.kind == "sgd":
                p.add_(g, alpha=-lr)
                continue
            m, v = st
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / (1 - b2**self.t) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / (1 - b1**self.t))


def _real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def Adam(params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """``torch.optim.Adam``'s update (single-tensor form)."""
    return Optimizer(params, "adam", lr, betas, eps, weight_decay)


def AdamW(params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> Optimizer:
    """``torch.optim.AdamW``'s update (decoupled weight decay)."""
    return Optimizer(params, "adamw", lr, betas, eps, weight_decay)


def SGD(params, lr: float, weight_decay: float = 0.0) -> Optimizer:
    """Plain SGD, ``p <- p - lr (g + wd p)`` (no momentum)."""
    return Optimizer(params, "sgd", lr, weight_decay=weight_decay)


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> float:
    """Scale all gradients by ``min(1, max_norm / (||g|| + 1e-6))`` (the global 2-norm); returns ``||g||`` before clipping."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.sqrt(sum(_real(g).double().pow(2).sum() for g in grads)).item() if grads else 0.0
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return total
