"""Small float64 networks shared by the trainers: the MLP, a residual MLP on a fixed base map (starts exactly as the
base) and a call with frozen parameters (gradients reach the input only).

Serves notebooks sde-framework (kexue.fm/archives/9209), rectified-flow (9497), score-identity-distillation (10085)
and idempotent-generative-network (9969).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._helpers import _callable, _int

__all__ = ["make_mlp", "ResidualOnBase", "frozen_call"]


def make_mlp(in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, act: str = "silu",
             device: str | torch.device | None = None) -> torch.nn.Sequential:
    """A small MLP (float64, on ``device``): ``depth >= 0`` hidden layers of width ``hidden``."""
    acts = {"silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    if act not in acts:
        raise ValueError(f"act must be one of {tuple(acts)}, got {act!r}")
    in_dim, out_dim, hidden = _int("in_dim", in_dim), _int("out_dim", out_dim), _int("hidden", hidden)
    depth = _int("depth", depth, minimum=0)
    layers, width = [], in_dim
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden, dtype=torch.float64, device=device), acts[act]()]
        width = hidden
    layers.append(torch.nn.Linear(width, out_dim, dtype=torch.float64, device=device))
    return torch.nn.Sequential(*layers)


class ResidualOnBase(torch.nn.Module):
    """``base(x) + mlp(x)`` with the MLP's last layer zero-initialised: starts exactly as ``base``."""

    def __init__(self, base: Callable[[torch.Tensor], torch.Tensor], in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2,
                 device: str | torch.device | None = None):
        super().__init__()
        _callable("base", base)
        self.base = base
        self.mlp = make_mlp(in_dim, out_dim, hidden=hidden, depth=depth, device=device)
        torch.nn.init.zeros_(self.mlp[-1].weight)
        torch.nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.mlp(x)


def frozen_call(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with detached parameters (``torch.func.functional_call``): gradients reach ``x`` only."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    params = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))
