"""Diffusion models: noise schedules and their SDE coefficients, and signal-to-noise schedules for large images.

Serves the ``generative`` part (kexue.fm/archives/10047 so far; Hoogeboom, Heek & Salimans, Simple
diffusion, arXiv:2301.11093).

Conventions (used everywhere below)
-----------------------------------
* Time runs from ``t = 0`` (data) to ``t = 1`` (noise): ``x_t = alpha_t x_0 + beta_t eps``.
* ``alpha`` is the article's signal **coefficient** ``bar alpha_t`` and ``beta`` its noise standard deviation
  ``bar beta_t``; DDPM's ``alphas_cumprod`` is ``alpha**2`` (see :func:`ddpm_discrete`).
* ``log_snr = log(alpha^2 / beta^2)``; variance preserving (VP) means ``alpha^2 + beta^2 = 1``.
* The forward SDE ``dx = f_t x dt + g_t dw`` has ``f_t = d/dt ln alpha_t`` and
  ``g_t^2 = alpha_t^2 d/dt (beta_t^2 / alpha_t^2)``, computed here by autograd in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = [
    "Schedule",
    "vp_exp",
    "vp_cosine",
    "ve_geometric",
    "linear_interp",
    "from_log_snr",
    "ddpm_discrete",
    "logsnr_cosine",
    "logsnr_shifted",
    "logsnr_interpolated",
    "alpha_beta_from_logsnr",
    "shift_vp",
    "synthetic_image",
    "avg_pool",
    "multiscale_mse",
]


# ------------------------------------------------------------------------------ schedules
def _as_t(t: object) -> tuple[torch.Tensor, str]:
    """float64 tensor of times and how to return results ("float", "numpy" or "torch")."""
    if isinstance(t, torch.Tensor):
        kind, tt = "torch", t.detach().to(torch.float64)
    elif isinstance(t, np.ndarray):
        kind, tt = "numpy", torch.from_numpy(t.astype(np.float64))
    elif isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        kind, tt = "float", torch.tensor(float(t), dtype=torch.float64)
    else:
        raise TypeError(f"t must be a float, a numpy array or a torch tensor, got {type(t).__name__}")
    if torch.isnan(tt).any() or (tt < 0).any() or (tt > 1).any():
        raise ValueError("t must lie in [0, 1]")
    return tt, kind


def _back(v: torch.Tensor, kind: str, like: object) -> Array | float:
    if kind == "float":
        return float(v)
    if kind == "numpy":
        return v.numpy()
    return v.to(like.dtype if like.is_floating_point() else torch.float64).to(like.device)


class Schedule:
    """A noise schedule ``(alpha_t, beta_t)`` given by two torch functions of ``t`` (float64 tensors).

    ``alpha(t)``, ``beta(t)``, ``log_snr(t)``, ``f(t)``, ``g2(t)`` accept a float, a numpy array or a tensor and
    return the same kind. ``t_max`` caps the times at which the SDE coefficients are finite.
    """

    def __init__(self, alpha_fn: Callable[[torch.Tensor], torch.Tensor], beta_fn: Callable[[torch.Tensor], torch.Tensor],
                 name: str = "schedule", t_max: float = 1.0):
        if not callable(alpha_fn) or not callable(beta_fn):
            raise TypeError("alpha_fn and beta_fn must be callables of a float64 tensor")
        self._alpha, self._beta, self.name, self.t_max = alpha_fn, beta_fn, name, t_max

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
        if (tt > self.t_max).any():
            raise ValueError(f"the SDE coefficients of {self.name} diverge near t = 1; use t <= {self.t_max}")
        tt = tt.clone().requires_grad_(True)
        a, b = self._alpha(tt), self._beta(tt)

        def derivative(y: torch.Tensor) -> torch.Tensor:  # a constant (e.g. VE's alpha = 1) has no graph
            if not y.requires_grad:
                return torch.zeros_like(tt)
            (dy,) = torch.autograd.grad(y.sum(), tt, retain_graph=True)
            return dy.detach()

        return derivative(torch.log(a)), (a.detach() ** 2) * derivative(b**2 / a**2), kind

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
    if not c > 0:
        raise ValueError(f"c must be positive, got {c}")
    return Schedule(lambda t: torch.exp(-c * t**2), lambda t: torch.sqrt(-torch.expm1(-2 * c * t**2)), f"vp_exp({c:g})")


def vp_cosine(t_max: float = 0.9999) -> Schedule:
    """VP cosine schedule ``alpha = cos(pi t / 2)``, ``beta = sin(pi t / 2)``; ``f`` and ``g2`` refuse ``t > t_max``."""
    return Schedule(lambda t: torch.cos(math.pi * t / 2), lambda t: torch.sin(math.pi * t / 2), "vp_cosine", t_max)


def ve_geometric(sigma_min: float = 0.01, sigma_max: float = 10.0) -> Schedule:
    """VE schedule ``alpha = 1``, ``beta = sigma_min (sigma_max / sigma_min)^t``."""
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
    return Schedule(lambda t: torch.sqrt(torch.sigmoid(fn(t))), lambda t: torch.sqrt(torch.sigmoid(-fn(t))), name)


def ddpm_discrete(beta_start: float = 1e-4, beta_end: float = 0.02, T: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """DDPM's linear betas as ``(t_k = k / T, alpha_k)`` with the article's ``alpha_k = sqrt(prod_{j<=k} (1 - beta_j))``."""
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    betas = np.linspace(beta_start, beta_end, T)
    return np.arange(1, T + 1) / T, np.sqrt(np.cumprod(1 - betas))


# ------------------------------------------------------------- log-SNR schedules (10047)
def _np_or_torch(t):
    return torch if isinstance(t, torch.Tensor) else np


def logsnr_cosine(t, logsnr_min: float = -15.0, logsnr_max: float = 15.0):
    """Simple diffusion's clipped cosine log-SNR ``-2 ln tan(t_min + t (t_max - t_min))``, from ``logsnr_max`` at
    ``t = 0`` to ``logsnr_min`` at ``t = 1`` (unclipped, it is ``-2 ln tan(pi t / 2)``, the cosine VP schedule)."""
    if not logsnr_min < logsnr_max:
        raise ValueError(f"need logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}")
    lib = _np_or_torch(t)
    t_min, t_max = math.atan(math.exp(-logsnr_max / 2)), math.atan(math.exp(-logsnr_min / 2))
    return -2 * lib.log(lib.tan(t_min + t * (t_max - t_min)))


def logsnr_shifted(t, image_d: int, base_d: int = 64, **kwargs):
    """The cosine log-SNR shifted for resolution ``image_d``: ``logsnr_cosine(t) + 2 ln(base_d / image_d)``."""
    if not (image_d > 0 and base_d > 0):
        raise ValueError(f"image_d and base_d must be positive, got {image_d}, {base_d}")
    return logsnr_cosine(t, **kwargs) + 2 * math.log(base_d / image_d)


def logsnr_interpolated(t, image_d: int, d_low: int = 32, d_high: int = 256):
    """Simple diffusion's interpolated schedule ``t * shift(d_low) + (1 - t) * shift(d_high)``."""
    return t * logsnr_shifted(t, image_d, d_low) + (1 - t) * logsnr_shifted(t, image_d, d_high)


def alpha_beta_from_logsnr(lam):
    """VP ``(alpha, beta) = (sqrt(sigmoid(lam)), sqrt(sigmoid(-lam)))``."""
    if isinstance(lam, torch.Tensor):
        return torch.sqrt(torch.sigmoid(lam)), torch.sqrt(torch.sigmoid(-lam))
    lam = np.asarray(lam, dtype=float)
    return np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def shift_vp(alpha_lo, beta_lo, s: float):
    """The VP schedule for an image ``s`` times larger per side: ``SNR_hi * s^2 = SNR_lo`` with ``alpha^2 + beta^2 = 1``.

    ``alpha_hi^2 = SNR_lo / (SNR_lo + s^2)``, i.e. the log-SNR shifted by ``-2 ln s``.
    """
    if not s > 0:
        raise ValueError(f"s must be positive, got {s}")
    a, b = np.asarray(alpha_lo, dtype=float), np.asarray(beta_lo, dtype=float)
    a2 = a**2 / (a**2 + s**2 * b**2)  # = SNR_lo / (SNR_lo + s^2), also at beta_lo = 0
    return np.sqrt(a2), np.sqrt(1 - a2)


def synthetic_image(size: int = 512, seed: int = 0) -> np.ndarray:
    """A deterministic test image in [-1, 1]: a smooth background of non-commensurate sinusoids, 12 discs and a fine
    +-0.1 texture (so pooling removes detail), of shape ``(size, size)``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.4 * np.sin(2 * np.pi * (1.3 * x + 0.7 * y)) + 0.3 * np.cos(2 * np.pi * (2.1 * x - 1.7 * y) + 0.5)
    for _ in range(12):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.12)
        img = np.where((x - cx) ** 2 + (y - cy) ** 2 < r**2, rng.uniform(-0.9, 0.9), img)
    img = img + 0.1 * np.sign(rng.normal(size=(size, size)))
    return np.clip(img, -1, 1)


def avg_pool(x: Array, s: int) -> Array:
    """``s x s`` average pooling over the last two axes (numpy or torch)."""
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise ValueError(f"s must be a positive integer, got {s!r}")
    h, w = x.shape[-2:]
    if h % s or w % s:
        raise ValueError(f"the image size {h}x{w} is not divisible by s = {s}")
    shape = (*x.shape[:-2], h // s, s, w // s, s)
    return x.reshape(shape).mean(axis=(-3, -1)) if isinstance(x, np.ndarray) else x.reshape(shape).mean(dim=(-3, -1))


def multiscale_mse(eps: Array, eps_hat: Array, scales=(1, 2, 4, 8)) -> dict[int, float]:
    """Simple diffusion's multi-scale loss: ``L_s = mean((pool_s(eps) - pool_s(eps_hat))^2)`` for each scale."""
    if tuple(eps.shape) != tuple(eps_hat.shape):
        raise ValueError(f"eps and eps_hat must have the same shape, got {tuple(eps.shape)} and {tuple(eps_hat.shape)}")
    diff = eps - eps_hat
    return {int(s): float((avg_pool(diff, s) ** 2).mean()) for s in scales}
