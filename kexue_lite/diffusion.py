"""Generative models on exact toys: diffusion schedules and SDEs, rectified flow, SNR schedules, SiD, IGN, self-consuming loops.

Serves the ``generative`` part (kexue.fm/archives/9209, 9497, 10047, 10085, 9969 and 9687; Liu, Gong & Liu,
rectified flow, arXiv:2209.03003; Song et al., score-based SDEs, arXiv:2011.13456; Hoogeboom, Heek & Salimans, Simple
diffusion, arXiv:2301.11093; Zhou et al., score identity distillation, arXiv:2404.04057; Shocher et al.,
idempotent generative networks, arXiv:2311.01462).

Conventions (used everywhere below)
-----------------------------------
* Time runs from ``t = 0`` (data) to ``t = 1`` (noise): ``x_t = alpha_t x_0 + beta_t eps``.
* ``alpha`` is the article's signal **coefficient** ``bar alpha_t`` and ``beta`` its noise standard deviation
  ``bar beta_t``; DDPM's ``alphas_cumprod`` is ``alpha**2`` (see :func:`ddpm_discrete`).
* ``log_snr = log(alpha^2 / beta^2)``; variance preserving (VP) means ``alpha^2 + beta^2 = 1``.
* The forward SDE ``dx = f_t x dt + g_t dw`` has ``f_t = d/dt ln alpha_t`` and
  ``g_t^2 = alpha_t^2 d/dt (beta_t^2 / alpha_t^2)``, computed here by autograd in float64.
* Devices: results stay on the device of the input tensors. A :class:`GaussianMixture` lives on one device
  (``device=`` or :meth:`GaussianMixture.to`) and refuses inputs on another. Random draws are made on the device of
  the ``torch.Generator`` passed in (the trainers use a CPU generator), then moved, so one seed gives the same
  numbers on CPU and CUDA.
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
    "ddpm_posterior",
    "logsnr_cosine",
    "logsnr_shifted",
    "logsnr_interpolated",
    "alpha_beta_from_logsnr",
    "shift_vp",
    "synthetic_image",
    "avg_pool",
    "multiscale_mse",
    "GaussianMixture",
    "two_mode_1d",
    "empirical_score",
    "forward_sde",
    "reverse_sde_sample",
    "pf_ode_velocity",
    "ode_sample",
    "w1_to_cdf",
    "make_mlp",
    "train_denoiser",
    "nn_score",
    "self_consuming_gaussian",
    "self_consuming_categorical",
    "log_var_drift",
    "ring_mixture",
    "rf_velocity",
    "rf_velocity_from_score",
    "nn_velocity",
    "train_velocity_field",
    "reflow_pairs",
    "straightness",
    "mmd_rbf",
    "mode_coverage",
    "frozen_call",
    "ign_losses",
    "ign_total_loss",
    "gan_single_loss",
    "train_ign",
    "train_gan",
    "eps_to_x0",
    "x0_to_eps",
    "sid_losses",
    "sid_generator_loss",
    "linear_gaussian_sid_grads",
    "ResidualOnBase",
    "linear_gaussian_sid_descent",
    "w1_to_quantiles",
    "train_sid",
]


def _randn(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 standard normals drawn on the generator's device (``device`` without one), returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device=where).to(device)


def _rand(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 uniforms on [0, 1), drawn like :func:`_randn`."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=where).to(device)


def _numpy(v) -> np.ndarray:
    """float64 numpy copy of an array or a tensor on any device."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


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
                 name: str = "schedule", t_max: float = 1.0, beta2_fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if not callable(alpha_fn) or not callable(beta_fn):
            raise TypeError("alpha_fn and beta_fn must be callables of a float64 tensor")
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
        if (tt > self.t_max).any():
            raise ValueError(f"the SDE coefficients of {self.name} diverge near t = 1; use t <= {self.t_max}")
        tt = tt.clone().requires_grad_(True)
        a, b2 = self._alpha(tt), self._beta2(tt)

        def derivative(y: torch.Tensor) -> torch.Tensor:  # a constant (e.g. VE's alpha = 1) has no graph
            if not y.requires_grad:
                return torch.zeros_like(tt)
            (dy,) = torch.autograd.grad(y.sum(), tt, retain_graph=True)
            return dy.detach()

        return derivative(torch.log(a)), (a.detach() ** 2) * derivative(b2 / a**2), kind

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
    return Schedule(lambda t: torch.exp(-c * t**2), lambda t: torch.sqrt(-torch.expm1(-2 * c * t**2)), f"vp_exp({c:g})",
                    beta2_fn=lambda t: -torch.expm1(-2 * c * t**2))


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
    return Schedule(lambda t: torch.sqrt(torch.sigmoid(fn(t))), lambda t: torch.sqrt(torch.sigmoid(-fn(t))), name,
                    beta2_fn=lambda t: torch.sigmoid(-fn(t)))


def ddpm_discrete(beta_start: float = 1e-4, beta_end: float = 0.02, T: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """DDPM's linear betas as ``(t_k = k / T, alpha_k)`` with the article's ``alpha_k = sqrt(prod_{j<=k} (1 - beta_j))``."""
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
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


# ------------------------------------------------------------------ Gaussian mixtures (9209)
class GaussianMixture:
    """A mixture of Gaussians in ``d`` dimensions with exact density, score and diffused law (torch float64).

    ``weights`` ``(K,)`` (normalised), ``means`` ``(K, d)``, ``covs``: variances ``(K,)``, diagonals ``(K, d)`` or
    full matrices ``(K, d, d)`` (lists, arrays or tensors). It lives on ``device`` (default: that of a tensor argument,
    else the CPU). Inputs ``x`` are ``(n, d)`` tensors on that device or arrays; outputs are float64 tensors there.
    """

    def __init__(self, weights, means, covs, device: str | torch.device | None = None):
        if device is None:
            device = next((v.device for v in (weights, means, covs) if isinstance(v, torch.Tensor)), "cpu")

        def tensor(v) -> torch.Tensor:
            if isinstance(v, torch.Tensor):
                return v.detach().to(device=device, dtype=torch.float64, copy=True)
            return torch.as_tensor(np.asarray(v, dtype=float), device=device)

        w, mu, c = tensor(weights), tensor(means), tensor(covs)
        self.device = w.device  # with its index: "cuda" becomes cuda:0, the device tensors report
        if mu.ndim == 1:
            mu = mu[:, None]
        K, d = mu.shape
        if w.shape != (K,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {K} non-negative numbers with a positive sum, got {w.tolist()}")
        if c.shape == (K,):
            c = c[:, None, None] * torch.eye(d, dtype=torch.float64, device=self.device)
        elif c.shape == (K, d):
            c = torch.diag_embed(c)
        elif c.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K},), ({K}, {d}) or ({K}, {d}, {d}), got {tuple(c.shape)}")
        evals, evecs = torch.linalg.eigh(c)
        if not bool((evals > 0).all()):
            raise ValueError("every covariance must be positive definite")
        self.weights, self.means, self.covs = w / w.sum(), mu, c
        self._evals, self._evecs = evals, evecs  # Sigma_k = U_k diag(lambda_k) U_k^T, for score_t
        self._chol = torch.linalg.cholesky(c)
        self._prec = torch.cholesky_inverse(self._chol)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def to(self, device: str | torch.device) -> GaussianMixture:
        """The same mixture on ``device``."""
        return GaussianMixture(self.weights, self.means, self.covs, device=device)

    def _x(self, x) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            if x.device != self.device:
                raise ValueError(f"x is on {x.device} but the mixture is on {self.device}; use mixture.to({str(x.device)!r})")
            x = x.to(torch.float64)
        else:
            x = torch.as_tensor(np.asarray(x, dtype=float), device=self.device)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples on the mixture's device, drawn with ``generator`` on the generator's own device."""
        where = generator.device if generator is not None else self.device
        comp = torch.multinomial(self.weights.to(where), n, replacement=True, generator=generator).to(self.device)
        z = _randn((n, self.dim), generator, self.device)
        return self.means[comp] + (self._chol[comp] @ z[:, :, None])[:, :, 0]

    def _component_logpdf(self, x: torch.Tensor) -> torch.Tensor:
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        maha = torch.einsum("nki,kij,nkj->nk", diff, self._prec, diff)
        logdet = 2 * torch.log(torch.diagonal(self._chol, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi)) + torch.log(self.weights)

    def log_prob(self, x) -> torch.Tensor:
        return torch.logsumexp(self._component_logpdf(self._x(x)), dim=1)

    def score(self, x) -> torch.Tensor:
        """``grad log p(x)``: the posterior-weighted component scores ``-Sigma_k^-1 (x - mu_k)`` (log-sum-exp stable)."""
        x = self._x(x)
        resp = torch.softmax(self._component_logpdf(x), dim=1)  # (n, K)
        comp = -torch.einsum("kij,nkj->nki", self._prec, x[:, None, :] - self.means[None])
        return (resp[:, :, None] * comp).sum(1)

    def diffuse(self, alpha: float, beta: float) -> GaussianMixture:
        """The law of ``alpha x_0 + beta eps``: means ``alpha mu_k``, covariances ``alpha^2 Sigma_k + beta^2 I``."""
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.device)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + beta**2 * eye)

    def score_t(self, x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Score of the diffused law with per-sample ``alpha, beta`` (``(n, 1)``), differentiable in ``x``.

        Component ``k`` has covariance ``alpha^2 Sigma_k + beta^2 I = U_k diag(alpha^2 lambda_k + beta^2) U_k^T``, so its
        precision and log-determinant come from the eigenvalues, with no matrix inverse per sample.
        """
        x = self._x(x)
        var = alpha[:, :, None] ** 2 * self._evals[None] + beta[:, :, None] ** 2  # (n, K, d) eigenvalues of the covariances
        diff = x[:, None, :] - alpha[:, :, None] * self.means[None]  # (n, K, d)
        rotated = torch.einsum("kji,nkj->nki", self._evecs, diff)  # U_k^T diff
        proj = rotated / var
        maha = (proj * rotated).sum(-1)
        logits = -0.5 * (maha + torch.log(var).sum(-1)) + torch.log(self.weights)
        resp = torch.softmax(logits, dim=1)
        return -(resp[:, :, None] * torch.einsum("kij,nkj->nki", self._evecs, proj)).sum(1)

    def eps_t(self, x, alpha, beta) -> torch.Tensor:
        """The ideal noise prediction ``-beta grad log p_t(x)``."""
        return -beta * self.score_t(x, alpha, beta)

    def posterior_mean(self, x, alpha: float, beta: float) -> torch.Tensor:
        """Tweedie: ``E[x_0 | x_t] = (x + beta^2 grad log p_t(x)) / alpha``."""
        x = self._x(x)
        return (x + beta**2 * self.diffuse(alpha, beta).score(x)) / alpha

    def cdf(self, x) -> torch.Tensor:
        if self.dim != 1:
            raise ValueError("cdf is defined for one-dimensional mixtures only")
        x = self._x(x)
        sd = torch.sqrt(self.covs[:, 0, 0])
        return (self.weights * 0.5 * (1 + torch.erf((x - self.means[:, 0]) / (sd * math.sqrt(2))))).sum(1)

    def icdf(self, q) -> torch.Tensor:
        """Quantiles by bisection (100 halvings), 1-D only."""
        if self.dim != 1:
            raise ValueError("icdf is defined for one-dimensional mixtures only")
        q = torch.as_tensor(_numpy(q), device=self.device)
        sd = torch.sqrt(self.covs[:, 0, 0])
        lo = torch.full_like(q, float((self.means[:, 0] - 40 * sd).min()))
        hi = torch.full_like(q, float((self.means[:, 0] + 40 * sd).max()))
        for _ in range(100):
            mid = (lo + hi) / 2
            below = self.cdf(mid[:, None]) < q
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return (lo + hi) / 2


def two_mode_1d(weights=(0.3, 0.7), means=(-2.0, 1.5), stds=(0.3, 0.5)) -> GaussianMixture:
    """The part's 1-D running example: two modes with weights 0.3 / 0.7."""
    return GaussianMixture(weights, np.asarray(means)[:, None], np.asarray(stds) ** 2)


def empirical_score(x: torch.Tensor, data: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Exact score of ``(1/M) sum_k N(alpha x_0^(k), beta^2 I)``: the posterior-weighted conditional scores."""
    diff = x[:, None, :] - alpha * data[None]
    resp = torch.softmax(-(diff**2).sum(-1) / (2 * beta**2), dim=1)
    return -(resp[:, :, None] * diff).sum(1) / beta**2


# ------------------------------------------------------------------------------ samplers
def _check_steps(n_steps: object) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    return int(n_steps)


def forward_sde(x0: torch.Tensor, schedule: Schedule, n_steps: int, t_end: float = 1.0, generator=None, return_path: bool = False):
    """Euler–Maruyama for ``dx = f_t x dt + g_t dw`` from ``t = 0`` to ``t_end``; returns ``x_{t_end}`` (and the path)."""
    n_steps = _check_steps(n_steps)
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
    """Euler–Maruyama for the reverse SDE ``dx = [f_t x - g_t^2 score(x, t)] dt + g_t dw`` from ``t_start`` down to ``t_end``."""
    n_steps = _check_steps(n_steps)
    if not t_start > t_end:
        raise ValueError(f"t_start must exceed t_end, got {t_start} <= {t_end}")
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
    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return schedule.f(t) * x - 0.5 * schedule.g2(t) * score_fn(x, t)
    return velocity


def ode_sample(velocity_fn, x_init: torch.Tensor, n_steps: int, t_start: float = 1.0, t_end: float = 0.0, method: str = "euler",
               return_path: bool = False):
    """Integrate ``dx/dt = v(x, t)`` from ``t_start`` to ``t_end`` with ``n_steps`` Euler, Heun or RK4 steps."""
    n_steps = _check_steps(n_steps)
    if method not in ("euler", "heun", "rk4"):
        raise ValueError(f"method must be 'euler', 'heun' or 'rk4', got {method!r}")
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


def w1_to_cdf(samples, cdf_fn, lo: float, hi: float, n_grid: int = 4001) -> float:
    """1-D Wasserstein-1 distance ``int |F_n - F| dx`` on a grid over ``[lo, hi]`` (samples outside are clipped)."""
    s = np.sort(_numpy(samples).ravel())
    grid = np.linspace(lo, hi, n_grid)
    emp = np.searchsorted(s, grid, side="right") / s.size
    exact = _numpy(cdf_fn(grid)).ravel()
    return float(np.trapezoid(np.abs(emp - exact), grid))


def make_mlp(in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, act: str = "silu",
             device: str | torch.device | None = None) -> torch.nn.Sequential:
    """A small MLP (float64, on ``device``): ``depth`` hidden layers of width ``hidden``."""
    acts = {"silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    if act not in acts:
        raise ValueError(f"act must be one of {tuple(acts)}, got {act!r}")
    layers, width = [], in_dim
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden, dtype=torch.float64, device=device), acts[act]()]
        width = hidden
    layers.append(torch.nn.Linear(width, out_dim, dtype=torch.float64, device=device))
    return torch.nn.Sequential(*layers)


def train_denoiser(data_sampler, dim: int, schedule: Schedule, steps: int = 2000, batch: int = 512, lr: float = 2e-3,
                   hidden: int = 64, depth: int = 2, t_min: float = 1e-3, seed: int = 0,
                   device: str | torch.device = "cpu") -> torch.nn.Module:
    """Denoising score matching: fit ``eps_theta(x_t, t)`` to ``eps`` on ``x_t = alpha_t x_0 + beta_t eps``, ``t ~ U[t_min, 1]``.

    Loss ``E |eps_theta - eps|^2`` (Adam); its minimiser is ``-beta_t grad log p_t`` (see :func:`nn_score`).
    ``data_sampler(batch, generator)`` gets a seeded CPU generator; batches are moved to ``device``, where the net lives.
    """
    if not 0 <= t_min < 1:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = make_mlp(dim + 1, dim, hidden=hidden, depth=depth, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(_check_steps(steps)):
        x0 = data_sampler(batch, gen).to(device)
        t = t_min + (1 - t_min) * _rand((batch, 1), gen, device)
        eps = _randn(x0.shape, gen, device)
        x_t = schedule.alpha(t) * x0 + schedule.beta(t) * eps
        loss = ((net(torch.cat([x_t, t], 1)) - eps) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def nn_score(net: torch.nn.Module, schedule: Schedule):
    """The score ``-eps_theta(x, t) / beta_t`` of a noise-prediction net taking ``cat([x, t], -1)`` (no gradients)."""
    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        with torch.no_grad():
            return -net(torch.cat([x, torch.full_like(x[:, :1], t)], 1)) / schedule.beta(t)
    return score


# ------------------------------------------------------------- self-consuming loops (9687)
def self_consuming_gaussian(n: int, generations: int, chains: int, lam: float = 1.0, dim: int = 1, n_real: int = 0,
                            fresh_real: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Gaussian models refitted on their own samples, vectorised over independent chains.

    Generation 0 is the truth ``N(0, I_dim)``. Model ``t`` is ``N(mean, lam * unbiased covariance)`` fitted to ``n``
    samples of model ``t - 1`` plus ``n_real`` real samples (drawn once per chain, or afresh every generation
    with ``fresh_real=True``). Returns ``mu`` ``(T+1, chains, dim)`` and ``var`` ``(T+1, chains)``, the trace of the
    covariance divided by ``dim``.
    """
    for name, v in (("n", n), ("generations", generations), ("chains", chains), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n + n_real < 2:
        raise ValueError(f"need n + n_real >= 2 samples to estimate a variance, got {n + n_real}")
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    rng = np.random.default_rng(seed)
    mu = np.zeros((chains, dim))
    chol = np.broadcast_to(np.eye(dim), (chains, dim, dim)).copy()
    real = rng.normal(size=(chains, n_real, dim))
    mus, vars_ = [mu.copy()], [np.ones(chains)]
    for _ in range(generations):
        synthetic = mu[:, None, :] + np.einsum("rij,rkj->rki", chol, rng.normal(size=(chains, n, dim)))
        if fresh_real:
            real = rng.normal(size=(chains, n_real, dim))
        batch = np.concatenate([synthetic, real], axis=1)
        mu = batch.mean(1)
        centred = batch - mu[:, None, :]
        cov = lam * np.einsum("rki,rkj->rij", centred, centred) / (batch.shape[1] - 1)
        chol = np.linalg.cholesky(cov + 1e-300 * np.eye(dim))
        mus.append(mu.copy())
        vars_.append(np.trace(cov, axis1=1, axis2=2) / dim)
    return {"mu": np.stack(mus), "var": np.stack(vars_)}


def self_consuming_categorical(p0: np.ndarray, n: int, generations: int, temperature: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A categorical "language model" refitted on ``n`` of its own tokens per generation (maximum likelihood).

    Before sampling, the model is sharpened by ``temperature`` (``p^(1/T)`` renormalised; ``T < 1`` trades
    diversity for "quality"). A token with zero count is lost for good. Returns ``support`` and ``entropy``
    ``(T+1,)`` and the distributions ``p`` ``(T+1, V)``.
    """
    p = np.asarray(p0, dtype=float)
    if p.ndim != 1 or (p < 0).any() or p.sum() <= 0:
        raise ValueError("p0 must be a non-negative 1-D array with a positive sum")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    rng = np.random.default_rng(seed)
    p = p / p.sum()
    ps = [p]
    for _ in range(generations):
        sharp = p ** (1 / temperature)
        counts = rng.multinomial(n, sharp / sharp.sum())
        p = counts / n
        ps.append(p)
    P = np.stack(ps)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = 0.0 - np.where(P > 0, P * np.log(np.where(P > 0, P, 1)), 0).sum(1)  # 0.0 - : no "-0.00" for one token
    return {"support": (P > 0).sum(1), "entropy": entropy, "p": P}


def log_var_drift(n: int) -> float:
    """``E[log(s^2 / sigma^2)] = psi((n-1)/2) + log(2/(n-1))`` for the unbiased variance of ``n`` normal samples (< 0)."""
    import scipy.special

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    return float(scipy.special.digamma((n - 1) / 2) + math.log(2 / (n - 1)))


# ------------------------------------------------------------------- rectified flow (9497)
def ring_mixture(k: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """``k`` equal isotropic Gaussians on a circle of the given radius (2-D)."""
    angles = 2 * np.pi * np.arange(k) / k
    return GaussianMixture(np.ones(k), radius * np.stack([np.cos(angles), np.sin(angles)], 1), np.full(k, std**2))


def rf_velocity(mixture: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """Exact rectified-flow velocity ``E[x_1 - x_0 | x_t]`` for ``x_t = (1 - t) x_0 + t x_1``, ``x_0 ~ mixture``, ``x_1 ~ N(0, I)``.

    Per component: ``-mu_k + (t I - (1 - t) Sigma_k) C_k^-1 (x - (1 - t) mu_k)`` with ``C_k = (1 - t)^2 Sigma_k + t^2 I``,
    weighted by the responsibilities of the law of ``x_t``; valid on the closed interval ``[0, 1]``.
    """
    if not 0 <= t <= 1:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    x = mixture._x(x)
    eye = torch.eye(mixture.dim, dtype=torch.float64, device=x.device)
    C = (1 - t) ** 2 * mixture.covs + t**2 * eye
    gain = (t * eye - (1 - t) * mixture.covs) @ torch.linalg.inv(C)  # (K, d, d)
    centred = x[:, None, :] - (1 - t) * mixture.means[None]  # (n, K, d)
    comp = -mixture.means[None] + torch.einsum("kij,nkj->nki", gain, centred)
    resp = torch.softmax(mixture.diffuse(1 - t, t)._component_logpdf(x), dim=1)
    return (resp[:, :, None] * comp).sum(1)


def rf_velocity_from_score(score_fn):
    """The rectified-flow velocity from the score of the linear-interpolation marginals: ``-(x + t score(x, t)) / (1 - t)``."""
    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        if t >= 1:
            raise ValueError("the score form is 0/0 at t = 1; use rf_velocity")
        return -(x + t * score_fn(x, t)) / (1 - t)
    return velocity


def nn_velocity(net: torch.nn.Module):
    """Wrap a network taking ``cat([x, t], -1)`` as a velocity function (evaluated without gradients)."""
    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        with torch.no_grad():
            return net(torch.cat([x, torch.full_like(x[:, :1], t)], 1))
    return velocity


def train_velocity_field(pair_sampler, dim: int, steps: int = 2000, batch: int = 512, lr: float = 2e-3, hidden: int = 128,
                         depth: int = 2, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Fit ``v_theta(x_t, t)`` to ``x_1 - x_0`` on ``x_t = (1 - t) x_0 + t x_1``, ``t ~ U(0, 1)`` (Adam, cosine decay).

    ``pair_sampler(batch, generator) -> (x0, x1)``: independent pairs for rectified flow, fixed coupled pairs for reflow;
    ``generator`` is a seeded CPU generator and the pairs are moved to ``device``, where the net is trained.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = make_mlp(dim + 1, dim, hidden=hidden, depth=depth, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(_check_steps(steps)):
        x0, x1 = (v.to(device) for v in pair_sampler(batch, gen))
        t = _rand((batch, 1), gen, device)
        loss = ((net(torch.cat([(1 - t) * x0 + t * x1, t], 1)) - (x1 - x0)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net


def reflow_pairs(velocity_fn, x1: torch.Tensor, n_steps: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Coupled pairs ``(z_0, z_1)``: each noise sample ``z_1 = x1`` with the data point its flow reaches (pairing kept)."""
    return ode_sample(velocity_fn, x1, n_steps, 1.0, 0.0, "euler"), x1


def straightness(velocity_fn, x1: torch.Tensor, n_steps: int = 64) -> float:
    """``(1/N) sum_k E |(x_1 - x_0) - v(x_{t_k}, t_k)|^2`` along the Euler trajectories from ``x1``: 0 for straight paths."""
    x_end, path = ode_sample(velocity_fn, x1, n_steps, 1.0, 0.0, "euler", return_path=True)
    ts = np.linspace(1.0, 0.0, n_steps + 1)
    chord = x1 - x_end  # x_1 - x_0 along each path
    return float(np.mean([((chord - velocity_fn(path[k], float(ts[k]))) ** 2).sum(1).mean() for k in range(n_steps)]))


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.3) -> float:
    """Squared maximum mean discrepancy with an RBF kernel (biased V-statistic)."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth**2)).mean()
    return float(k(x, x) + k(y, y) - 2 * k(x, y))


def mode_coverage(x: torch.Tensor, centers: torch.Tensor, radius: float) -> tuple[float, np.ndarray]:
    """Fraction of samples within ``radius`` of some center, and the fraction of samples at each center."""
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    d = torch.cdist(x, centers)
    near = d.min(1).values < radius
    per = np.array([float(((d.argmin(1) == j) & near).double().mean()) for j in range(centers.shape[0])])
    return float(near.double().mean()), per


# ------------------------------------------------------------- idempotent generative networks (9969)
def frozen_call(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with detached parameters (``torch.func.functional_call``): gradients reach ``x`` only."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))


def _distance(a: torch.Tensor, b: torch.Tensor, dist: str) -> torch.Tensor:
    gap = a - b
    return (gap.abs() if dist == "l1" else gap**2).sum(-1).mean()


def ign_losses(f: torch.nn.Module, x: torch.Tensor, z: torch.Tensor, dist: str = "l1",
               clamp_ratio: float | None = 1.5) -> dict[str, torch.Tensor]:
    """The three IGN terms (Shocher et al. 2023, eqs. 5-9) with ``delta(y) = d(f(y), y)``.

    ``rec = d(f(x), x)``; ``idem = d(f_frozen(f(z)), f(z))`` trains the inner ``f``; ``tight_raw = d(f(sg f(z)), sg f(z))``
    trains the outer ``f``; ``tight = -tanh(tight_raw / (a sg(rec))) a sg(rec)`` (clamped) or ``-tight_raw``.
    """
    if dist not in ("l1", "l2"):
        raise ValueError(f"dist must be 'l1' or 'l2', got {dist!r}")
    if clamp_ratio is not None and not clamp_ratio > 0:
        raise ValueError(f"clamp_ratio must be positive or None, got {clamp_ratio}")
    rec = _distance(f(x), x, dist)
    fz = f(z)
    idem = _distance(frozen_call(f, fz), fz, dist)
    fz_sg = fz.detach()
    tight_raw = _distance(f(fz_sg), fz_sg, dist)
    if clamp_ratio is None:
        tight = -tight_raw
    else:
        scale = clamp_ratio * rec.detach()  # as rec -> 0 the clamped term -> 0 (|tight| <= scale); no 0/0 at rec = 0
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        tight = torch.where(scale > 0, -torch.tanh(tight_raw / safe) * scale, 0 * tight_raw)
    return {"rec": rec, "idem": idem, "tight_raw": tight_raw, "tight": tight}


def ign_total_loss(losses: dict[str, torch.Tensor], weights: tuple[float, float, float] = (20.0, 20.0, 2.5)) -> torch.Tensor:
    """``lambda_r rec + lambda_i idem + lambda_t tight`` (the paper's weights by default)."""
    w_r, w_i, w_t = weights
    return w_r * losses["rec"] + w_i * losses["idem"] + w_t * losses["tight"]


def gan_single_loss(D: torch.nn.Module, G: torch.nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``mean[D(x) - 2 D(sg G(z)) + D(G(z))]``: one loss whose gradients are the discriminator's and the generator's.

    WGAN sign convention of the article: ``D`` minimises its score on real data (low = real).
    """
    g = G(z)
    return (D(x) - 2 * D(g.detach()) + D(g)).mean()


def train_ign(data_sampler, dim: int, steps: int = 800, batch: int = 256, lr: float = 1e-3, hidden: int = 64, depth: int = 2,
              weights: tuple[float, float, float] = (20.0, 20.0, 2.5), clamp_ratio: float | None = 1.5, dist: str = "l1",
              seed: int = 0, snapshot_every: int = 0, z_probe: torch.Tensor | None = None, device: str | torch.device = "cpu"):
    """Train an IGN ``f`` (Adam, betas (0.5, 0.999)) on ``data_sampler(batch, generator)`` with ``z ~ N(0, I)``.

    ``generator`` is a seeded CPU generator; the batches are moved to ``device``, where ``f`` lives.
    Returns ``(f, history)``: per-step ``rec``, ``idem``, ``tight_raw`` and, every ``snapshot_every`` steps (with step 0),
    ``f(z_probe)`` in ``history["snapshots"]`` as ``(step, outputs)`` pairs (outputs on the CPU).
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    f = make_mlp(dim, dim, hidden=hidden, depth=depth, device=device)
    opt = torch.optim.Adam(f.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list] = {"rec": [], "idem": [], "tight_raw": [], "snapshots": []}
    for step in range(_check_steps(steps) + 1):
        if snapshot_every and z_probe is not None and step % snapshot_every == 0:
            with torch.no_grad():
                history["snapshots"].append((step, f(z_probe.to(device)).cpu()))
        if step == steps:
            break
        losses = ign_losses(f, data_sampler(batch, gen).to(device), _randn((batch, dim), gen, device),
                            dist=dist, clamp_ratio=clamp_ratio)
        opt.zero_grad()
        ign_total_loss(losses, weights).backward()
        opt.step()
        for key in ("rec", "idem", "tight_raw"):
            history[key].append(float(losses[key].detach()))
    return f, history


def train_gan(data_sampler, dim: int, steps: int = 800, batch: int = 256, lr: float = 1e-3, hidden: int = 64, depth: int = 2,
              seed: int = 0, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, torch.nn.Module, dict[str, list]]:
    """A non-saturating GAN (Goodfellow et al. 2014) of IGN's size, the baseline for :func:`train_ign`.

    Generator ``G`` and discriminator ``D`` are :func:`make_mlp` nets (``D`` outputs a logit); per step one Adam step
    (betas (0.5, 0.999)) on ``E softplus(-D(x)) + E softplus(D(sg G(z)))`` for ``D``, then one on
    ``E softplus(-D(G(z)))`` for ``G`` (with ``D`` frozen). Batches come from a seeded CPU generator, moved to
    ``device``. Returns ``(G, D, history)`` with the per-step losses ``"d"`` and ``"g"``.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G = make_mlp(dim, dim, hidden=hidden, depth=depth, device=device)
    D = make_mlp(dim, 1, hidden=hidden, depth=depth, device=device)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list] = {"d": [], "g": []}
    softplus = torch.nn.functional.softplus
    for _ in range(_check_steps(steps)):
        x = data_sampler(batch, gen).to(device)
        fake = G(_randn((batch, dim), gen, device))
        loss_d = softplus(-D(x)).mean() + softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = softplus(-frozen_call(D, fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        history["d"].append(float(loss_d.detach()))
        history["g"].append(float(loss_g.detach()))
    return G, D, history


# ------------------------------------------------------------- score identity distillation (10085)
def eps_to_x0(x_t, eps, alpha, beta):
    """``x0_hat = (x_t - beta eps) / alpha`` (from ``x_t = alpha x_0 + beta eps``)."""
    return (x_t - beta * eps) / alpha


def x0_to_eps(x_t, x0_hat, alpha, beta):
    """``eps = (x_t - alpha x0_hat) / beta``, the inverse of :func:`eps_to_x0`."""
    return (x_t - alpha * x0_hat) / beta


def sid_losses(eps_teacher: torch.Tensor, eps_fake: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample SiD losses at one ``x_t = alpha g(z) + beta noise``, summed over feature dimensions:

    ``L1 = |eps_teacher - eps_fake|^2`` and ``L2 = <eps_teacher - eps_fake, eps_teacher - noise>`` (equal in expectation
    when ``eps_fake`` is the optimal denoiser of the student's samples). Gradients flow through every argument's graph.
    """
    if not eps_teacher.shape == eps_fake.shape == noise.shape:
        raise ValueError(f"eps_teacher, eps_fake and noise must share a shape, got {tuple(eps_teacher.shape)}, "
                         f"{tuple(eps_fake.shape)}, {tuple(noise.shape)}")
    gap = eps_teacher - eps_fake
    return (gap**2).sum(-1), (gap * (eps_teacher - noise)).sum(-1)


def sid_generator_loss(eps_teacher: torch.Tensor, eps_fake: torch.Tensor, noise: torch.Tensor, lam: float = 1.2) -> torch.Tensor:
    """``mean(L2 - lam L1)``, the paper's generator loss (its ``alpha = 1.2`` is our ``lam``)."""
    l1, l2 = sid_losses(eps_teacher, eps_fake, noise)
    return (l2 - lam * l1).mean()


def linear_gaussian_sid_grads(a, b, mu: float, sigma: float, alpha_bar, beta_bar) -> dict[str, tuple]:
    """Closed-form gradients in ``(a, b)`` for teacher ``N(mu, sigma^2)`` and student ``x_0 = a z + b`` at one noise level.

    ``'true'``: gradient of ``D = L1(theta, psi*(theta))``; ``'l1'``, ``'l2'``: gradients of ``L1``, ``L2`` with the fake
    denoiser frozen at ``psi*(theta)``. With ``A = alpha_bar``, ``B = beta_bar``, ``P = A^2 a^2 + B^2``,
    ``Q = A^2 sigma^2 + B^2``: ``dD/da = 2 A^4 B^2 a (a^2 - sigma^2)(P + Q) / (P^2 Q^2)``, ``dD/db = 2 A^2 B^2 (b - mu) / Q^2``,
    ``dL1/da = 2 A^6 B^2 a (a^2 - sigma^2)^2 / (P^2 Q^2)``, ``dL1/db = 2 A^4 B^2 (a^2 - sigma^2)(b - mu) / (P Q^2)``,
    ``dL2/da = 2 A^4 B^2 a (a^2 - sigma^2) / (P Q^2)``, ``dL2/db = A^2 B^2 (b - mu)(2 A^2 a^2 - A^2 sigma^2 + B^2) / (P Q^2)``
    (numpy-vectorised over any argument).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    a, b, A, B = (np.asarray(v, dtype=np.float64) for v in (a, b, alpha_bar, beta_bar))
    if not np.all(B > 0):
        raise ValueError("beta_bar must be positive")
    P, Q, s2 = A**2 * a**2 + B**2, A**2 * sigma**2 + B**2, sigma**2
    return {
        "true": (2 * A**4 * B**2 * a * (a**2 - s2) * (P + Q) / (P**2 * Q**2), 2 * A**2 * B**2 * (b - mu) / Q**2),
        "l1": (2 * A**6 * B**2 * a * (a**2 - s2) ** 2 / (P**2 * Q**2), 2 * A**4 * B**2 * (a**2 - s2) * (b - mu) / (P * Q**2)),
        "l2": (2 * A**4 * B**2 * a * (a**2 - s2) / (P * Q**2), A**2 * B**2 * (b - mu) * (2 * A**2 * a**2 - A**2 * s2 + B**2) / (P * Q**2)),
    }


class ResidualOnBase(torch.nn.Module):
    """``base(x) + mlp(x)`` with the MLP's last layer zero-initialised: starts exactly as ``base``."""

    def __init__(self, base: Callable[[torch.Tensor], torch.Tensor], in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2,
                 device: str | torch.device | None = None):
        super().__init__()
        self.base = base
        self.mlp = make_mlp(in_dim, out_dim, hidden=hidden, depth=depth, device=device)
        torch.nn.init.zeros_(self.mlp[-1].weight)
        torch.nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.mlp(x)


def linear_gaussian_sid_descent(a0: float, b0: float, mu: float, sigma: float, loss: str, lam: float = 1.2, steps: int = 4000,
                                lr: float = 0.05, t_range: tuple[float, float] = (0.1, 0.9), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient descent on ``(log a, b)`` with the closed-form gradients, ``t ~ U(t_range)`` per step, cosine VP.

    ``loss``: ``'true'``, ``'l1'``, ``'l2'`` or ``'sid'`` (= ``l2 - lam l1``). Returns the paths of ``a`` and ``b``
    (``steps + 1`` values each, ``nan`` after a divergence); ``a`` stays positive because the step is taken in ``log a``
    (no ``abs()`` clipping, which would hide a collapse).
    """
    if loss not in ("true", "l1", "l2", "sid"):
        raise ValueError(f"loss must be 'true', 'l1', 'l2' or 'sid', got {loss!r}")
    if not a0 > 0:
        raise ValueError(f"a0 must be positive, got {a0}")
    ts = np.random.default_rng(seed).uniform(*t_range, size=_check_steps(steps))
    log_a, b = math.log(a0), float(b0)
    a_path, b_path = [a0], [b]
    with np.errstate(over="ignore", invalid="ignore"):
        for t in ts:
            a = math.exp(log_a)
            g = linear_gaussian_sid_grads(a, b, mu, sigma, math.cos(math.pi * t / 2), math.sin(math.pi * t / 2))
            ga, gb = (g["l2"][0] - lam * g["l1"][0], g["l2"][1] - lam * g["l1"][1]) if loss == "sid" else g[loss]
            log_a, b = log_a - lr * a * float(ga), b - lr * float(gb)
            if not (math.isfinite(log_a) and log_a < 700 and math.isfinite(b)):
                break  # diverged: the rest of the path is nan
            a_path.append(math.exp(log_a))
            b_path.append(b)
    pad = [math.nan] * (steps + 1 - len(a_path))
    return np.array(a_path + pad), np.array(b_path + pad)


def w1_to_quantiles(samples, icdf_fn) -> float:
    """1-D Wasserstein-1 distance ``∫ |F_n^{-1}(q) - F^{-1}(q)| dq`` at the midpoints ``q_i = (i - 1/2) / n``.

    Unlike :func:`w1_to_cdf` it needs no grid, so samples far outside the data range are charged in full.
    """
    s = np.sort(_numpy(samples).ravel())
    if s.size == 0:
        raise ValueError("samples must not be empty")
    q = (np.arange(s.size) + 0.5) / s.size
    return float(np.mean(np.abs(s - _numpy(icdf_fn(q)).ravel())))


def _vp_cosine_coeffs(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)


def train_sid(teacher: GaussianMixture, loss: str = "sid", lam: float = 1.2, steps: int = 600, batch: int = 256,
              fake_steps: int = 2, t_range: tuple[float, float] = (0.2, 0.8), hidden: int = 64, lr_g: float = 5e-4,
              lr_fake: float = 2e-3, seed: int = 0, snapshot_every: int = 0, z_probe: torch.Tensor | None = None,
              device: str | torch.device = "cpu"):
    """Distil a one-step generator from the exact teacher denoiser ``teacher.eps_t`` (cosine VP), SiD-style.

    Generator ``g = z + mlp(z)`` and fake denoiser ``eps_psi = eps_teacher + mlp(x_t, t)`` both start at their base
    (SiD initialises the fake net from the teacher). Each generator step is preceded by ``fake_steps`` denoising steps of
    the fake net on detached student samples. ``loss``: ``'l1'`` (mean L1), ``'l2'`` (mean L2) or ``'sid'`` (L2 - lam L1).
    The generator's gradient flows through ``x_t`` into both denoisers, but only the generator's optimiser steps on it.
    Noise is drawn from a seeded CPU generator and moved to ``device``, where the teacher (moved), the nets and the
    updates live. Returns ``(g, snapshots)`` with ``(step, g(z_probe))`` pairs (on the CPU) every ``snapshot_every``
    steps (and at step 0).
    """
    if loss not in ("l1", "l2", "sid"):
        raise ValueError(f"loss must be 'l1', 'l2' or 'sid', got {loss!r}")
    device = torch.device(device)
    teacher = teacher.to(device)
    torch.manual_seed(seed)
    gen_ = torch.Generator().manual_seed(seed)
    d = teacher.dim

    def teacher_eps(inp: torch.Tensor) -> torch.Tensor:
        alpha, beta = _vp_cosine_coeffs(inp[:, d:])
        return teacher.eps_t(inp[:, :d], alpha, beta)

    g = ResidualOnBase(lambda z: z, d, d, hidden, device=device)
    fake = ResidualOnBase(teacher_eps, d + 1, d, hidden, device=device)
    opt_g, opt_f = torch.optim.Adam(g.parameters(), lr=lr_g), torch.optim.Adam(fake.parameters(), lr=lr_fake)

    def noised(x0: torch.Tensor):
        t = t_range[0] + (t_range[1] - t_range[0]) * _rand((x0.shape[0], 1), gen_, device)
        eps = _randn(x0.shape, gen_, device)
        alpha, beta = _vp_cosine_coeffs(t)
        return torch.cat([alpha * x0 + beta * eps, t], 1), eps

    snapshots = []
    for step in range(_check_steps(steps) + 1):
        if snapshot_every and z_probe is not None and step % snapshot_every == 0:
            with torch.no_grad():
                snapshots.append((step, g(z_probe.to(device)).cpu()))
        if step == steps:
            break
        for _ in range(fake_steps):
            with torch.no_grad():
                x0 = g(_randn((batch, d), gen_, device))
            inp, eps = noised(x0)
            opt_f.zero_grad()
            ((fake(inp) - eps) ** 2).sum(-1).mean().backward()
            opt_f.step()
        inp, eps = noised(g(_randn((batch, d), gen_, device)))
        l1, l2 = sid_losses(teacher_eps(inp), fake(inp), eps)
        objective = {"l1": l1.mean(), "l2": l2.mean(), "sid": (l2 - lam * l1).mean()}[loss]
        opt_g.zero_grad()
        objective.backward()
        opt_g.step()
    return g, snapshots
