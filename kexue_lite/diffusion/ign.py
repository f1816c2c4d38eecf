"""Idempotent generative networks and their GAN reading: the three IGN losses with a frozen copy of ``f``, the total
loss, the GAN written as one loss, and the IGN and GAN trainers.

Serves notebook idempotent-generative-network (kexue.fm/archives/9969; Shocher et al., arXiv:2311.01462).
"""

from __future__ import annotations

import torch

from ..optim import Adam
from ._helpers import (_batch_of, _callable, _check_steps, _int, _positive, _randn, _real, _samples, _seeded_generator,
                       _trainer_args)
from .nets import frozen_call, make_mlp

__all__ = ["ign_losses", "ign_total_loss", "gan_single_loss", "train_ign", "train_gan"]


def _distance(a: torch.Tensor, b: torch.Tensor, dist: str) -> torch.Tensor:
    """Mean over samples of ``sum |a - b|`` (``'l1'``) or ``sum (a - b)^2`` (``'l2'``); ``a`` and ``b`` share a shape."""
    if a.shape != b.shape:
        raise ValueError(f"f must map (n, d) inputs to (n, d) outputs, got {tuple(b.shape)} -> {tuple(a.shape)}")
    gap = a - b
    return (gap.abs() if dist == "l1" else gap**2).sum(-1).mean()


def ign_losses(f: torch.nn.Module, x: torch.Tensor, z: torch.Tensor, dist: str = "l1",
               clamp_ratio: float | None = 1.5) -> dict[str, torch.Tensor]:
    """The three IGN terms (Shocher et al. 2023, eqs. 5-9) with ``delta(y) = d(f(y), y)``.

    ``rec = d(f(x), x)``; ``idem = d(f_frozen(f(z)), f(z))`` trains the inner ``f``; ``tight_raw = d(f(sg f(z)), sg f(z))``
    trains the outer ``f``; ``tight = -tanh(tight_raw / (a sg(rec))) a sg(rec)`` (clamped) or ``-tight_raw``.
    ``x`` and ``z`` are non-empty finite ``(n, d)`` tensors; ``clamp_ratio`` is a finite positive ``a`` or None.
    """
    if not isinstance(f, torch.nn.Module):
        raise TypeError(f"f must be a torch.nn.Module, got {type(f).__name__}")
    if dist not in ("l1", "l2"):
        raise ValueError(f"dist must be 'l1' or 'l2', got {dist!r}")
    if clamp_ratio is not None:
        clamp_ratio = _positive("clamp_ratio", clamp_ratio)
    x, z = _samples("x", x), _samples("z", z)
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
    """``lambda_r rec + lambda_i idem + lambda_t tight`` (the paper's weights by default; three finite numbers)."""
    missing = [k for k in ("rec", "idem", "tight") if k not in losses]
    if missing:
        raise ValueError(f"losses must hold 'rec', 'idem' and 'tight' (from ign_losses), missing {missing}")
    weights = tuple(weights)
    if len(weights) != 3:
        raise ValueError(f"weights must be three numbers (rec, idem, tight), got {len(weights)}")
    w_r, w_i, w_t = (_real(f"weights[{i}]", w) for i, w in enumerate(weights))
    return w_r * losses["rec"] + w_i * losses["idem"] + w_t * losses["tight"]


def gan_single_loss(D: torch.nn.Module, G: torch.nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``mean[D(x) - 2 D(sg G(z)) + D(G(z))]``: one loss whose gradients are the discriminator's and the generator's.

    WGAN sign convention of the article: ``D`` minimises its score on real data (low = real). ``x`` and ``z`` are
    non-empty finite ``(n, d)`` tensors.
    """
    x, z = _samples("x", x), _samples("z", z)
    g = G(z)
    return (D(x) - 2 * D(g.detach()) + D(g)).mean()


def _snapshot_every(v: object) -> int:
    return _int("snapshot_every", v, minimum=0)


def train_ign(data_sampler, dim: int, steps: int = 800, batch: int = 256, lr: float = 1e-3, hidden: int = 64, depth: int = 2,
              weights: tuple[float, float, float] = (20.0, 20.0, 2.5), clamp_ratio: float | None = 1.5, dist: str = "l1",
              seed: int = 0, snapshot_every: int = 0, z_probe: torch.Tensor | None = None, device: str | torch.device = "cpu",
              net: torch.nn.Module | None = None):
    """Train an IGN ``f`` (Adam, betas (0.5, 0.999)) on ``data_sampler(batch, generator)`` with ``z ~ N(0, I)``.

    ``f`` is a fresh :func:`make_mlp` ``dim -> dim`` net (``hidden``, ``depth``) unless ``net`` is given: a float64
    ``torch.nn.Module`` on ``device`` mapping ``(n, dim)`` to ``(n, dim)`` (e.g. an autoencoder with a bottleneck, which
    cannot represent the identity), trained in place; ``hidden`` and ``depth`` are then unused, and ``seed`` does not
    initialise it (it seeds torch's global generator and the data/noise generator only; seed ``net`` before building it).

    ``generator`` is a seeded CPU generator; the ``(batch, dim)`` batches are moved to ``device``, where ``f`` lives.
    Returns ``(f, history)``: per-step ``rec``, ``idem``, ``tight_raw`` and, every ``snapshot_every`` steps (with step 0),
    ``f(z_probe)`` in ``history["snapshots"]`` as ``(step, outputs)`` pairs (outputs on the CPU).
    """
    _callable("data_sampler", data_sampler)
    dim, steps, snapshot_every = _int("dim", dim), _check_steps(steps, "steps"), _snapshot_every(snapshot_every)
    batch, lr = _trainer_args(batch, lr)
    if dist not in ("l1", "l2"):
        raise ValueError(f"dist must be 'l1' or 'l2', got {dist!r}")
    if clamp_ratio is not None:
        _positive("clamp_ratio", clamp_ratio)
    ign_total_loss({"rec": 0.0, "idem": 0.0, "tight": 0.0}, weights)  # checks the weights before training
    if net is not None and not isinstance(net, torch.nn.Module):
        raise TypeError(f"net must be a torch.nn.Module or None, got {type(net).__name__}")
    device = torch.device(device)
    if net is not None:
        for name, p in net.named_parameters():
            same_device = p.device.type == device.type and (device.index is None or p.device.index == device.index)
            if p.dtype != torch.float64 or not same_device:
                raise ValueError(f"net must have float64 parameters on device {device}; parameter {name!r} is "
                                 f"{p.dtype} on {p.device}")
    gen = _seeded_generator(seed)
    f = make_mlp(dim, dim, hidden=hidden, depth=depth, device=device) if net is None else net
    opt = Adam(f.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list] = {"rec": [], "idem": [], "tight_raw": [], "snapshots": []}
    for step in range(steps + 1):
        if snapshot_every and z_probe is not None and step % snapshot_every == 0:
            with torch.no_grad():
                history["snapshots"].append((step, f(z_probe.to(device)).cpu()))
        if step == steps:
            break
        losses = ign_losses(f, _batch_of("data_sampler", data_sampler(batch, gen), batch, dim).to(device),
                            _randn((batch, dim), gen, device), dist=dist, clamp_ratio=clamp_ratio)
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
    ``E softplus(-D(G(z)))`` for ``G`` (with ``D`` frozen). ``(batch, dim)`` batches come from a seeded CPU generator,
    moved to ``device``. Returns ``(G, D, history)`` with the per-step losses ``"d"`` and ``"g"``.
    """
    _callable("data_sampler", data_sampler)
    dim, steps = _int("dim", dim), _check_steps(steps, "steps")
    batch, lr = _trainer_args(batch, lr)
    device = torch.device(device)
    gen = _seeded_generator(seed)
    G = make_mlp(dim, dim, hidden=hidden, depth=depth, device=device)
    D = make_mlp(dim, 1, hidden=hidden, depth=depth, device=device)
    opt_g = Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list] = {"d": [], "g": []}
    softplus = torch.nn.functional.softplus
    for _ in range(steps):
        x = _batch_of("data_sampler", data_sampler(batch, gen), batch, dim).to(device)
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

