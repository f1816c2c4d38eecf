"""Sample-quality measures: the 1-D Wasserstein-1 distance of samples to a law (by its CDF on a grid, or by its
quantiles), the squared RBF maximum mean discrepancy and mode coverage.

Serves notebooks sde-framework (kexue.fm/archives/9209), rectified-flow (9497), score-identity-distillation (10085)
and idempotent-generative-network (9969).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._helpers import _callable, _int, _numpy, _positive, _real, _samples, _samples_1d

__all__ = ["w1_to_cdf", "w1_to_quantiles", "mmd_rbf", "mmd_rbf_to", "mode_coverage"]


def w1_to_cdf(samples, cdf_fn, lo: float, hi: float, n_grid: int = 4001) -> float:
    """1-D Wasserstein-1 distance ``int |F_n - F| dx`` on a grid over ``[lo, hi]`` (samples outside are clipped).

    ``samples``: non-empty, finite, shape ``(n,)`` or ``(n, 1)``; ``cdf_fn`` maps the ``(n_grid,)`` grid to ``n_grid``
    values.
    """
    s = _samples_1d("samples", samples)
    _callable("cdf_fn", cdf_fn)
    lo, hi = _real("lo", lo), _real("hi", hi)
    if not lo < hi:
        raise ValueError(f"need lo < hi, got {lo}, {hi}")
    n_grid = _int("n_grid", n_grid, minimum=2)
    grid = np.linspace(lo, hi, n_grid)
    emp = np.searchsorted(s, grid, side="right") / s.size
    exact = _numpy(cdf_fn(grid)).ravel()
    if exact.shape != grid.shape:
        raise ValueError(f"cdf_fn must return {n_grid} values for the grid, got {exact.size}")
    return float(np.trapezoid(np.abs(emp - exact), grid))


def w1_to_quantiles(samples, icdf_fn) -> float:
    """1-D Wasserstein-1 distance ``∫ |F_n^{-1}(q) - F^{-1}(q)| dq`` at the midpoints ``q_i = (i - 1/2) / n``.

    Unlike :func:`w1_to_cdf` it needs no grid, so samples far outside the data range are charged in full.
    ``samples``: non-empty, finite, shape ``(n,)`` or ``(n, 1)``.
    """
    s = _samples_1d("samples", samples)
    _callable("icdf_fn", icdf_fn)
    q = (np.arange(s.size) + 0.5) / s.size
    exact = _numpy(icdf_fn(q)).ravel()
    if exact.shape != s.shape:
        raise ValueError(f"icdf_fn must return {s.size} values for {s.size} quantile levels, got {exact.size}")
    return float(np.mean(np.abs(s - exact)))


def _rbf_mean(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Mean of ``exp(-|a_i - b_j|^2 / (2 bandwidth^2))`` over all pairs (in place on one buffer)."""
    return torch.cdist(a, b).pow_(2).neg_().div_(2 * bandwidth**2).exp_().mean()


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.3) -> float:
    """Squared maximum mean discrepancy with an RBF kernel (biased V-statistic) between non-empty finite ``(n, d)``
    and ``(m, d)`` samples."""
    return mmd_rbf_to(y, bandwidth)(x)


def mmd_rbf_to(y: torch.Tensor, bandwidth: float = 0.3) -> Callable[[torch.Tensor], float]:
    """``x -> mmd_rbf(x, y, bandwidth)`` for a fixed sample ``y``, with the ``y``-``y`` term computed once: a figure's
    MMDs to one data sample then cost two kernel matrices each instead of three."""
    bandwidth = _positive("bandwidth", bandwidth)
    y = _samples("y", y)
    k_yy = _rbf_mean(y, y, bandwidth)

    def mmd(x: torch.Tensor) -> float:
        x = _samples("x", x)
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
        return float(_rbf_mean(x, x, bandwidth) + k_yy - 2 * _rbf_mean(x, y, bandwidth))

    return mmd


def mode_coverage(x: torch.Tensor, centers: torch.Tensor, radius: float) -> tuple[float, np.ndarray]:
    """Fraction of samples within ``radius`` of some center, and the fraction of samples at each center
    (``x`` ``(n, d)`` and ``centers`` ``(K, d)`` non-empty and finite)."""
    radius = _positive("radius", radius)
    x, centers = _samples("x", x), _samples("centers", centers)
    if x.shape[1] != centers.shape[1]:
        raise ValueError(f"x and centers must have the same dimension, got {x.shape[1]} and {centers.shape[1]}")
    d = torch.cdist(x, centers)
    near = d.min(1).values < radius
    per = np.array([float(((d.argmin(1) == j) & near).double().mean()) for j in range(centers.shape[0])])
    return float(near.double().mean()), per
