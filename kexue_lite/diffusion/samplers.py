"""SDE and ODE samplers: Euler–Maruyama for the forward SDE ``dx = f_t x dt + g_t dw`` and the reverse SDE
``dx = [f_t x - g_t^2 score] dt + g_t dw``, the probability-flow ODE velocity ``f_t x - g_t^2 score / 2`` and an
Euler/Heun/RK4 integrator for ``dx/dt = v(x, t)``.

Serves notebooks sde-framework (kexue.fm/archives/9209; Song et al., arXiv:2011.13456) and rectified-flow
(archives/9497). Time runs from ``t = 0`` (data) to ``t = 1`` (noise); results stay on the device of ``x``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._helpers import _callable, _check_steps, _randn, _real, _tensor
from .schedules import Schedule

__all__ = ["forward_sde", "reverse_sde_sample", "pf_ode_velocity", "ode_sample"]


def _schedule(schedule: object) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    return schedule


def forward_sde(x0: torch.Tensor, schedule: Schedule, n_steps: int, t_end: float = 1.0, generator=None, return_path: bool = False):
    """Euler–Maruyama for ``dx = f_t x dt + g_t dw`` from ``t = 0`` to ``t_end`` in ``(0, 1]``; returns ``x_{t_end}``
    (and the path)."""
    x0, schedule, n_steps = _tensor("x0", x0), _schedule(schedule), _check_steps(n_steps)
    t_end = _real("t_end", t_end)
    if not 0 < t_end <= 1:
        raise ValueError(f"t_end must lie in (0, 1], got {t_end}")
    ts = np.linspace(0, t_end, n_steps + 1)[:-1]
    f, g2 = schedule.f(ts).tolist(), schedule.g2(ts).tolist()
    x, h = x0.to(torch.float64).clone(), t_end / n_steps
    path = [x.clone()]
    for i in range(n_steps):
        x = x + f[i] * x * h + math.sqrt(g2[i] * h) * _randn(x.shape, generator, x.device)
        if return_path:
            path.append(x.clone())
    return (x, torch.stack(path)) if return_path else x


def reverse_sde_sample(score_fn, schedule: Schedule, x_init: torch.Tensor, n_steps: int, t_start: float = 1.0, t_end: float = 1e-3,
                       generator=None, return_path: bool = False):
    """Euler–Maruyama for the reverse SDE ``dx = [f_t x - g_t^2 score(x, t)] dt + g_t dw`` from ``t_start`` down to
    ``t_end`` (``0 <= t_end < t_start <= 1``)."""
    _callable("score_fn", score_fn)
    schedule, x_init, n_steps = _schedule(schedule), _tensor("x_init", x_init), _check_steps(n_steps)
    t_start, t_end = _real("t_start", t_start), _real("t_end", t_end)
    if not t_start > t_end:
        raise ValueError(f"t_start must exceed t_end, got {t_start} <= {t_end}")
    if not (0 <= t_end and t_start <= 1):
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start = {t_start}, t_end = {t_end}")
    ts = torch.linspace(t_start, t_end, n_steps + 1, dtype=torch.float64)
    h = (t_start - t_end) / n_steps
    x = x_init.to(torch.float64).clone()
    path = [x.clone()]
    for i in range(n_steps):
        t = float(ts[i])
        f, g2 = schedule.f(t), schedule.g2(t)
        x = x - (f * x - g2 * score_fn(x, t)) * h + math.sqrt(g2 * h) * _randn(x.shape, generator, x.device)
        if return_path:
            path.append(x.clone())
    return (x, torch.stack(path)) if return_path else x


def pf_ode_velocity(score_fn, schedule: Schedule):
    """The probability-flow ODE's velocity ``f_t x - g_t^2 score(x, t) / 2``."""
    _callable("score_fn", score_fn)
    schedule = _schedule(schedule)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return schedule.f(t) * x - 0.5 * schedule.g2(t) * score_fn(x, t)
    return velocity


def ode_sample(velocity_fn, x_init: torch.Tensor, n_steps: int, t_start: float = 1.0, t_end: float = 0.0, method: str = "euler",
               return_path: bool = False):
    """Integrate ``dx/dt = v(x, t)`` from ``t_start`` to ``t_end`` (finite, distinct) with ``n_steps`` Euler, Heun or
    RK4 steps."""
    _callable("velocity_fn", velocity_fn)
    x_init, n_steps = _tensor("x_init", x_init), _check_steps(n_steps)
    if method not in ("euler", "heun", "rk4"):
        raise ValueError(f"method must be 'euler', 'heun' or 'rk4', got {method!r}")
    t_start, t_end = _real("t_start", t_start), _real("t_end", t_end)
    if t_start == t_end:
        raise ValueError(f"t_start and t_end must differ, got {t_start} for both")
    ts = np.linspace(t_start, t_end, n_steps + 1)
    x = x_init.to(torch.float64).clone()
    path = [x.clone()]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        h = t1 - t0
        k1 = velocity_fn(x, t0)
        if method == "euler":
            x = x + h * k1
        elif method == "heun":
            x = x + h / 2 * (k1 + velocity_fn(x + h * k1, t1))
        else:
            k2 = velocity_fn(x + h / 2 * k1, t0 + h / 2)
            k3 = velocity_fn(x + h / 2 * k2, t0 + h / 2)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + velocity_fn(x + h * k3, t1))
        if return_path:
            path.append(x.clone())
    return (x, torch.stack(path)) if return_path else x
