"""Autoregression over continuous image patches: the loss and the order (notebook multimodal-autoregression,
article 10197, "闭门造车之多模态思路浅谈（二）：自回归").

Three small, exact toys behind the article's two obstacles:

* **The loss.** Squared error is the negative log-likelihood of a fixed-variance Gaussian, so next-patch regression
  assumes Gaussian conditionals. Progressive noising makes each reverse step nearly Gaussian:
  :func:`reverse_conditional` gives the exact reverse step ``p(x_{t-1} | x_t)`` of a 1-D Gaussian-mixture datum under
  a cosine schedule (:func:`cosine_abar`), and :func:`reverse_step_kl` measures, by quadrature, how far each step is
  from its moment-matched Gaussian. :func:`target_noise_ratio` is the extra variance of regressing the sampled
  ``x_{t-1}`` instead of ``x_0``; :func:`ddpm_posterior` is **re-exported from** :mod:`kexue_lite.diffusion` (not
  reimplemented).
* **The attention mask.** :func:`noisy_patch_mask` is the notebook's precise reading of the article's sketched mask.
* **The order.** :func:`scan_order`, :func:`ising_joint` and :func:`chain_rule_nll_bits`: the exact chain rule is
  order-invariant, a previous-patch-only ("bigram") model is not.

Conventions: DDPM's time arrow (``x_0`` clean, ``x_T`` noise, ``abar_0 = 1``, ``beta_t = 1 - abar_t / abar_{t-1}``);
the article's "predict ``x_t`` from ``x_{t-1}``" counts the other way. KL in nats, code lengths in bits.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

import numpy as np

from kexue_lite import diffusion as _diffusion

__all__ = [
    "ddpm_posterior",
    "target_noise_ratio",
    "cosine_abar",
    "reverse_conditional",
    "reverse_step_kl",
    "SCAN_KINDS",
    "scan_order",
    "ising_joint",
    "chain_rule_nll_bits",
    "noisy_patch_mask",
]

#: DDPM's posterior ``q(x_{t-1} | x_t, x_0) = N(a x_0 + b x_t, beta_tilde)``: the same function as
#: :func:`kexue_lite.diffusion.ddpm_posterior` (re-exported, not reimplemented).
ddpm_posterior = _diffusion.ddpm_posterior

SCAN_KINDS = ("raster", "column", "snake", "spiral", "zigzag", "random")


# ------------------------------------------------------------------------------------------- checks
def _pos_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _real(value: object, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _float_array(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


# ------------------------------------------------------------------------------------------- the loss
def target_noise_ratio(abar_prev, beta_t) -> np.ndarray:
    """``R_t = beta_tilde_t / (a_t^2 Var(x_0 | x_t)) = (1 - abar_{t-1}) / (abar_{t-1} beta_t)`` for ``x_0 ~ N(0, 1)``.

    Regressing the sampled ``x_{t-1}`` on ``x_t`` instead of ``x_0`` multiplies the estimator's variance by
    ``1 + R_t`` (notebook multimodal-autoregression, derivation 2). Arguments as in :func:`ddpm_posterior`
    (``0 < beta_t < 1``, ``0 < abar_prev <= 1``; numpy broadcasting); returns float64.
    """
    abar_prev, beta_t = _float_array(abar_prev, "abar_prev"), _float_array(beta_t, "beta_t")
    ddpm_posterior(abar_prev, beta_t)  # validates the ranges (0 < beta_t < 1, 0 < abar_prev <= 1)
    closed = (1 - abar_prev) / (abar_prev * beta_t)
    return closed


def cosine_abar(T: int, clip: float = 1e-5) -> np.ndarray:
    """The cosine schedule kept away from 0: ``abar_t = clip + (1 - clip) cos^2(pi t / 2T)``, ``t = 0..T``.

    ``abar_0 = 1`` and ``abar_T = clip``, so the last ``beta_T = 1 - abar_T / abar_{T-1}`` stays below 1 (with the bare
    cosine it is exactly 1). The schedule is strictly decreasing for every ``T``: a hard clip ``max(cos^2, clip)``
    would make the last step vanish (``beta_T = 0``) once ``sin^2(pi / 2T) <= clip``, i.e. from ``T = 497`` at
    ``clip = 1e-5``. The two differ by at most ``clip`` in ``abar``.
    """
    T = _pos_int(T, "T")
    clip = _real(clip, "clip", positive=True)
    if not clip < 1:
        raise ValueError(f"clip must lie in (0, 1), got {clip}")
    return clip + (1 - clip) * np.cos(np.pi * np.arange(T + 1) / (2 * T)) ** 2


def _mixture(modes: Sequence[float], weights: Sequence[float], s0: float) -> tuple[np.ndarray, np.ndarray, float]:
    s0 = _real(s0, "s0", positive=True)
    modes_a, weights_a = _float_array(modes, "modes"), _float_array(weights, "weights")
    if modes_a.ndim != 1 or modes_a.size == 0:
        raise ValueError(f"modes must be a non-empty 1-D sequence, got shape {modes_a.shape}")
    if weights_a.shape != modes_a.shape:
        raise ValueError(f"weights must have the shape of modes {modes_a.shape}, got {weights_a.shape}")
    if np.any(weights_a <= 0) or abs(weights_a.sum() - 1) > 1e-9:
        raise ValueError(f"weights must be positive and sum to 1, got {weights_a}")
    return modes_a, weights_a, s0


def _schedule(T: int, schedule: str) -> np.ndarray:
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine', got {schedule!r}")
    return cosine_abar(T)


def _reverse_params(abar: np.ndarray, t: int, x_t: np.ndarray, modes: np.ndarray, weights: np.ndarray,
                    s0: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The reverse step as a mixture: one component per data mode (shared variance). ``x_t``: any shape."""
    abar_prev, alpha = abar[t - 1], abar[t] / abar[t - 1]
    beta = 1 - alpha
    mu = np.sqrt(abar_prev) * modes  # the law of x_{t-1}: components N(mu_k, v)
    v = abar_prev * s0**2 + 1 - abar_prev
    var = 1 / (1 / v + alpha / beta)  # Gaussian prior times Gaussian likelihood, per component
    x = x_t[..., None]
    means = var * (mu / v + np.sqrt(alpha) * x / beta)
    ev = alpha * v + beta  # evidence of x_t under component k: N(sqrt(alpha) mu_k, alpha v + beta)
    logw = np.log(weights) - (x - np.sqrt(alpha) * mu) ** 2 / (2 * ev)
    logw -= logw.max(-1, keepdims=True)
    logw -= np.log(np.exp(logw).sum(-1, keepdims=True))
    return logw, means, float(var)


def reverse_conditional(T: int, t: int, x_t, s0: float = 0.1, modes: Sequence[float] = (-1.0, 1.0),
                        weights: Sequence[float] = (0.5, 0.5), schedule: str = "cosine") -> tuple[np.ndarray, np.ndarray, float]:
    """The exact reverse step ``p(x_{t-1} | x_t)`` for data ``sum_k w_k N(m_k, s0^2)`` noised by
    ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (:func:`cosine_abar`).

    Every marginal is a mixture with the same components, so the reverse step is the mixture
    ``sum_k w_k'(x_t) N(means_k(x_t), var)``; returns ``(weights', means, var)`` with ``weights'`` and ``means`` of
    shape ``x_t.shape + (K,)`` and the common variance ``var`` (notebook multimodal-autoregression, derivation 6).
    """
    T = _pos_int(T, "T")
    t = _pos_int(t, "t")
    if t > T:
        raise ValueError(f"t must lie in 1..T = {T}, got {t}")
    modes_a, weights_a, s0 = _mixture(modes, weights, s0)
    logw, means, var = _reverse_params(_schedule(T, schedule), t, _float_array(x_t, "x_t"), modes_a, weights_a, s0)
    return np.exp(logw), means, var


def _gmm_logpdf(x: np.ndarray, logw: np.ndarray, means: np.ndarray, var: float) -> np.ndarray:
    """log of sum_k w_k N(x; means_k, var): x of shape (..., G), log w and means of shape (..., K)."""
    z = [logw[..., k, None] - (x - means[..., k, None]) ** 2 / (2 * var) for k in range(means.shape[-1])]
    zmax = np.maximum.reduce(z) if len(z) > 1 else z[0]
    total = sum(np.exp(zk - zmax) for zk in z)
    return zmax + np.log(total) - 0.5 * np.log(2 * np.pi * var)


def reverse_step_kl(T: int, s0: float = 0.1, modes: Sequence[float] = (-1.0, 1.0), weights: Sequence[float] = (0.5, 0.5),
                    schedule: str = "cosine", nx: int = 201, ng: int = 801) -> np.ndarray:
    """``E_{x_t} KL(p(x_{t-1} | x_t) || N(its mean, its variance))`` in nats, for ``t = 1..T`` (shape ``(T,)``).

    The KL of each reverse step (:func:`reverse_conditional`) from its moment-matched Gaussian is
    ``1/2 log(2 pi e sigma^2) - H(p)``; ``H(p)`` by the trapezoid rule on ``ng`` points from 8 component standard
    deviations below the conditional's lowest component mean to 8 above its highest, for each ``x_t`` (a fixed grid
    would miss the narrow components at large ``T``; a window of 16 overall standard deviations around the
    conditional's mean misses a light component far from a heavy one). The average over ``x_t`` uses ``nx`` points spanning 16 standard deviations of the marginal of ``x_t``,
    weighted by its density. Zero exactly when every reverse step is Gaussian: squared error is then the exact NLL.
    """
    T = _pos_int(T, "T")
    nx, ng = _pos_int(nx, "nx", 3), _pos_int(ng, "ng", 3)
    modes_a, weights_a, s0 = _mixture(modes, weights, s0)
    abar = _schedule(T, schedule)
    out = np.empty(T)
    unit = np.linspace(0.0, 1.0, ng)
    for t in range(1, T + 1):
        # the marginal of x_t: components N(sqrt(abar_t) m_k, abar_t s0^2 + 1 - abar_t)
        mk, vk = np.sqrt(abar[t]) * modes_a, abar[t] * s0**2 + 1 - abar[t]
        m_x = float(weights_a @ mk)
        sd_x = math.sqrt(vk + float(weights_a @ (mk - m_x) ** 2))
        xs = m_x + sd_x * np.linspace(-8.0, 8.0, nx)
        qx = np.exp(_gmm_logpdf(xs[None, :], np.log(weights_a)[None, :], mk[None, :], vk)[0])
        logw, means, var = _reverse_params(abar, t, xs, modes_a, weights_a, s0)
        w = np.exp(logw)
        mean = (w * means).sum(-1)
        var_tot = var + (w * (means - mean[:, None]) ** 2).sum(-1)
        lo, hi = means.min(-1) - 8 * math.sqrt(var), means.max(-1) + 8 * math.sqrt(var)
        grid = lo[:, None] + (hi - lo)[:, None] * unit[None, :]
        logp = _gmm_logpdf(grid, logw, means, var)
        dx = grid[:, 1] - grid[:, 0]
        entropy = -np.trapezoid(np.exp(logp) * logp, dx=1.0, axis=-1) * dx
        kl = np.maximum(0.5 * np.log(2 * np.pi * np.e * var_tot) - entropy, 0.0)
        out[t - 1] = float((qx * kl).sum() / qx.sum())
    return out


# ------------------------------------------------------------------------------------------- the mask
def noisy_patch_mask(P: int, T: int, n_text: int = 0) -> np.ndarray:
    """The attention mask (``mask[i, j]``: query ``i`` may attend to key ``j``) for ``P`` patches of ``T`` tokens each
    (its ``T - 1`` noisy versions, then the clean patch) followed by ``n_text`` text tokens.

    The notebook's precise reading of the article's sketched mask: every token of patch ``i`` attends to itself and to
    the clean tokens of patches ``j < i`` (noisy tokens of one patch do not see each other); a text token attends to
    every clean patch token, to the earlier text tokens and to itself. Without text, ``mask.sum() = T P (P + 1) / 2``.
    """
    P, T = _pos_int(P, "P"), _pos_int(T, "T")
    n_text = _pos_int(n_text, "n_text", 0)
    n = P * T + n_text
    mask = np.zeros((n, n), dtype=bool)
    patch = np.repeat(np.arange(P), T)
    clean = np.zeros(P * T, dtype=bool)
    clean[T - 1::T] = True
    mask[: P * T, : P * T] = clean[None, :] & (patch[None, :] < patch[:, None])
    mask[np.arange(n), np.arange(n)] = True
    if n_text:
        mask[P * T:, : P * T] = clean[None, :]
        mask[P * T:, P * T:] = np.tril(np.ones((n_text, n_text), dtype=bool))
    return mask


# ------------------------------------------------------------------------------------------- the order
def scan_order(n: int, kind: str, seed: int = 0) -> list[int]:
    """A scan of an ``n x n`` grid as a permutation of the row-major indices ``0 .. n^2 - 1``.

    ``'raster'`` (rows, left to right), ``'column'`` (columns, top to bottom), ``'snake'`` (rows, alternating
    direction), ``'spiral'`` (from the centre outwards, the reverse of a clockwise spiral in from the top-left
    corner), ``'zigzag'`` (JPEG's zigzag over the anti-diagonals from the top-left), ``'random'``
    (``numpy.random.default_rng(seed).permutation``).
    """
    n = _pos_int(n, "n")
    seed = _pos_int(seed, "seed", 0)
    if kind not in SCAN_KINDS:
        raise ValueError(f"kind must be one of {SCAN_KINDS}, got {kind!r}")
    if kind == "raster":
        return list(range(n * n))
    if kind == "column":
        return [r * n + c for c in range(n) for r in range(n)]
    if kind == "snake":
        return [r * n + (c if r % 2 == 0 else n - 1 - c) for r in range(n) for c in range(n)]
    if kind == "zigzag":
        out = []
        for d in range(2 * n - 1):
            cells = [(r, d - r) for r in range(max(0, d - n + 1), min(d, n - 1) + 1)]
            out += [r * n + c for r, c in (cells if d % 2 else cells[::-1])]
        return out
    if kind == "spiral":
        out, top, bottom, left, right = [], 0, n - 1, 0, n - 1
        while top <= bottom and left <= right:
            out += [top * n + c for c in range(left, right + 1)]
            out += [r * n + right for r in range(top + 1, bottom + 1)]
            if top < bottom:
                out += [bottom * n + c for c in range(right - 1, left - 1, -1)]
            if left < right:
                out += [r * n + left for r in range(bottom - 1, top, -1)]
            top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
        return out[::-1]
    return [int(i) for i in np.random.default_rng(seed).permutation(n * n)]


def ising_joint(n: int = 4, Jh: float = 0.9, Jv: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Every state of an ``n x n`` Ising image with free boundary and its exact probability,
    ``p(s) ∝ exp(Jh sum s_i s_right(i) + Jv sum s_i s_below(i))`` with spins ``s = 2 X - 1``.

    Returns ``X`` (``(2^(n^2), n^2)`` uint8 in {0, 1}, row-major pixels) and ``p`` (float64, sums to 1).
    ``ValueError`` for ``n > 4`` (``2^25`` states would not fit the toy's memory budget).
    """
    n = _pos_int(n, "n")
    if n > 4:
        raise ValueError(f"n must be at most 4 (2^(n^2) states are enumerated), got {n}")
    Jh, Jv = _real(Jh, "Jh"), _real(Jv, "Jv")
    m = n * n
    codes = np.arange(2**m, dtype=np.int64)
    X = ((codes[:, None] >> np.arange(m)) & 1).astype(np.uint8)
    s = 2.0 * X.reshape(-1, n, n) - 1
    energy = Jh * (s[:, :, :-1] * s[:, :, 1:]).sum((1, 2)) + Jv * (s[:, :-1, :] * s[:, 1:, :]).sum((1, 2))
    logp = energy - energy.max()
    p = np.exp(logp)
    return X, p / p.sum()


def _entropy_bits(X: np.ndarray, p: np.ndarray, cols: Sequence[int]) -> float:
    """Entropy (bits) of the 0/1 pixels ``cols`` of ``X`` under ``p``, from their exact marginal."""
    if len(cols) == 0:
        return 0.0
    code = X[:, cols[0]].astype(np.int64)
    for j, c in enumerate(cols[1:], 1):
        code |= X[:, c].astype(np.int64) << j
    marg = np.bincount(code, weights=p)
    marg = marg[marg > 0]
    return float(-(marg * np.log2(marg)).sum())


def chain_rule_nll_bits(X, p, order: Sequence[int], context: str = "full") -> float:
    """Expected code length (bits) of ``X ~ p`` under the best model that predicts the pixels in ``order``.

    ``context='full'``: each pixel given all earlier ones, ``sum_i H(X_pi_i | X_pi_<i)`` (the exact chain rule, equal
    to ``H(X)`` for every order). ``context='previous'``: each pixel given the one before it only (a bigram model with
    the true pair conditionals), ``H(X_pi_1) + sum_i H(X_pi_i | X_pi_{i-1}) >= H(X)``, which depends on the order.
    Conditional entropies are differences of marginal entropies (notebook multimodal-autoregression).
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (states x pixels), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.integer) or X.dtype == bool:
        raise TypeError(f"X must be an integer array of 0/1 pixels, got dtype {X.dtype}")
    if X.min() < 0 or X.max() > 1:
        raise ValueError("X must hold only 0 and 1")
    p = np.asarray(p)
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"p must be a float array of probabilities, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if p.shape != (X.shape[0],):
        raise ValueError(f"p must have shape ({X.shape[0]},), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        raise ValueError("p must be finite, non-negative and sum to 1")
    order = [int(i) for i in order]
    if sorted(order) != list(range(X.shape[1])):
        raise ValueError(f"order must be a permutation of range({X.shape[1]}), got {order}")
    if context == "full":
        prefix = [_entropy_bits(X, p, order[:k]) for k in range(len(order) + 1)]
        return float(sum(prefix[k + 1] - prefix[k] for k in range(len(order))))
    if context == "previous":  # H(first) + sum of H(pair) - H(earlier of the pair)
        single = {i: _entropy_bits(X, p, [i]) for i in order}
        total = single[order[0]]
        for k in range(1, len(order)):
            total += _entropy_bits(X, p, order[k - 1:k + 1]) - single[order[k - 1]]
        return float(total)
    raise ValueError(f"context must be 'full' or 'previous', got {context!r}")
