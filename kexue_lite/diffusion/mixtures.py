"""Gaussian mixtures with exact density, score, diffused law, Tweedie posterior mean, CDF and quantiles; the part's
toy data (the two-mode 1-D law, the ring of Gaussians) and the exact score of a diffused empirical law.

Serves every notebook of the generative part: sde-framework (kexue.fm/archives/9209), rectified-flow (9497),
score-identity-distillation (10085), idempotent-generative-network (9969). A :class:`GaussianMixture` lives on one
device (``device=`` or :meth:`GaussianMixture.to`) and refuses inputs on another; random draws are made on the
device of the ``torch.Generator`` passed in, then moved, so one seed gives the same numbers on CPU and CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._helpers import _int, _numpy, _positive, _randn, _real, _samples

__all__ = ["GaussianMixture", "two_mode_1d", "ring_mixture", "empirical_score"]


class GaussianMixture:
    """A mixture of Gaussians in ``d`` dimensions with exact density, score and diffused law (torch float64).

    ``weights`` ``(K,)`` (normalised), ``means`` ``(K, d)``, ``covs``: variances ``(K,)``, diagonals ``(K, d)`` or
    full symmetric matrices ``(K, d, d)`` (lists, arrays or tensors), all finite. It lives on ``device`` (default:
    that of a tensor argument, else the CPU). Inputs ``x`` are finite ``(n, d)`` tensors on that device or arrays;
    outputs are float64 tensors there.
    """

    def __init__(self, weights, means, covs, device: str | torch.device | None = None):
        if device is None:
            device = next((v.device for v in (weights, means, covs) if isinstance(v, torch.Tensor)), "cpu")

        def tensor(name: str, v) -> torch.Tensor:
            if isinstance(v, torch.Tensor):
                if v.is_complex():
                    raise TypeError(f"{name} must be real, got dtype {v.dtype}")
                t = v.detach().to(device=device, dtype=torch.float64, copy=True)
            else:
                try:
                    t = torch.as_tensor(np.asarray(v, dtype=float), device=device)
                except (TypeError, ValueError) as err:
                    raise TypeError(f"{name} must be real numbers, got {v!r}") from err
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} must be finite (no nan or inf)")
            return t

        w, mu, c = tensor("weights", weights), tensor("means", means), tensor("covs", covs)
        self.device = w.device  # with its index: "cuda" becomes cuda:0, the device tensors report
        if mu.ndim == 1:
            mu = mu[:, None]
        if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
            raise ValueError(f"means must have shape (K,) or (K, d) with K, d >= 1, got {tuple(mu.shape)}")
        K, d = mu.shape
        if w.shape != (K,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {K} non-negative numbers with a positive sum, got {w.tolist()}")
        if c.shape == (K,):
            c = c[:, None, None] * torch.eye(d, dtype=torch.float64, device=self.device)
        elif c.shape == (K, d):
            c = torch.diag_embed(c)
        elif c.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K},), ({K}, {d}) or ({K}, {d}, {d}), got {tuple(c.shape)}")
        if not torch.allclose(c, c.transpose(-1, -2), rtol=1e-12, atol=1e-12 * float(c.abs().max())):
            raise ValueError("every covariance in covs must be symmetric")
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
            if x.is_complex():
                raise TypeError(f"x must be real, got dtype {x.dtype}")
            x = x.to(torch.float64)
        else:
            x = torch.as_tensor(np.asarray(x, dtype=float), device=self.device)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x must be finite (no nan or inf)")
        return x

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples on the mixture's device, drawn with ``generator`` on the generator's own device."""
        n = _int("n", n)
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
        """The law of ``alpha x_0 + beta eps``: means ``alpha mu_k``, covariances ``alpha^2 Sigma_k + beta^2 I``
        (``alpha``, ``beta`` finite numbers, not both 0)."""
        alpha, beta = _real("alpha", alpha), _real("beta", beta)
        if alpha == 0 and beta == 0:
            raise ValueError("alpha and beta must not both be 0 (the diffused law would be a point mass)")
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.device)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + beta**2 * eye)

    def score_t(self, x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Score of the diffused law with per-sample ``alpha, beta`` (``(n, 1)``), differentiable in ``x``.

        Component ``k`` has covariance ``alpha^2 Sigma_k + beta^2 I = U_k diag(alpha^2 lambda_k + beta^2) U_k^T``, so its
        precision and log-determinant come from the eigenvalues, with no matrix inverse per sample.
        """
        x = self._x(x)
        for name, v in (("alpha", alpha), ("beta", beta)):
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != (x.shape[0], 1):
                raise ValueError(f"{name} must be a tensor of shape ({x.shape[0]}, 1), got "
                                 f"{tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name} must be finite (no nan or inf)")
        if bool(((alpha == 0) & (beta == 0)).any()):
            raise ValueError("alpha and beta must not both be 0 for any sample")
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
        """Tweedie: ``E[x_0 | x_t] = (x + beta^2 grad log p_t(x)) / alpha`` (``alpha != 0``)."""
        x = self._x(x)
        alpha, beta = _real("alpha", alpha), _real("beta", beta)
        if alpha == 0:
            raise ValueError("alpha must not be 0: x_t then carries no information on x_0 (Tweedie divides by alpha)")
        return (x + beta**2 * self.diffuse(alpha, beta).score(x)) / alpha

    def cdf(self, x) -> torch.Tensor:
        if self.dim != 1:
            raise ValueError("cdf is defined for one-dimensional mixtures only")
        x = self._x(x)
        sd = torch.sqrt(self.covs[:, 0, 0])
        return (self.weights * 0.5 * (1 + torch.erf((x - self.means[:, 0]) / (sd * math.sqrt(2))))).sum(1)

    def icdf(self, q) -> torch.Tensor:
        """Quantiles by bisection (100 halvings), 1-D only; ``q`` in ``[0, 1]`` of any shape (``q = 0, 1`` give
        ``-inf, inf``), the result has ``q``'s shape."""
        if self.dim != 1:
            raise ValueError("icdf is defined for one-dimensional mixtures only")
        q_np = _numpy(q)
        if np.isnan(q_np).any() or (q_np < 0).any() or (q_np > 1).any():
            raise ValueError("q must lie in [0, 1]")
        shape = q_np.shape
        q = torch.as_tensor(q_np.reshape(-1), device=self.device)
        sd = torch.sqrt(self.covs[:, 0, 0])
        lo = torch.full_like(q, float((self.means[:, 0] - 40 * sd).min()))
        hi = torch.full_like(q, float((self.means[:, 0] + 40 * sd).max()))
        for _ in range(100):
            mid = (lo + hi) / 2
            below = self.cdf(mid[:, None]) < q
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        out = (lo + hi) / 2
        out = torch.where(q == 0, -math.inf, torch.where(q == 1, math.inf, out))
        return out.reshape(shape)


def two_mode_1d(weights=(0.3, 0.7), means=(-2.0, 1.5), stds=(0.3, 0.5)) -> GaussianMixture:
    """The part's 1-D running example: two modes with weights 0.3 / 0.7 (``stds`` positive)."""
    stds = np.asarray(stds, dtype=float)
    if not (np.isfinite(stds).all() and (stds > 0).all()):
        raise ValueError(f"stds must be finite and positive, got {stds.tolist()}")
    return GaussianMixture(weights, np.asarray(means)[:, None], stds**2)


def ring_mixture(k: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """``k`` equal isotropic Gaussians on a circle of the given radius (2-D)."""
    k, radius, std = _int("k", k), _positive("radius", radius), _positive("std", std)
    angles = 2 * np.pi * np.arange(k) / k
    return GaussianMixture(np.ones(k), radius * np.stack([np.cos(angles), np.sin(angles)], 1), np.full(k, std**2))


def empirical_score(x: torch.Tensor, data: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Exact score of ``(1/M) sum_k N(alpha x_0^(k), beta^2 I)``: the posterior-weighted conditional scores.

    ``x`` ``(n, d)`` and ``data`` ``(M, d)`` are non-empty finite tensors, ``beta > 0``.
    """
    x, data = _samples("x", x), _samples("data", data)
    if x.shape[1] != data.shape[1]:
        raise ValueError(f"x and data must have the same dimension, got {x.shape[1]} and {data.shape[1]}")
    alpha, beta = _real("alpha", alpha), _positive("beta", beta)
    diff = x[:, None, :] - alpha * data[None]
    resp = torch.softmax(-(diff**2).sum(-1) / (2 * beta**2), dim=1)
    return -(resp[:, :, None] * diff).sum(1) / beta**2
