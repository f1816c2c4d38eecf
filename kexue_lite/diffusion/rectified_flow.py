"""Rectified flow: the exact velocity ``E[x_1 - x_0 | x_t]`` of the straight path ``x_t = (1 - t) x_0 + t x_1`` for a
Gaussian-mixture ``x_0`` and ``x_1 ~ N(0, I)``, its score form, training a velocity net, reflow pairs and the
straightness of the flow.

Serves notebook rectified-flow (kexue.fm/archives/9497; Liu, Gong & Liu, arXiv:2209.03003). Time runs from data
(``t = 0``) to noise (``t = 1``); samplers integrate from ``t = 1`` down to ``t = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..optim import Adam
from ._helpers import _batch_of, _callable, _check_steps, _int, _rand, _real, _samples, _seeded_generator, _trainer_args
from .mixtures import GaussianMixture
from .nets import make_mlp
from .samplers import ode_sample

__all__ = ["rf_velocity", "rf_velocity_from_score", "nn_velocity", "train_velocity_field", "reflow_pairs", "straightness"]


def rf_velocity(mixture: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """Exact rectified-flow velocity ``E[x_1 - x_0 | x_t]`` for ``x_t = (1 - t) x_0 + t x_1``, ``x_0 ~ mixture``, ``x_1 ~ N(0, I)``.

    Per component: ``-mu_k + (t I - (1 - t) Sigma_k) C_k^-1 (x - (1 - t) mu_k)`` with ``C_k = (1 - t)^2 Sigma_k + t^2 I``,
    weighted by the responsibilities of the law of ``x_t``; valid on the closed interval ``[0, 1]``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    t = _real("t", t)
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
    """The rectified-flow velocity from the score of the linear-interpolation marginals: ``-(x + t score(x, t)) / (1 - t)``,
    for ``t`` in ``[0, 1)``."""
    _callable("score_fn", score_fn)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        t_ = _real("t", t)
        if t_ >= 1:
            raise ValueError("the score form is 0/0 at t = 1; use rf_velocity")
        if t_ < 0:
            raise ValueError(f"t must lie in [0, 1), got {t_}")
        return -(x + t * score_fn(x, t)) / (1 - t)
    return velocity


def nn_velocity(net: torch.nn.Module):
    """Wrap a network taking ``cat([x, t], -1)`` as a velocity function (evaluated without gradients)."""
    _callable("net", net)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        with torch.no_grad():
            return net(torch.cat([x, torch.full_like(x[:, :1], t)], 1))
    return velocity


def train_velocity_field(pair_sampler, dim: int, steps: int = 2000, batch: int = 512, lr: float = 2e-3, hidden: int = 128,
                         depth: int = 2, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Fit ``v_theta(x_t, t)`` to ``x_1 - x_0`` on ``x_t = (1 - t) x_0 + t x_1``, ``t ~ U(0, 1)`` (Adam, cosine decay).

    ``pair_sampler(batch, generator) -> (x0, x1)``, two ``(batch, dim)`` tensors: independent pairs for rectified flow,
    fixed coupled pairs for reflow; ``generator`` is a seeded CPU generator and the pairs are moved to ``device``,
    where the net is trained.
    """
    _callable("pair_sampler", pair_sampler)
    dim, steps = _int("dim", dim), _check_steps(steps, "steps")
    batch, lr = _trainer_args(batch, lr)
    device = torch.device(device)
    gen = _seeded_generator(seed)
    net = make_mlp(dim + 1, dim, hidden=hidden, depth=depth, device=device)
    opt = Adam(net.parameters(), lr=lr)
    step_lr = lr
    for step in range(steps):
        pair = pair_sampler(batch, gen)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError("pair_sampler must return a pair (x0, x1)")
        x0, x1 = (_batch_of("pair_sampler", v, batch, dim).to(device) for v in pair)
        t = _rand((batch, 1), gen, device)
        loss = ((net(torch.cat([(1 - t) * x0 + t * x1, t], 1)) - (x1 - x0)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step(lr=step_lr)
        # cosine decay to 0: torch's CosineAnnealingLR(opt, steps) update, in its own arithmetic (the same run, bit
        # for bit, without the ~1 s torch.optim spends importing torch._dynamo)
        step_lr = (1 + math.cos(math.pi * (step + 1) / steps)) / (1 + math.cos(math.pi * step / steps)) * step_lr
    return net


def reflow_pairs(velocity_fn, x1: torch.Tensor, n_steps: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Coupled pairs ``(z_0, z_1)``: each noise sample ``z_1 = x1`` with the data point its flow reaches (pairing kept)."""
    return ode_sample(velocity_fn, x1, n_steps, 1.0, 0.0, "euler"), x1


def straightness(velocity_fn, x1: torch.Tensor, n_steps: int = 64) -> float:
    """``(1/N) sum_k E |(x_1 - x_0) - v(x_{t_k}, t_k)|^2`` along the Euler trajectories from ``x1``: 0 for straight paths.

    ``x1`` is a non-empty finite ``(n, d)`` tensor.
    """
    _samples("x1", x1)
    x_end, path = ode_sample(velocity_fn, x1, n_steps, 1.0, 0.0, "euler", return_path=True)
    ts = np.linspace(1.0, 0.0, n_steps + 1)
    chord = x1 - x_end  # x_1 - x_0 along each path
    return float(np.mean([((chord - velocity_fn(path[k], float(ts[k]))) ** 2).sum(1).mean() for k in range(n_steps)]))
