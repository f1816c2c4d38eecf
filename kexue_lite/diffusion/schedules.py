"""Noise schedules ``(alpha_t, beta_t)`` and their forward-SDE coefficients ``f_t``, ``g_t^2``; DDPM's discrete schedule.

Serves notebooks sde-framework (kexue.fm/archives/9209; Song et al., arXiv:2011.13456) and snr-high-resolution
(archives/10047). ``x_t = alpha_t x_0 + beta_t eps`` with ``t = 0`` data and ``t = 1`` noise; ``alpha`` is the
article's signal coefficient ``bar alpha_t`` (DDPM's ``alphas_cumprod`` is ``alpha**2``) and ``beta`` the noise
standard deviation ``bar beta_t``; ``f_t = d/dt ln alpha_t``, ``g_t^2 = alpha_t^2 d/dt (beta_t^2 / alpha_t^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ._helpers import Array, _int, _positive, _real

__all__ = [
    "Schedule",
    "vp_exp",
    "vp_cosine",
    "ve_geometric",
    "linear_interp",
    "from_log_snr",
    "ddpm_discrete",
    "ddpm_posterior",
]


def _as_t(t: object) -> tuple[torch.Tensor, str]:
    """float64 tensor of times in ``[0, 1]`` and how to return results ("float", "numpy" or "torch").

    A tensor keeps its autograd graph: results are differentiable in ``t`` where ``t`` requires grad.
    """
    if isinstance(t, torch.Tensor):
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be a real tensor, got dtype {t.dtype}")
        kind, tt = "torch", t.to(torch.float64)
    elif isinstance(t, np.ndarray):
        if t.dtype.kind not in "iuf":
            raise TypeError(f"t must be a real array, got dtype {t.dtype}")
        kind, tt = "numpy", torch.from_numpy(t.astype(np.float64))
    elif isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        kind, tt = "float", torch.tensor(float(t), dtype=torch.float64)
    else:
        raise TypeError(f"t must be a float, a numpy array or a torch tensor, got {type(t).__name__}")
    with torch.no_grad():
        if torch.isnan(tt).any() or (tt < 0).any() or (tt > 1).any():
            raise ValueError("t must lie in [0, 1]")
    return tt, kind


def _back(v: torch.Tensor, kind: str, like: object) -> Array | float:
    if kind == "float":
        return float(v.detach())
    if kind == "numpy":
        return v.detach().numpy()
    return v.to(like.dtype if like.is_floating_point() else torch.float64).to(like.device)


class Schedule:
    """A noise schedule ``(alpha_t, beta_t)`` given by two torch functions of ``t`` (float64 tensors).

    ``alpha(t)``, ``beta(t)``, ``log_snr(t)``, ``f(t)``, ``g2(t)`` accept a float, a numpy array or a tensor and
    return the same kind; a tensor that requires grad keeps its graph (``f`` and ``g2`` are then differentiable
    too). ``t_max`` in ``(0, 1]`` caps the times at which the SDE coefficients are finite.
    """

    def __init__(self, alpha_fn: Callable[[torch.Tensor], torch.Tensor], beta_fn: Callable[[torch.Tensor], torch.Tensor],
                 name: str = "schedule", t_max: float = 1.0, beta2_fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if not callable(alpha_fn) or not callable(beta_fn):
            raise TypeError("alpha_fn and beta_fn must be callables of a float64 tensor")
        if beta2_fn is not None and not callable(beta2_fn):
            raise TypeError("beta2_fn must be a callable of a float64 tensor or None")
        t_max = _real("t_max", t_max)
        if not 0 < t_max <= 1:
            raise ValueError(f"t_max must lie in (0, 1], got {t_max}")
        self._alpha, self._beta, self.name, self.t_max = alpha_fn, beta_fn, name, t_max
        # beta^2 directly where beta = sqrt(...) would give autograd an infinite slope at beta = 0
        self._beta2 = beta2_fn or (lambda t: beta_fn(t) ** 2)

    def __repr__(self) -> str:
        return f"Schedule({self.name})"

    def alpha(self, t):
        tt, kind = _as_t(t)
        return _back(self._alpha(tt), kind, t)

    def beta(self, t):
        tt, kind = _as_t(t)
        return _back(self._beta(tt), kind, t)

    def log_snr(self, t):
        tt, kind = _as_t(t)
        return _back(2 * (torch.log(self._alpha(tt)) - torch.log(self._beta(tt))), kind, t)

    def _coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor, str]:
        tt, kind = _as_t(t)
        if (tt.detach() > self.t_max).any():
            raise ValueError(f"the SDE coefficients of {self.name} diverge near t = 1; use t <= {self.t_max}")
        keep = tt.requires_grad  # the caller differentiates through f and g2: build the derivative's graph too
        if not keep:
            tt = tt.clone().requires_grad_(True)
        a, b2 = self._alpha(tt), self._beta2(tt)

        def derivative(y: torch.Tensor) -> torch.Tensor:  # a constant (e.g. VE's alpha = 1) has no graph
            if not y.requires_grad:
                return torch.zeros_like(tt.detach())
            (dy,) = torch.autograd.grad(y.sum(), tt, retain_graph=True, create_graph=keep)
            return dy if keep else dy.detach()

        a2 = a**2 if keep else a.detach() ** 2
        return derivative(torch.log(a)), a2 * derivative(b2 / a**2), kind

    def f(self, t):
        """Drift coefficient ``f_t = d/dt ln alpha_t``."""
        f, _, kind = self._coefficients(t)
        return _back(f, kind, t)

    def g2(self, t):
        """Squared diffusion coefficient ``g_t^2 = alpha_t^2 d/dt (beta_t^2 / alpha_t^2)``."""
        _, g2, kind = self._coefficients(t)
        return _back(g2, kind, t)


def vp_exp(c: float = 5.0) -> Schedule:
    """VP schedule ``alpha = exp(-c t^2)``, ``beta = sqrt(1 - alpha^2)`` (DDPM's linear betas are close to ``c = 5``)."""
    c = _positive("c", c)
    return Schedule(lambda t: torch.exp(-c * t**2), lambda t: torch.sqrt(-torch.expm1(-2 * c * t**2)), f"vp_exp({c:g})",
                    beta2_fn=lambda t: -torch.expm1(-2 * c * t**2))


def vp_cosine(t_max: float = 0.9999) -> Schedule:
    """VP cosine schedule ``alpha = cos(pi t / 2)``, ``beta = sin(pi t / 2)``; ``f`` and ``g2`` refuse ``t > t_max``."""
    t_max = _real("t_max", t_max)
    if not 0 < t_max < 1:
        raise ValueError(f"t_max must lie in (0, 1) (f diverges at t = 1), got {t_max}")
    return Schedule(lambda t: torch.cos(math.pi * t / 2), lambda t: torch.sin(math.pi * t / 2), "vp_cosine", t_max)


def ve_geometric(sigma_min: float = 0.01, sigma_max: float = 10.0) -> Schedule:
    """VE schedule ``alpha = 1``, ``beta = sigma_min (sigma_max / sigma_min)^t``."""
    sigma_min, sigma_max = _real("sigma_min", sigma_min), _real("sigma_max", sigma_max)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    return Schedule(lambda t: torch.ones_like(t), lambda t: sigma_min * (sigma_max / sigma_min) ** t, "ve_geometric")


def linear_interp() -> Schedule:
    """The straight path ``alpha = 1 - t``, ``beta = t`` (rectified flow)."""
    return Schedule(lambda t: 1 - t, lambda t: t, "linear_interp", t_max=0.9999)


def from_log_snr(fn: Callable[[torch.Tensor], torch.Tensor], name: str = "from_log_snr") -> Schedule:
    """VP schedule with a given log-SNR ``lambda(t)``: ``alpha = sqrt(sigmoid(lambda))``, ``beta = sqrt(sigmoid(-lambda))``."""
    if not callable(fn):
        raise TypeError("fn must be a callable of a float64 tensor")
    return Schedule(lambda t: torch.sqrt(torch.sigmoid(fn(t))), lambda t: torch.sqrt(torch.sigmoid(-fn(t))), name,
                    beta2_fn=lambda t: torch.sigmoid(-fn(t)))


def ddpm_discrete(beta_start: float = 1e-4, beta_end: float = 0.02, T: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """DDPM's linear betas as ``(t_k = k / T, alpha_k)`` with the article's ``alpha_k = sqrt(prod_{j<=k} (1 - beta_j))``."""
    beta_start, beta_end = _real("beta_start", beta_start), _real("beta_end", beta_end)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    T = _int("T", T)
    betas = np.linspace(beta_start, beta_end, T)
    return np.arange(1, T + 1) / T, np.sqrt(np.cumprod(1 - betas))


def ddpm_posterior(abar_prev, beta_t) -> tuple:
    """DDPM's ``q(x_{t-1} | x_t, x_0) = N(a x_0 + b x_t, beta_tilde)`` in **DDPM's convention** (``abar = alphas_cumprod``).

    With ``alpha_t = 1 - beta_t`` and ``abar_t = abar_prev alpha_t``: ``a = sqrt(abar_prev) beta_t / (1 - abar_t)``,
    ``b = sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t)``, ``beta_tilde = beta_t (1 - abar_prev) / (1 - abar_t)``
    (Ho et al. 2020, eqs. 6-7). numpy-vectorised.
    """
    abar_prev, beta_t = np.asarray(abar_prev, dtype=np.float64), np.asarray(beta_t, dtype=np.float64)
    if not np.all((beta_t > 0) & (beta_t < 1)):
        raise ValueError("beta_t must lie in (0, 1)")
    if not np.all((abar_prev > 0) & (abar_prev <= 1)):
        raise ValueError("abar_prev must lie in (0, 1]")
    alpha_t = 1 - beta_t
    abar_t = abar_prev * alpha_t
    return (np.sqrt(abar_prev) * beta_t / (1 - abar_t), np.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t),
            beta_t * (1 - abar_prev) / (1 - abar_t))
