"""A toy VQ autoencoder on a low-dimensional manifold, and its trainer.

Used by notebooks vq-rotation-trick (article 10489: STE vs rotation trick, codebook collapse) and
simvq-linear-codebook (article 10519: SimVQ). Data: ``x = tanh(u A + b)`` with ``u ~ U[-1, 1]^r`` on an
``r``-dimensional manifold in ``R^D``; model: MLP encoder ``D -> hidden -> d``, a
:class:`~kexue_lite.vq.quantizer.VectorQuantizer`, MLP decoder ``d -> hidden -> D``; loss
``mean |x - x_hat|^2 + beta * codebook + gamma * commit`` (the article's naming).
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
from torch import nn

from ..optim import Adam
from .quantize import codebook_usage
from .quantizer import VectorQuantizer

__all__ = ["toy_manifold_data", "ToyVQAE", "train_vqae", "TEST_SEED"]

TEST_SEED = 2_000_003  # generator seed of the fixed evaluation set (shared by every run)


def toy_manifold_data(
    n: int,
    D: int = 16,
    r: int = 4,
    data_seed: int = 123,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` points ``x = tanh(u A + b)`` (float32, ``(n, D)``) on an ``r``-dimensional manifold.

    ``A = 1.5 N(0,1)^{r x D}`` and ``b = 0.3 N(0,1)^D`` are fixed by ``data_seed`` (the "dataset");
    ``u ~ U[-1, 1]^r`` is drawn from ``generator`` (the global RNG when ``None``).
    """
    for name, v in (("n", n), ("D", D), ("r", r)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be at least 1, got {v}")
    if isinstance(data_seed, bool) or not isinstance(data_seed, int):
        raise TypeError(f"data_seed must be an int, got {type(data_seed).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    A, b = _manifold_params(D, r, data_seed)
    u = torch.rand(n, r, generator=generator) * 2.0 - 1.0
    return torch.tanh(u @ A + b)


@functools.lru_cache(maxsize=16)
def _manifold_params(D: int, r: int, data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed map of :func:`toy_manifold_data` (cached; never modified in place)."""
    g = torch.Generator().manual_seed(data_seed)
    A = 1.5 * torch.randn(r, D, generator=g)
    b = 0.3 * torch.randn(D, generator=g)
    return A, b


class ToyVQAE(nn.Module):
    """MLP encoder ``D -> hidden -> d``, :class:`VectorQuantizer` (``K`` codes), MLP decoder ``d -> hidden -> D``.

    ``vq_kwargs`` go to :class:`VectorQuantizer` (``mode``, ``init``, ``init_std``, ``beta``, ``gamma``,
    ``linear_init``, ``linear_bias``).
    """

    def __init__(self, D: int = 16, d: int = 8, hidden: int = 128, K: int = 256, **vq_kwargs) -> None:
        super().__init__()
        for name, v in (("D", D), ("d", d), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"{name} must be at least 1, got {v}")
        self.D, self.d = D, d
        self.encoder = nn.Sequential(nn.Linear(D, hidden), nn.ReLU(), nn.Linear(hidden, d))
        self.vq = VectorQuantizer(K, d, **vq_kwargs)
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, D))

    def forward(self, x: torch.Tensor):
        """Returns ``(x_hat, z, z_q, idx, losses)``; ``losses`` as in :meth:`VectorQuantizer.forward`."""
        z = self.encoder(x)
        z_q, idx, losses = self.vq(z)
        return self.decoder(z_q), z, z_q, idx, losses


def _check_pos_int(v: object, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


@torch.no_grad()
def _evaluate(model: ToyVQAE, x_test: torch.Tensor) -> dict[str, float]:
    x_hat, z, z_q, idx, _ = model(x_test)
    used, ppl = codebook_usage(idx, model.vq.K)
    return {
        "rec": (x_hat - x_test).square().mean().item(),
        "usage": used,
        "perplexity": ppl,
        "z_norm": z.norm(dim=1).mean().item(),
        "q_norm": z_q.norm(dim=1).mean().item(),
    }


def train_vqae(
    mode: str,
    init: str = "randn",
    init_std: float = 1.0,
    steps: int = 600,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 50,
    eval_n: int = 20000,
    device: str | torch.device = "cpu",
    *,
    D: int = 16,
    d: int = 8,
    hidden: int = 128,
    K: int = 256,
    r: int = 4,
    beta: float = 1.0,
    gamma: float = 0.25,
    linear_init: str = "identity",
    linear_bias: bool = False,
    kmeans_n: int = 4096,
    snapshot_every: int | None = None,
    snapshot_n: int = 1000,
    rot_variant: str = "full",
) -> dict:
    """Train a :class:`ToyVQAE` with Adam on fresh :func:`toy_manifold_data` batches.

    Every ``log_every`` steps (and at steps 0 and ``steps``) it records, on a fixed test set of
    ``eval_n`` points (generator seed :data:`TEST_SEED`, the same for every run):

    * ``rec`` — reconstruction MSE (mean over entries), ``usage`` — fraction of codes used,
      ``perplexity`` — ``exp`` of the code-frequency entropy, ``z_norm``/``q_norm`` — mean ``|z|``/``|q|``;

    and, on the current training batch, the mean per-row norm of the encoder-output gradient
    ``dL/dz`` of the reconstruction term (``grad_rec``) and of the weighted commitment term
    ``gamma * commit`` (``grad_commit``).

    With ``init='kmeans'`` the codebook is set, before step 0, to the k-means centroids of the initial
    encoder outputs of ``kmeans_n`` training points. ``snapshot_every`` additionally stores the
    effective codebook, the code counts and the encodings of the first ``snapshot_n`` test points.
    ``rot_variant`` (``mode='rot'`` only) selects the ablation of :class:`VectorQuantizer`.

    Returns:
        dict with ``steps`` (np.ndarray), ``curves`` (dict of np.ndarray: rec, usage, perplexity,
        z_norm, q_norm, grad_rec, grad_commit), finals ``rec``, ``usage``, ``perplexity``, ``model``
        (trained, on ``device``), ``snapshots`` (list of dicts, empty unless asked) and ``time_s``
        (process CPU seconds).
    """
    steps = _check_pos_int(steps, "steps", 0)
    batch = _check_pos_int(batch, "batch")
    log_every = _check_pos_int(log_every, "log_every")
    eval_n = _check_pos_int(eval_n, "eval_n")
    kmeans_n = _check_pos_int(kmeans_n, "kmeans_n")
    if snapshot_every is not None:
        snapshot_every = _check_pos_int(snapshot_every, "snapshot_every")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite float, got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if init == "kmeans" and kmeans_n < K:
        raise ValueError(f"kmeans_n must be at least K = {K}, got {kmeans_n}")
    device = torch.device(device)
    t0 = time.process_time()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyVQAE(
            D=D, d=d, hidden=hidden, K=K, mode=mode, init=init, init_std=init_std, beta=beta, gamma=gamma,
            linear_init=linear_init, linear_bias=linear_bias, rot_variant=rot_variant,
        )
    gen = torch.Generator().manual_seed(10_007 * seed + 1)
    x_test = toy_manifold_data(eval_n, D=D, r=r, generator=torch.Generator().manual_seed(TEST_SEED)).to(device)
    model.to(device)
    if init == "kmeans":
        with torch.no_grad():
            xs = toy_manifold_data(kmeans_n, D=D, r=r, generator=gen).to(device)
            model.vq.init_kmeans(model.encoder(xs), seed=seed)
    opt = Adam(model.parameters(), lr=lr)  # torch.optim.Adam's update, without importing torch._dynamo (about 1 s)

    log_steps: list[int] = []
    curves: dict[str, list[float]] = {k: [] for k in ("rec", "usage", "perplexity", "z_norm", "q_norm", "grad_rec", "grad_commit")}
    snapshots: list[dict] = []

    def log(step: int, x: torch.Tensor) -> None:
        # gradient of each loss term with respect to the encoder output z (a fresh graph, no update)
        z = model.encoder(x)
        z_leaf = z.detach().requires_grad_(True)
        z_q, _, losses = model.vq(z_leaf)
        rec = (model.decoder(z_q) - x).square().mean()
        (g_rec,) = torch.autograd.grad(rec, z_leaf, retain_graph=True)
        (g_com,) = torch.autograd.grad(model.vq.gamma * losses["commit"], z_leaf)
        curves["grad_rec"].append(g_rec.norm(dim=1).mean().item())
        curves["grad_commit"].append(g_com.norm(dim=1).mean().item())
        for k, v in _evaluate(model, x_test).items():
            curves[k].append(v)
        log_steps.append(step)

    def snapshot(step: int) -> None:
        with torch.no_grad():
            _, z, _, idx, _ = model(x_test)
            snapshots.append({
                "step": step,
                "codebook": model.vq.codebook().detach().cpu().numpy().copy(),
                "counts": torch.bincount(idx, minlength=K).cpu().numpy(),
                "z": z[:snapshot_n].cpu().numpy(),
            })

    for step in range(steps + 1):
        x = toy_manifold_data(batch, D=D, r=r, generator=gen).to(device)
        if step % log_every == 0 or step == steps:
            log(step, x)
        if snapshot_every is not None and (step % snapshot_every == 0 or step == steps):
            snapshot(step)
        if step == steps:
            break
        x_hat, z, z_q, idx, losses = model(x)
        loss = (x_hat - x).square().mean() + model.vq.weighted(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {
        "steps": np.array(log_steps),
        "curves": {k: np.array(v) for k, v in curves.items()},
        "rec": curves["rec"][-1],
        "usage": curves["usage"][-1],
        "perplexity": curves["perplexity"][-1],
        "model": model,
        "snapshots": snapshots,
        "time_s": time.process_time() - t0,
    }
