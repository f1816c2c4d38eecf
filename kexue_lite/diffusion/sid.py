"""Score identity distillation: the ``eps``/``x_0`` conversions, the per-sample SiD losses ``L1``, ``L2`` and the
generator loss ``L2 - lam L1``, the closed-form gradients for a Gaussian teacher and a linear student and their
gradient descent, and a SiD trainer of a one-step generator from an exact mixture teacher.

Serves notebook score-identity-distillation (kexue.fm/archives/10085; Zhou et al., arXiv:2404.04057), with the cosine
VP schedule ``alpha = cos(pi t / 2)``, ``beta = sin(pi t / 2)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..optim import Adam
from ._helpers import _check_steps, _int, _positive, _rand, _randn, _real, _seeded_generator
from .mixtures import GaussianMixture
from .nets import ResidualOnBase

__all__ = [
    "eps_to_x0",
    "x0_to_eps",
    "sid_losses",
    "sid_generator_loss",
    "linear_gaussian_sid_grads",
    "linear_gaussian_sid_descent",
    "train_sid",
]


def _nonzero(name: str, v: object) -> None:
    """Refuse a numeric ``v`` that is (or has an entry) 0; symbolic values (sympy) pass."""
    if isinstance(v, torch.Tensor):
        zero = bool((v == 0).any())
    elif isinstance(v, np.ndarray):
        zero = bool((v == 0).any())
    else:
        zero = v == 0
        zero = zero if isinstance(zero, bool) else False
    if zero:
        raise ValueError(f"{name} must not be 0 (it is divided by)")


def eps_to_x0(x_t, eps, alpha, beta):
    """``x0_hat = (x_t - beta eps) / alpha`` (from ``x_t = alpha x_0 + beta eps``; ``alpha != 0``; numbers, arrays,
    tensors or sympy expressions)."""
    _nonzero("alpha", alpha)
    return (x_t - beta * eps) / alpha


def x0_to_eps(x_t, x0_hat, alpha, beta):
    """``eps = (x_t - alpha x0_hat) / beta``, the inverse of :func:`eps_to_x0` (``beta != 0``)."""
    _nonzero("beta", beta)
    return (x_t - alpha * x0_hat) / beta


def sid_losses(eps_teacher: torch.Tensor, eps_fake: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample SiD losses at one ``x_t = alpha g(z) + beta noise``, summed over feature dimensions:

    ``L1 = |eps_teacher - eps_fake|^2`` and ``L2 = <eps_teacher - eps_fake, eps_teacher - noise>`` (equal in expectation
    when ``eps_fake`` is the optimal denoiser of the student's samples). Gradients flow through every argument's graph.
    """
    for name, v in (("eps_teacher", eps_teacher), ("eps_fake", eps_fake), ("noise", noise)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(v).__name__}")
    if not eps_teacher.shape == eps_fake.shape == noise.shape:
        raise ValueError(f"eps_teacher, eps_fake and noise must share a shape, got {tuple(eps_teacher.shape)}, "
                         f"{tuple(eps_fake.shape)}, {tuple(noise.shape)}")
    if eps_teacher.ndim == 0:
        raise ValueError("eps_teacher, eps_fake and noise must have a feature axis, got scalars")
    gap = eps_teacher - eps_fake
    return (gap**2).sum(-1), (gap * (eps_teacher - noise)).sum(-1)


def sid_generator_loss(eps_teacher: torch.Tensor, eps_fake: torch.Tensor, noise: torch.Tensor, lam: float = 1.2) -> torch.Tensor:
    """``mean(L2 - lam L1)``, the paper's generator loss (its ``alpha = 1.2`` is our ``lam``), over at least one sample."""
    lam = _real("lam", lam)
    l1, l2 = sid_losses(eps_teacher, eps_fake, noise)
    if l1.numel() == 0:
        raise ValueError("eps_teacher, eps_fake and noise must hold at least one sample")
    return (l2 - lam * l1).mean()


def linear_gaussian_sid_grads(a, b, mu: float, sigma: float, alpha_bar, beta_bar) -> dict[str, tuple]:
    """Closed-form gradients in ``(a, b)`` for teacher ``N(mu, sigma^2)`` and student ``x_0 = a z + b`` at one noise level.

    ``'true'``: gradient of ``D = L1(theta, psi*(theta))``; ``'l1'``, ``'l2'``: gradients of ``L1``, ``L2`` with the fake
    denoiser frozen at ``psi*(theta)``. With ``A = alpha_bar``, ``B = beta_bar``, ``P = A^2 a^2 + B^2``,
    ``Q = A^2 sigma^2 + B^2``: ``dD/da = 2 A^4 B^2 a (a^2 - sigma^2)(P + Q) / (P^2 Q^2)``, ``dD/db = 2 A^2 B^2 (b - mu) / Q^2``,
    ``dL1/da = 2 A^6 B^2 a (a^2 - sigma^2)^2 / (P^2 Q^2)``, ``dL1/db = 2 A^4 B^2 (a^2 - sigma^2)(b - mu) / (P Q^2)``,
    ``dL2/da = 2 A^4 B^2 a (a^2 - sigma^2) / (P Q^2)``, ``dL2/db = A^2 B^2 (b - mu)(2 A^2 a^2 - A^2 sigma^2 + B^2) / (P Q^2)``
    (numpy-vectorised over any argument; every argument finite, ``sigma`` and ``beta_bar`` positive).
    """
    sigma, mu = _positive("sigma", sigma), _real("mu", mu)
    a, b, A, B = (np.asarray(v, dtype=np.float64) for v in (a, b, alpha_bar, beta_bar))
    for name, v in (("a", a), ("b", b), ("alpha_bar", A), ("beta_bar", B)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite (no nan or inf)")
    if not np.all(B > 0):
        raise ValueError("beta_bar must be positive")
    return _sid_grads(a, b, mu, sigma, A, B)


def _sid_grads(a, b, mu, sigma, A, B) -> dict[str, tuple]:
    """The closed forms of :func:`linear_gaussian_sid_grads`, unchecked: numpy arrays or plain floats."""
    P, Q, s2 = A**2 * a**2 + B**2, A**2 * sigma**2 + B**2, sigma**2
    return {
        "true": (2 * A**4 * B**2 * a * (a**2 - s2) * (P + Q) / (P**2 * Q**2), 2 * A**2 * B**2 * (b - mu) / Q**2),
        "l1": (2 * A**6 * B**2 * a * (a**2 - s2) ** 2 / (P**2 * Q**2), 2 * A**4 * B**2 * (a**2 - s2) * (b - mu) / (P * Q**2)),
        "l2": (2 * A**4 * B**2 * a * (a**2 - s2) / (P * Q**2), A**2 * B**2 * (b - mu) * (2 * A**2 * a**2 - A**2 * s2 + B**2) / (P * Q**2)),
    }


def _t_range(t_range: object, closed: bool) -> tuple[float, float]:
    """``(t_lo, t_hi)`` with ``t_lo < t_hi`` inside ``[0, 1]`` (``closed``) or ``(0, 1]``."""
    try:
        lo, hi = t_range
    except (TypeError, ValueError) as err:
        raise ValueError(f"t_range must be a pair (t_lo, t_hi), got {t_range!r}") from err
    lo, hi = _real("t_range[0]", lo), _real("t_range[1]", hi)
    if not ((0 <= lo if closed else 0 < lo) and lo < hi <= 1):
        raise ValueError(f"t_range must satisfy {'0 <=' if closed else '0 <'} t_lo < t_hi <= 1, got {t_range!r}")
    return lo, hi


def linear_gaussian_sid_descent(a0: float, b0: float, mu: float, sigma: float, loss: str, lam: float = 1.2, steps: int = 4000,
                                lr: float = 0.05, t_range: tuple[float, float] = (0.1, 0.9), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient descent on ``(log a, b)`` with the closed-form gradients, ``t ~ U(t_range)`` per step, cosine VP.

    ``loss``: ``'true'``, ``'l1'``, ``'l2'`` or ``'sid'`` (= ``l2 - lam l1``). Returns the paths of ``a`` and ``b``
    (``steps + 1`` values each, ``nan`` after a divergence); ``a`` stays positive because the step is taken in ``log a``
    (no ``abs()`` clipping, which would hide a collapse). ``t_range`` lies in ``(0, 1]`` (``beta_bar > 0``).
    """
    if loss not in ("true", "l1", "l2", "sid"):
        raise ValueError(f"loss must be 'true', 'l1', 'l2' or 'sid', got {loss!r}")
    a0 = _real("a0", a0)
    if not a0 > 0:
        raise ValueError(f"a0 must be positive, got {a0}")
    b0, mu, sigma = _real("b0", b0), _real("mu", mu), _positive("sigma", sigma)
    lam, lr = _real("lam", lam), _positive("lr", lr)
    t_lo, t_hi = _t_range(t_range, closed=False)
    steps = _check_steps(steps, "steps")
    ts = np.random.default_rng(seed).uniform(t_lo, t_hi, size=steps)
    log_a, b = math.log(a0), float(b0)
    a_path, b_path = [a0], [b]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in ts:
            a, A, B = math.exp(log_a), math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
            try:  # plain floats: the per-step cost of numpy's scalar arithmetic is most of this loop's time
                g = _sid_grads(a, b, mu, sigma, A, B)
            except (OverflowError, ZeroDivisionError):  # where floats raise, numpy's inf and nan end the path below
                g = _sid_grads(*(np.float64(v) for v in (a, b, mu, sigma, A, B)))
            ga, gb = (g["l2"][0] - lam * g["l1"][0], g["l2"][1] - lam * g["l1"][1]) if loss == "sid" else g[loss]
            log_a, b = log_a - lr * a * float(ga), b - lr * float(gb)
            if not (math.isfinite(log_a) and log_a < 700 and math.isfinite(b)):
                break  # diverged: the rest of the path is nan
            a_path.append(math.exp(log_a))
            b_path.append(b)
    pad = [math.nan] * (steps + 1 - len(a_path))
    return np.array(a_path + pad), np.array(b_path + pad)


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
    updates live; ``t ~ U(t_range)`` with ``0 <= t_lo < t_hi <= 1``. Returns ``(g, snapshots)`` with
    ``(step, g(z_probe))`` pairs (on the CPU) every ``snapshot_every`` steps (and at step 0).
    """
    if loss not in ("l1", "l2", "sid"):
        raise ValueError(f"loss must be 'l1', 'l2' or 'sid', got {loss!r}")
    if not isinstance(teacher, GaussianMixture):
        raise TypeError(f"teacher must be a GaussianMixture, got {type(teacher).__name__}")
    lam, steps = _real("lam", lam), _check_steps(steps, "steps")
    batch, fake_steps = _int("batch", batch), _int("fake_steps", fake_steps, minimum=0)
    lr_g, lr_fake = _positive("lr_g", lr_g), _positive("lr_fake", lr_fake)
    snapshot_every = _int("snapshot_every", snapshot_every, minimum=0)
    t_lo, t_hi = _t_range(t_range, closed=True)
    device = torch.device(device)
    teacher = teacher.to(device)
    gen_ = _seeded_generator(seed)
    d = teacher.dim

    def teacher_eps(inp: torch.Tensor) -> torch.Tensor:
        alpha, beta = _vp_cosine_coeffs(inp[:, d:])
        return teacher.eps_t(inp[:, :d], alpha, beta)

    g = ResidualOnBase(lambda z: z, d, d, hidden, device=device)
    fake = ResidualOnBase(teacher_eps, d + 1, d, hidden, device=device)
    opt_g, opt_f = Adam(g.parameters(), lr=lr_g), Adam(fake.parameters(), lr=lr_fake)

    def noised(x0: torch.Tensor):
        t = t_lo + (t_hi - t_lo) * _rand((x0.shape[0], 1), gen_, device)
        eps = _randn(x0.shape, gen_, device)
        alpha, beta = _vp_cosine_coeffs(t)
        return torch.cat([alpha * x0 + beta * eps, t], 1), eps

    snapshots = []
    for step in range(steps + 1):
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
