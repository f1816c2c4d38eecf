"""Gaussian moments and initial statistics of the gated attention unit (gau-without-warmup, 8990).

Serves ``book/training/gau-without-warmup.md`` (kexue.fm/archives/8990; FLASH, Hua et al. 2022, arXiv:2202.10447).

The article estimates how large ``GAU(x)`` is at initialisation, for ``X ~ N(0, 1)`` and LeCun weights:

* ``mu = E[swish(eps)]`` and ``nu2 = E[swish(eps)^2]`` for ``eps ~ N(0, 1)`` (its section 基本积分);
* ``A_ii ~ s nu^4 / n``, ``A_ij ~ s mu^4 / n`` and, treating ``A`` as ``(s nu^4 / n) I``, ``rms(O) ~ s nu^6 / n``
  (sections 自注意力 and 剩余部分): :func:`gau_output_scale` with ``method="article"``;
* the notebook's correction keeps the off-diagonal row mass ``r = (n - 1) E[relu(S)^2] / (n s)``, with the
  off-diagonal logit ``S ~ N(s mu^2, s (nu^4 - mu^4))`` (:func:`relu2_gaussian_moment`), acting on the nonzero
  mean ``mu`` of ``V``: ``rms(O) ~ nu sqrt(a^2 nu^2 + r^2 mu^2 + 2 a r mu^2)`` with ``a = s nu^4 / n``
  (``method="corrected"``).

:func:`gau_init_stats` measures the same quantities on the shared ``attention.GatedAttentionUnit`` and
:func:`one_step_relative_change` measures DeepNet's update size (the relative change of a model's output after
one optimiser step).
"""

from __future__ import annotations

import copy
import functools
import math
import numbers

import torch

from .._checks import check_int
from ..optim import SGD, Adam

__all__ = [
    "swish_gaussian_moments",
    "relu2_gaussian_moment",
    "gau_output_scale",
    "gau_init_stats",
    "one_step_relative_change",
]


def _finite_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def swish_gaussian_moments(scale: float = 1.0) -> tuple[float, float]:
    """``(mu, nu2) = (E[swish(c eps)], E[swish(c eps)^2])`` for ``eps ~ N(0, 1)``, ``c = scale``, swish = SiLU.

    With ``scale=1`` these are the two integrals of the article's section 基本积分 (0.2066..., 0.3557...);
    ``scale=lam`` gives the moments after every weight is multiplied by ``lam`` (section 疯狂尺度), which the
    article approximates by ``(lam mu, lam^2 nu2)``. scipy quadrature (about 1e-14 accurate); cached.
    Raises ``ValueError`` unless ``scale`` is finite and > 0.
    """
    scale = _finite_real(scale, "scale")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return _swish_moments_cached(scale)


@functools.lru_cache(maxsize=256)
def _swish_moments_cached(scale: float) -> tuple[float, float]:
    # Adaptive Gauss-Kronrod (QUADPACK) on each half-line; about 1 ms, against 60 ms for 30-digit mpmath,
    # and accurate to ~1e-14 (the unit tests compare with a 30-digit mpmath quadrature).
    import scipy.integrate
    import scipy.special

    def integrand(x: float, k: int) -> float:
        return (scale * x * scipy.special.expit(scale * x)) ** k * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    out = []
    for k in (1, 2):
        halves = [scipy.integrate.quad(integrand, lo, hi, args=(k,), epsabs=1e-15, epsrel=1e-13, limit=200)[0]
                  for lo, hi in ((-math.inf, 0.0), (0.0, math.inf))]
        out.append(float(sum(halves)))
    return out[0], out[1]


def relu2_gaussian_moment(m: float, sigma: float) -> float:
    """``E[relu(S)^2]`` for ``S ~ N(m, sigma^2)``: ``(m^2 + sigma^2) Phi(m/sigma) + m sigma phi(m/sigma)``.

    The closed form derived (by sympy) in gau-without-warmup, derivation 4; used for the off-diagonal row mass
    of ``A = relu^2(Q K^T) / (n s)``. Raises ``ValueError`` if ``sigma <= 0`` or either argument is not finite.
    """
    m = _finite_real(m, "m")
    sigma = _finite_real(sigma, "sigma")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    t = m / sigma
    Phi = 0.5 * math.erfc(-t / math.sqrt(2))
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return (m * m + sigma * sigma) * Phi + m * sigma * phi


def gau_output_scale(n: int, s: int, *, method: str = "article", lam: float = 1.0) -> float:
    """Predicted ``rms(GAU(X)) / rms(X)`` at LeCun initialisation, ``X ~ N(0, 1)``, gamma = 1, beta = 0.

    ``method="article"``: ``s nu^6 / n`` (the article's section 剩余部分, which replaces ``A`` by its diagonal).
    ``method="corrected"``: ``nu sqrt(a^2 nu^2 + r^2 mu^2 + 2 a r mu^2)`` with ``a = s nu^4 / n`` and the
    off-diagonal row mass ``r = (n - 1) E[relu(S)^2] / (n s)``, ``S ~ N(s mu^2, s (nu^4 - mu^4))``
    (gau-without-warmup, derivation 4). Both are independent of d and e.

    ``lam`` multiplies every weight: "article" then returns ``lam^7 s nu^6 / n`` (its section 疯狂尺度);
    "corrected" uses the exact moments of ``swish(lam eps)`` and the extra factor ``lam`` of ``W_o``.
    """
    n = check_int("n", n, 1)
    s = check_int("s", s, 1)
    if method not in ("article", "corrected"):
        raise ValueError(f"method must be 'article' or 'corrected', got {method!r}")
    lam = _finite_real(lam, "lam")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    if method == "article":
        nu = math.sqrt(swish_gaussian_moments()[1])
        return lam**7 * s * nu**6 / n
    mu, nu2 = swish_gaussian_moments(lam)
    nu = math.sqrt(nu2)
    a = s * nu2**2 / n
    e_relu2 = relu2_gaussian_moment(s * mu**2, math.sqrt(s * (nu2**2 - mu**4)))
    r = (n - 1) * e_relu2 / (n * s)
    return lam * nu * math.sqrt(a * a * nu2 + r * r * mu**2 + 2 * a * r * mu**2)


def gau_init_stats(
    n: int = 512,
    d: int = 768,
    expansion: int = 2,
    s: int = 128,
    lam: float = 1.0,
    batch: int = 1,
    seed: int = 0,
    causal: bool = False,
    dtype: torch.dtype = torch.float32,
    *,
    qk_init: str = "ones",
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Statistics of a freshly initialised GAU on ``X ~ N(0, 1)`` of shape (batch, n, d) (the article's setting).

    The unit is ``kexue_lite.attention.GatedAttentionUnit`` with LeCun weights (std ``1/sqrt(fan_in)``), every
    Linear weight then multiplied by ``lam`` (the article's section 疯狂尺度), biases 0, ``Q(Z), K(Z)`` scale
    ``qk_init`` ("ones": gamma = 1 as in the article; "normal": FLASH's std 0.02) and offset 0.

    Returns ``rms_ratio`` = rms(GAU(X)) / rms(X); ``diag_mean`` and ``offdiag_mean`` (mean of ``A_ii`` and of the
    allowed ``A_ij``, i != j); ``row_sum`` (mean row sum of ``A``, diagonal included); ``offdiag_mass``
    (``row_sum - diag_mean``). Deterministic in ``seed``; the global torch RNG is left untouched.
    """
    n = check_int("n", n, 2)
    d = check_int("d", d)
    expansion = check_int("expansion", expansion)
    s = check_int("s", s)
    batch = check_int("batch", batch)
    seed = check_int("seed", seed, 0)
    lam = _finite_real(lam, "lam")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if qk_init not in ("ones", "normal"):
        raise ValueError(f"qk_init must be 'ones' or 'normal', got {qk_init!r}")
    device = torch.device("cpu") if device is None else torch.device(device)
    # Deterministic in its arguments, so repeated calls (the notebook's sweeps share some points) are cached.
    return dict(_gau_init_stats_cached(n, d, expansion, s, lam, batch, seed, causal, dtype, qk_init, str(device)))


@functools.lru_cache(maxsize=64)
def _gau_init_stats_cached(n: int, d: int, expansion: int, s: int, lam: float, batch: int, seed: int, causal: bool,
                           dtype: torch.dtype, qk_init: str, device: str) -> dict[str, float]:
    from kexue_lite import attention, training  # the shared component (lazy: training imports this module)

    device = torch.device(device)
    cfg = training.BlockConfig(d_model=d, mixer="gau", gau_s=s, gau_expansion=expansion, gau_qk_init=qk_init,
                               init="lecun", causal=causal)
    with torch.random.fork_rng(devices=[]):  # the constructor's default init draws from the global RNG
        gau = attention.GatedAttentionUnit(cfg)
    training.init_weights(gau, cfg, generator=torch.Generator().manual_seed(seed))
    gau = gau.to(device=device, dtype=dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed + 10_007)
    x = torch.randn(batch, n, d, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    with torch.no_grad():
        for module in gau.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(lam)
        A, out = gau.weights(x), gau(x)  # A (B, n, n) from the shared module, lower-triangular when causal
    eye = torch.eye(n, dtype=torch.bool, device=device)
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool, device=device), -1) if causal else ~eye
    diag = A[..., eye].double().mean().item()
    off = A[..., allowed].double().mean().item()
    row = A.double().sum(-1).mean().item()
    rms = (out.double().pow(2).mean().sqrt() / x.double().pow(2).mean().sqrt()).item()
    return {"rms_ratio": rms, "diag_mean": diag, "offdiag_mean": off, "row_sum": row, "offdiag_mass": row - diag}


def one_step_relative_change(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    lr: float = 1e-3,
    optimizer: str = "adam",
    readout_seed: int = 0,
) -> float:
    """DeepNet's update size: ``||f(x; theta') - f(x; theta)|| / ||f(x; theta)||`` after one optimiser step.

    theta' is one step of ``optimizer`` ("adam" or "sgd", rate ``lr``) on the loss ``mean(f(x) * r)`` with a
    fixed Gaussian readout ``r`` (seeded by ``readout_seed``), the measure used in gau-without-warmup
    (experiment 4) and why-residuals-deepnet. It works on a deep copy: ``model`` is left untouched.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("x must not be empty")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("x must be finite (no NaN or inf)")
    lr = _finite_real(lr, "lr")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    readout_seed = check_int("readout_seed", readout_seed, 0)
    work = copy.deepcopy(model)
    work.train()
    params = [p for p in work.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    y0 = work(x)
    if not isinstance(y0, torch.Tensor) or not y0.is_floating_point():
        raise TypeError("model(x) must return a floating-point tensor")
    gen = torch.Generator(device="cpu").manual_seed(readout_seed)
    r = torch.randn(y0.shape, generator=gen, dtype=torch.float64).to(device=y0.device, dtype=y0.dtype)
    # kexue_lite.optim: torch.optim's single-tensor Adam/SGD, bit for bit, without importing torch._dynamo
    # (about 1 s of CPU on the first call)
    opt = Adam(params, lr=lr) if optimizer == "adam" else SGD(params, lr=lr)
    opt.zero_grad()
    (y0 * r).mean().backward()
    opt.step()
    with torch.no_grad():
        y1 = work(x)
        base = y0.detach().double().norm().item()
        if base == 0:
            raise ValueError("model(x) is identically zero: the relative change is undefined")
        return (y1.double() - y0.detach().double()).norm().item() / base
