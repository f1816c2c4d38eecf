"""Residual MLP stacks and their depth statistics: the DeepNet view of update size (why-residuals-deepnet, 8994).

Serves ``book/training/why-residuals-deepnet.md`` (kexue.fm/archives/8994; DeepNet: Wang et al. 2022,
arXiv:2203.00555).

Conventions
-----------
* Row vectors, ``y = x W`` (``nn.Linear`` stores ``W^T`` as its weight, as usual); no biases.
* Plain stack: ``x <- relu(x W)`` with He init, ``W ~ N(0, 2/d)``, which keeps the mean second moment of the
  activations (the article's "variance 2/n for relu").
* Residual stack: ``x <- x + eps * relu(x W_1) W_2`` with ``W_1`` He (``N(0, 2/d)``) and ``W_2`` LeCun
  (``N(0, 1/d)``), so that the branch has about the second moment of its input and ``|y|^2 ~ (1 + eps^2) |x|^2``
  at initialisation (the article's near-orthogonal expansion, its last equation).
* The probe loss is the linear read-out ``L = mean(model(x) * readout)``: ``dL/dy = readout / numel`` does not
  depend on the depth, so the depth enters the gradients only through the network (the notebook's pitfall).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .._checks import check_int

__all__ = ["ResidualMLP", "residual_mlp", "depth_stats", "sgd_loss_change", "expansion_factors"]


# ----------------------------------------------------------------------------- checks
def _finite_real(value: object, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value}")
    return value


def _generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _float_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    return x


# ----------------------------------------------------------------------------- the model
class ResidualMLP(nn.Module):
    """``depth`` layers of width ``width``: plain ``relu(x W)`` or residual ``x + eps relu(x W_1) W_2``.

    Build it with :func:`residual_mlp`. Attributes: ``depth``, ``width``, ``eps``, ``plain`` and the
    ``nn.ModuleList`` s ``fc1`` (every layer's ``W`` or ``W_1``) and ``fc2`` (``W_2``; empty when plain).
    """

    def __init__(self, depth: int, width: int, eps: float, plain: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.depth, self.width, self.eps, self.plain = depth, width, eps, plain
        self.fc1 = nn.ModuleList(nn.Linear(width, width, bias=False, dtype=dtype) for _ in range(depth))
        self.fc2 = nn.ModuleList(() if plain else (nn.Linear(width, width, bias=False, dtype=dtype) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point torch.Tensor")
        if x.ndim < 1 or x.shape[-1] != self.width:
            raise ValueError(f"x must have last dimension width = {self.width}, got shape {tuple(x.shape)}")
        if self.plain:
            for fc in self.fc1:
                x = torch.relu(fc(x))
            return x
        for fc1, fc2 in zip(self.fc1, self.fc2):
            x = x + self.eps * fc2(torch.relu(fc1(x)))
        return x

    def extra_repr(self) -> str:
        kind = "plain relu" if self.plain else f"residual, eps={self.eps:g}"
        return f"depth={self.depth}, width={self.width}, {kind}"


def residual_mlp(depth: int, width: int, eps: float = 1.0, *, plain: bool = False,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> ResidualMLP:
    """A plain ReLU stack or a residual MLP stack, initialised as in the article's argument.

    ``plain=True``: ``depth`` layers ``x <- relu(x W)``, ``W ~ N(0, 2/width)`` (He), the stack whose forward second
    moment is stable but whose parameter gradients cannot be scaled with depth (the article's "stable
    propagation" section). ``plain=False``: ``x <- x + eps relu(x W_1) W_2``, ``W_1`` He, ``W_2 ~ N(0, 1/width)``
    (LeCun), the block ``y = x + eps f(x; theta)`` of the article's "residual" section; ``eps`` is ignored when plain.
    No biases. ``generator`` draws the weights (``torch.Generator``; ``None`` uses torch's global RNG).
    """
    depth = check_int("depth", depth)
    width = check_int("width", width)
    eps = _finite_real(eps, "eps", minimum=0.0)
    if not isinstance(plain, bool):
        raise TypeError(f"plain must be a bool, got {type(plain).__name__}")
    generator = _generator(generator)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    model = ResidualMLP(depth, width, eps, plain, dtype)
    with torch.no_grad():
        for fc in model.fc1:
            fc.weight.normal_(0.0, math.sqrt(2.0 / width), generator=generator)
        for fc in model.fc2:
            fc.weight.normal_(0.0, math.sqrt(1.0 / width), generator=generator)
    return model


# ----------------------------------------------------------------------------- statistics
def _params(model: nn.Module) -> list[torch.nn.Parameter]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have at least one trainable parameter")
    return params


def _readout_loss(model: nn.Module, x: torch.Tensor, readout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = model(x)
    if y.shape != readout.shape:
        raise ValueError(f"readout must have the output's shape {tuple(y.shape)}, got {tuple(readout.shape)}")
    return y, (y * readout.to(y.dtype)).mean()


def _sq_norm(tensors: Iterable[torch.Tensor]) -> float:
    return float(sum(float((t.detach().double() ** 2).sum()) for t in tensors))


def depth_stats(model: nn.Module, x: torch.Tensor, readout: torch.Tensor) -> dict[str, float | int]:
    """Forward gain, backward gain and total squared parameter gradient of ``model`` at ``x``.

    The loss is ``L = mean(model(x) * readout)``. Returns (Python numbers):

    * ``forward_gain`` = rms(y) / rms(x);
    * ``backward_gain`` = ||dL/dx|| / ||dL/dy|| (Frobenius norms over the batch);
    * ``grad_sq`` = ||grad_theta L||^2, the quantity whose size sets the first-order SGD step
      ``Delta L = -lr ||grad||^2`` (the article's eq. 1);
    * ``n_params`` (trainable) and ``loss``.

    Uses ``torch.autograd.grad``: the model's ``.grad`` fields are left untouched.
    """
    params = _params(model)
    x = _float_tensor(x, "x")
    readout = _float_tensor(readout, "readout")
    x_in = x.detach().clone().requires_grad_(True)
    y, loss = _readout_loss(model, x_in, readout)
    grads = torch.autograd.grad(loss, [x_in, y, *params], allow_unused=True)
    g_x, g_y, g_params = grads[0], grads[1], [g for g in grads[2:] if g is not None]
    rms_x = float(x.detach().double().pow(2).mean().sqrt())
    if rms_x == 0.0:
        raise ValueError("x must not be all zeros (the forward gain divides by rms(x))")
    g_y_norm = float(g_y.double().norm())
    if g_y_norm == 0.0:
        raise ValueError("readout must not be all zeros (the backward gain divides by ||dL/dy||)")
    return {
        "forward_gain": float(y.detach().double().pow(2).mean().sqrt()) / rms_x,
        "backward_gain": (float(g_x.double().norm()) if g_x is not None else 0.0) / g_y_norm,
        "grad_sq": _sq_norm(g_params),
        "n_params": int(sum(p.numel() for p in params)),
        "loss": float(loss.detach()),
    }


def sgd_loss_change(model: nn.Module, x: torch.Tensor, readout: torch.Tensor, lr: float) -> tuple[float, float]:
    """``(actual, predicted)`` change of ``L = mean(model(x) * readout)`` after one SGD step of size ``lr``.

    ``actual = L(theta - lr g) - L(theta)``; ``predicted = -lr ||g||^2``, the first-order term (the article's eq. 1
    with ``Delta theta = -lr g``). Their ratio tends to 1 as ``lr -> 0``. The parameters are restored afterwards
    (bit for bit), and the ``.grad`` fields are not touched.
    """
    params = _params(model)
    x = _float_tensor(x, "x")
    readout = _float_tensor(readout, "readout")
    lr = _finite_real(lr, "lr", minimum=0.0, strict=True)
    _, loss0 = _readout_loss(model, x, readout)
    grads = torch.autograd.grad(loss0, params, allow_unused=True)
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    predicted = -lr * _sq_norm(g for _, g in pairs)
    saved = [p.detach().clone() for p, _ in pairs]
    try:
        with torch.no_grad():
            for p, g in pairs:
                p.sub_(lr * g)
            _, loss1 = _readout_loss(model, x, readout)
    finally:
        with torch.no_grad():
            for (p, _), old in zip(pairs, saved):
                p.copy_(old)
    # the difference in float64 (for a float32 model, this is the float32 losses' difference)
    return float(loss1.detach().double()) - float(loss0.detach().double()), predicted


# ----------------------------------------------------------------------------- expansion factors
def expansion_factors(d: int, depth: int, eps: float, n_trials: int, generator: torch.Generator | None = None, *,
                      method: str = "matrix", log: bool = False) -> np.ndarray:
    """Samples of ``||v prod_{l=1}^{depth} (I + eps J_l)|| / ||v||`` with ``J_l`` entries iid ``N(0, 1/d)``.

    The article's "expansion factor" of ``depth`` residual Jacobians (its eqs. 8-9): the ``J_l`` stand for the
    branch Jacobians at initialisation, independent across layers; ``d = 1`` is its one-dimensional argument.
    Returns a float64 array of ``n_trials`` factors (their natural logs with ``log=True``).

    ``method="matrix"`` draws every ``d x d`` matrix ``J_l`` (cost ``depth * n_trials * d^2`` normals).
    ``method="direct"`` uses that, for a fixed ``v`` and a fresh Gaussian ``J``, ``v J ~ N(0, ||v||^2/d I)`` exactly,
    so each layer draws only ``d`` normals; the two methods sample the same distribution (the notebook checks it).
    ``method="radial"`` goes one step further: for a unit ``v``, ``||v (I + eps J)||^2 = 1 + 2 eps a / sqrt(d) +
    eps^2 (a^2 + c) / d`` with ``a ~ N(0, 1)`` and ``c ~ chi^2_{d-1}`` independent (``c = 0`` for ``d = 1``), and by
    rotation invariance the layers are independent, so each layer costs two draws whatever ``d`` (exact as well; it
    draws with a numpy generator seeded from ``generator``).
    The running vector is renormalised at every layer and the log-factor accumulated, so nothing overflows.
    """
    d = check_int("d", d)
    depth = check_int("depth", depth)
    eps = _finite_real(eps, "eps", minimum=0.0)
    n_trials = check_int("n_trials", n_trials)
    generator = _generator(generator)
    if method not in ("matrix", "direct", "radial"):
        raise ValueError(f"method must be 'matrix', 'direct' or 'radial', got {method!r}")
    if not isinstance(log, bool):
        raise TypeError(f"log must be a bool, got {type(log).__name__}")
    if method == "radial":
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((n_trials, depth))
        c = rng.chisquare(d - 1, size=(n_trials, depth)) if d > 1 else np.zeros((n_trials, depth))
        sq = 1.0 + 2.0 * eps * a / math.sqrt(d) + eps**2 * (a**2 + c) / d
        if bool((sq <= 0).any()):  # probability zero; guard the log anyway
            raise ValueError("a trial hit an exactly singular product; use another generator state")
        return _finish(0.5 * np.log(sq).sum(axis=1), log)
    kw = {"generator": generator, "dtype": torch.float64}
    scale = 1.0 / math.sqrt(d)
    chunk = n_trials if method == "direct" else max(1, min(n_trials, (1 << 22) // (d * d)))
    logs = []
    for start in range(0, n_trials, chunk):
        t = min(chunk, n_trials - start)
        v = torch.randn(t, d, **kw)
        v = v / v.norm(dim=1, keepdim=True)
        log_gain = torch.zeros(t, dtype=torch.float64)
        for _ in range(depth):
            if method == "matrix":
                vj = torch.bmm(v[:, None, :], torch.randn(t, d, d, **kw) * scale)[:, 0]
            else:
                vj = torch.randn(t, d, **kw) * scale  # v has unit norm
            v = v + eps * vj
            norm = v.norm(dim=1, keepdim=True)
            if bool((norm == 0).any()):  # probability zero for d >= 1 Gaussians; guard the log anyway
                raise ValueError("a trial hit an exactly singular product; use another generator state")
            log_gain += norm[:, 0].log()
            v = v / norm
        logs.append(log_gain)
    return _finish(torch.cat(logs).numpy(), log)


def _finish(out: np.ndarray, log: bool) -> np.ndarray:
    if log:
        return out
    if out.max() > 700:
        raise ValueError(f"the factors overflow float64 (log-factor up to {out.max():.0f}); pass log=True")
    return np.exp(out)
