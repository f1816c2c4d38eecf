"""Self-consuming loops: Gaussian models and a categorical "language model" refitted, generation after generation, on
their own samples (with optional real data), and the exact per-generation drift of the log-variance.

Serves notebook self-consuming-loops (kexue.fm/archives/9687).
"""

from __future__ import annotations

import math

import numpy as np

from ._helpers import _int, _positive

__all__ = ["self_consuming_gaussian", "self_consuming_categorical", "log_var_drift"]


def self_consuming_gaussian(n: int, generations: int, chains: int, lam: float = 1.0, dim: int = 1, n_real: int = 0,
                            fresh_real: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Gaussian models refitted on their own samples, vectorised over independent chains.

    Generation 0 is the truth ``N(0, I_dim)``. Model ``t`` is ``N(mean, lam * unbiased covariance)`` fitted to ``n``
    samples of model ``t - 1`` plus ``n_real`` real samples (drawn once per chain, or afresh every generation
    with ``fresh_real=True``). The fit needs ``n + n_real > dim`` points, else the covariance is singular. Returns
    ``mu`` ``(T+1, chains, dim)`` and ``var`` ``(T+1, chains)``, the trace of the covariance divided by ``dim``.
    """
    for name, v in (("n", n), ("generations", generations), ("chains", chains), ("dim", dim)):
        _int(name, v)
    n_real = _int("n_real", n_real, minimum=0)
    if n + n_real < 2:
        raise ValueError(f"need n + n_real >= 2 samples to estimate a variance, got {n + n_real}")
    if n + n_real <= dim:
        raise ValueError(f"need n + n_real > dim: the covariance fitted to n + n_real = {n + n_real} points in dim = {dim} "
                         "dimensions is singular")
    lam = _positive("lam", lam)
    rng = np.random.default_rng(seed)
    mus, vars_ = np.zeros((generations + 1, chains, dim)), np.ones((generations + 1, chains))
    batch = np.empty((chains, n + n_real, dim))  # each generation's training points: n synthetic, then the real ones
    batch[:, n:] = rng.normal(size=(chains, n_real, dim))
    mu, chol = mus[0], np.broadcast_to(np.eye(dim), (chains, dim, dim))
    for t in range(1, generations + 1):
        z = rng.standard_normal(size=(chains, n, dim))  # the same draws as rng.normal(size=...)
        if dim == 1:  # the Cholesky factor is the standard deviation: a plain product (the same numbers)
            np.multiply(chol, z, out=batch[:, :n])
        else:
            batch[:, :n] = np.einsum("rij,rkj->rki", chol, z)
        batch[:, :n] += mu[:, None, :]
        if fresh_real:
            batch[:, n:] = rng.normal(size=(chains, n_real, dim))
        mu = mus[t] = batch.mean(1)
        centred = batch - mu[:, None, :]
        cov = lam * np.einsum("rki,rkj->rij", centred, centred) / (batch.shape[1] - 1)
        # the 1e-300 ridge lets a collapsed chain (cov = 0) factorise; for dim = 1 the factor is a square root
        chol = np.sqrt(cov + 1e-300) if dim == 1 else np.linalg.cholesky(cov + 1e-300 * np.eye(dim))
        vars_[t] = np.trace(cov, axis1=1, axis2=2) / dim
    return {"mu": mus, "var": vars_}


def self_consuming_categorical(p0: np.ndarray, n: int, generations: int, temperature: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A categorical "language model" refitted on ``n >= 1`` of its own tokens per generation (maximum likelihood).

    Before sampling, the model is sharpened by ``temperature`` (``p^(1/T)`` renormalised; ``T < 1`` trades
    diversity for "quality"). A token with zero count is lost for good. Returns ``support`` and ``entropy``
    ``(T+1,)`` and the distributions ``p`` ``(T+1, V)``.
    """
    p = np.asarray(p0, dtype=float)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError("p0 must be a finite non-negative 1-D array with a positive sum")
    n, generations = _int("n", n), _int("generations", generations)
    temperature = _positive("temperature", temperature)
    rng = np.random.default_rng(seed)
    p = p / p.sum()
    ps = [p]
    for _ in range(generations):
        sharp = p ** (1 / temperature)
        if not sharp.sum() > 0:  # every p^(1/T) underflowed (tiny T): sharpen in log space, relative to the largest p
            with np.errstate(divide="ignore"):
                logp = np.where(p > 0, np.log(np.where(p > 0, p, 1)), -np.inf)
            sharp = np.exp((logp - logp.max()) / temperature)
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
