"""Denoising score matching: train a noise-prediction net ``eps_theta(x_t, t)`` and read the score
``-eps_theta / beta_t`` off it.

Serves notebook sde-framework (kexue.fm/archives/9209; Song et al., arXiv:2011.13456): the loss
``E |eps_theta(alpha_t x_0 + beta_t eps, t) - eps|^2`` is minimised by ``-beta_t grad log p_t``.
"""

from __future__ import annotations

import torch

from ..optim import Adam
from ._helpers import _batch_of, _callable, _check_steps, _int, _rand, _randn, _real, _seeded_generator, _trainer_args
from .nets import make_mlp
from .samplers import _schedule
from .schedules import Schedule

__all__ = ["train_denoiser", "nn_score"]


def train_denoiser(data_sampler, dim: int, schedule: Schedule, steps: int = 2000, batch: int = 512, lr: float = 2e-3,
                   hidden: int = 64, depth: int = 2, t_min: float = 1e-3, seed: int = 0,
                   device: str | torch.device = "cpu") -> torch.nn.Module:
    """Denoising score matching: fit ``eps_theta(x_t, t)`` to ``eps`` on ``x_t = alpha_t x_0 + beta_t eps``, ``t ~ U[t_min, 1]``.

    Loss ``E |eps_theta - eps|^2`` (Adam); its minimiser is ``-beta_t grad log p_t`` (see :func:`nn_score`).
    ``data_sampler(batch, generator)`` gets a seeded CPU generator and returns ``(batch, dim)`` tensors; batches are
    moved to ``device``, where the net lives.
    """
    t_min = _real("t_min", t_min)
    if not 0 <= t_min < 1:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    _callable("data_sampler", data_sampler)
    dim, schedule, steps = _int("dim", dim), _schedule(schedule), _check_steps(steps, "steps")
    batch, lr = _trainer_args(batch, lr)
    device = torch.device(device)
    gen = _seeded_generator(seed)
    net = make_mlp(dim + 1, dim, hidden=hidden, depth=depth, device=device)
    opt = Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        x0 = _batch_of("data_sampler", data_sampler(batch, gen), batch, dim).to(device)
        t = t_min + (1 - t_min) * _rand((batch, 1), gen, device)
        eps = _randn(x0.shape, gen, device)
        x_t = schedule.alpha(t) * x0 + schedule.beta(t) * eps
        loss = ((net(torch.cat([x_t, t], 1)) - eps) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def nn_score(net: torch.nn.Module, schedule: Schedule):
    """The score ``-eps_theta(x, t) / beta_t`` of a noise-prediction net taking ``cat([x, t], -1)`` (no gradients);
    refuses a ``t`` with ``beta_t = 0`` (``t = 0`` for VP schedules), where the score is not defined by the net."""
    _callable("net", net)
    schedule = _schedule(schedule)

    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        beta = schedule.beta(t)
        if beta == 0:
            raise ValueError(f"beta_t = 0 at t = {t}: the eps-parametrised score -eps / beta_t is undefined there")
        with torch.no_grad():
            return -net(torch.cat([x, torch.full_like(x[:, :1], t)], 1)) / beta
    return score
