"""One-dimensional density models: the Fourier Basis Density Model and its baselines.

Serves the notebook ``book/multimodal/fourier-density.md`` (kexue.fm/archives/10007,
De la Fuente, Singh & Ballé, arXiv:2402.15345).

Conventions (used everywhere below)
-----------------------------------
* Free parameters ``a = (a_0, ..., a_N)`` are complex.
* Autocorrelation, the article's orientation: ``c_n = sum_k a_k conj(a_{k+n})``, n = 0..N,
  and ``c_{-n} = conj(c_n)``.
* Unnormalised series on [-1, 1]: ``f(x) = sum_{|n|<=N} c_n exp(i pi n x)
  = |sum_k a_k exp(-i pi k x)|^2``, so ``f >= 0`` by construction.
* Normalised density ``p = f / (2 c_0)``; ``c_0 = sum_k |a_k|^2 > 0``.
* On the real line, ``u = tanh((y - loc) / scale)`` and ``q(y) = p(u) sech^2(.) / scale``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.special
import scipy.stats
import torch

from .optim import Adam

Array = np.ndarray | torch.Tensor

__all__ = [
    "fourier_autocorr",
    "fourier_pdf",
    "fourier_cdf",
    "fourier_sample",
    "fourier_penalty",
    "spectral_factor",
    "FourierDensity",
    "fit_fourier_density",
    "fit_fourier_densities",
    "DeepFactorized",
    "fit_deep_factorized",
    "gmm_em",
    "gmm_fit_adam",
    "gmm_fit_adam_many",
    "gmm_pdf",
    "kde_pdf",
    "kl_on_grid",
    "targets",
]

_DOMAIN_TOL = 1e-12


# ----------------------------------------------------------------------------- helpers
def _check_coeffs(a: Array, name: str = "a") -> None:
    if not isinstance(a, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(a).__name__}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(a.shape)}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} must have at least one coefficient (a_0)")


def _as_complex(a: Array) -> Array:
    if isinstance(a, torch.Tensor):
        if a.is_complex():
            return a
        return a.to(torch.complex128 if a.dtype == torch.float64 else torch.complex64)
    return np.asarray(a, dtype=np.complex128)


def _check_domain(x: Array) -> None:
    if x.numel() == 0 if isinstance(x, torch.Tensor) else np.size(x) == 0:
        return
    xmax = float(x.detach().abs().max()) if isinstance(x, torch.Tensor) else float(np.max(np.abs(x)))
    if not math.isfinite(xmax) or xmax > 1 + _DOMAIN_TOL:
        raise ValueError(f"x must lie in [-1, 1]; got max |x| = {xmax:g}")


def _frequencies(ref: Array, stop: int) -> Array:
    """``1, 2, ..., stop - 1`` as an array of the same library, device and real dtype as ``ref``."""
    if isinstance(ref, torch.Tensor):
        real = torch.float32 if ref.dtype in (torch.float32, torch.complex64) else torch.float64
        return torch.arange(1, stop, dtype=real, device=ref.device)
    return np.arange(1.0, stop)


def _grid_like(x: Array, a: Array) -> Array:
    """Return x as an array of the same library (and real dtype) as a."""
    if isinstance(a, torch.Tensor):
        real = torch.float64 if a.dtype in (torch.complex128, torch.float64) else torch.float32
        return torch.as_tensor(x, dtype=real, device=a.device)
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------- the FBDM maths
def _autocorr(a: Array) -> Array:
    """``fourier_autocorr`` along the last axis, without argument checks (batch-aware)."""
    n1 = a.shape[-1]
    if isinstance(a, torch.Tensor):
        spec = torch.fft.fft(a, n=2 * n1, dim=-1)
        return torch.fft.ifft(spec.conj() * spec, dim=-1)[..., :n1].conj_physical()
    spec = np.fft.fft(a, n=2 * n1, axis=-1)
    return np.fft.ifft(np.conj(spec) * spec, axis=-1)[..., :n1].conj()


def fourier_autocorr(a: Array) -> Array:
    """Autocorrelation ``c_n = sum_{k=0}^{N-n} a_k conj(a_{k+n})`` for n = 0..N.

    Computed with one FFT of length 2N+2 (no wrap-around): ``r = ifft(conj(A) * A)[:N+1]``
    equals ``sum_k conj(a_k) a_{k+n} = conj(c_n)``, so we return ``conj(r)``.
    Autograd flows through the torch branch. Numpy in, numpy out; torch in, torch out.
    """
    _check_coeffs(a)
    return _autocorr(_as_complex(a))


def _modulus(a: Array, x: Array) -> Array:
    """``|sum_k a_k exp(-i pi k x)|^2`` at every x (torch: batch-aware, a (..., N+1), x (..., M))."""
    if isinstance(a, torch.Tensor):
        # Horner in z = exp(-i pi x) (|z| = 1, so stable): 3x faster with autograd than building
        # the (..., M, N+1) matrix of cos/sin, which dominated the fits of fourier-density.
        z = torch.polar(torch.ones_like(x), -torch.pi * x)
        s = a[..., -1, None].expand_as(z)
        for k in range(a.shape[-1] - 2, -1, -1):
            s = s * z + a[..., k, None]
        return s.real * s.real + s.imag * s.imag
    theta = np.pi * np.multiply.outer(x, np.arange(a.shape[0]))
    s = np.exp(-1j * theta) @ a
    return s.real**2 + s.imag**2


def fourier_pdf(a: Array, x: Array, form: str = "modulus") -> Array:
    """Normalised FBDM density on [-1, 1] (article eq. for ``p_theta``).

    ``form="modulus"`` evaluates ``|sum_k a_k e^{-i pi k x}|^2 / (2 c_0)``: non-negative by
    construction, even in floating point. ``form="series"`` evaluates the Fourier series
    ``1/2 + sum_{n>=1} (Re c_n cos(pi n x) - Im c_n sin(pi n x)) / c_0``; the two agree
    to rounding (the Fejér–Riesz identity). Raises ``ValueError`` if any |x| > 1.
    """
    _check_coeffs(a)
    a = _as_complex(a)
    x = _grid_like(x, a)
    _check_domain(x)
    if form == "modulus":
        c0 = (a.real**2 + a.imag**2).sum()
        return _modulus(a, x) / (2 * c0)
    if form != "series":
        raise ValueError(f"form must be 'modulus' or 'series', got {form!r}")
    c = fourier_autocorr(a)
    lib = torch if isinstance(a, torch.Tensor) else np
    n = _frequencies(x, c.shape[0])
    theta = lib.pi * x[..., None] * n
    terms = c[1:].real * lib.cos(theta) - c[1:].imag * lib.sin(theta)
    return 0.5 + terms.sum(-1) / c[0].real


def fourier_cdf(a: Array, x: Array) -> Array:
    """Exact CDF on [-1, 1] (derivation 3 of the notebook; corrects the article's formula).

    ``Phi(x) = (x + 1)/2 + Re sum_{n=1}^N (c_n / c_0) (e^{i pi n x} - (-1)^n) / (i pi n)``.
    Raises ``ValueError`` if any |x| > 1.
    """
    _check_coeffs(a)
    a = _as_complex(a)
    x = _grid_like(x, a)
    _check_domain(x)
    c = fourier_autocorr(a)
    N = c.shape[0] - 1
    lib = torch if isinstance(a, torch.Tensor) else np
    if N == 0:
        return (x + 1) / 2
    n = _frequencies(x, N + 1)
    sign = 1.0 - 2.0 * (n % 2)  # (-1)^n
    theta = lib.pi * x[..., None] * n
    ratio = c[1:] / c[0].real
    # Re[(r + i s)(cos t + i sin t - sign) / (i pi n)] = (r sin t + s (cos t - sign)) / (pi n)
    terms = (ratio.real * lib.sin(theta) + ratio.imag * (lib.cos(theta) - sign)) / (lib.pi * n)
    return (x + 1) / 2 + terms.sum(-1)


def fourier_sample(a: Array, n: int, seed: int = 0, iters: int = 60) -> np.ndarray:
    """Draw ``n`` samples in [-1, 1] by inverse-CDF bisection on ``fourier_cdf``.

    Sixty halvings of [-1, 1] reach 2^-59 < float64 spacing near 1, so the draws are
    exact to machine precision (no Newton polish is needed). Returns a float64 array.
    """
    _check_coeffs(a)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if iters < 1:
        raise ValueError(f"iters must be at least 1, got {iters}")
    a_np = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    target = np.random.default_rng(seed).uniform(size=n)
    lo, hi = -np.ones(n), np.ones(n)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = fourier_cdf(a_np, mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _penalty(a: Array) -> Array:
    """``fourier_penalty`` along the last axis, without argument checks (batch-aware)."""
    c = _autocorr(a)
    n = _frequencies(c, c.shape[-1])
    mag2 = c[..., 1:].real ** 2 + c[..., 1:].imag ** 2
    return math.pi**2 * (n**2 * mag2).sum(-1) / c[..., 0].real ** 2


def fourier_penalty(a: Array) -> Array:
    """Smoothness penalty of the *normalised* density (derivation 4).

    ``int_{-1}^{1} |p'(x)|^2 dx = pi^2 sum_{n>=1} n^2 |c_n|^2 / c_0^2``. It is invariant to
    ``a -> lambda a``, like the likelihood of the normalised density. The unnormalised ``int |f'|^2`` scales as
    ``lambda^4``, so the optimiser can lower it by rescaling ``a`` without changing the density: the penalty's
    weight then stops meaning anything (fourier-density, exercise on the scale gauge).
    """
    _check_coeffs(a)
    return _penalty(_as_complex(a))


def spectral_factor(c: np.ndarray) -> np.ndarray:
    """Minimum-phase ``a`` with ``fourier_autocorr(a) == c`` (Fejér–Riesz, constructively).

    The Laurent polynomial ``F(z) = sum_n c_n z^n`` equals ``A(1/z) conj(A)(z)`` with
    ``A(z) = sum_k a_k z^k``; its 2N roots pair up as (r, 1/conj(r)). Keeping the N roots
    ``r_j`` inside the unit circle gives ``A(z) ∝ prod_j (1 - r_j z)``, whose ascending
    coefficients are ``np.poly(r)``; the scale is fixed by ``c_0 = sum |a_k|^2``.
    Raises ``ValueError`` if ``c_0 <= 0``.
    """
    c = np.asarray(c, dtype=np.complex128)
    _check_coeffs(c, "c")
    if not c[0].real > 0:
        raise ValueError(f"c[0] must be positive (it is sum |a_k|^2), got {c[0]}")
    scale = np.abs(c).max()
    N = c.shape[0] - 1
    while N > 0 and abs(c[N]) <= 1e-14 * scale:
        N -= 1
    if N == 0:
        out = np.zeros(c.shape[0], dtype=np.complex128)
        out[0] = np.sqrt(c[0].real)
        return out
    full = np.concatenate([np.conj(c[1 : N + 1][::-1]), c[: N + 1]])  # c_{-N} .. c_N
    roots = np.roots(full[::-1])  # np.roots wants the highest power first
    inside = roots[np.argsort(np.abs(roots))[:N]]
    a = np.poly(inside).astype(np.complex128)
    a *= np.sqrt(c[0].real / np.sum(np.abs(a) ** 2))
    return np.concatenate([a, np.zeros(c.shape[0] - N - 1, dtype=np.complex128)])


# --------------------------------------------------------------------- the torch model
def _log_sech2(t: torch.Tensor) -> torch.Tensor:
    """``log sech^2 t = log 4 - 2 t - 2 softplus(-2 t)``: exact and overflow-free. softplus's default threshold (20,
    above which it returns its input) would drop ``2 log(1 + e^-20) = 4e-9`` for t just below -10; at 50 the dropped
    ``e^-50`` is below float64's resolution of the result."""
    return math.log(4.0) - 2.0 * t - 2.0 * torch.nn.functional.softplus(-2.0 * t, threshold=50.0)


def _log_prob(a: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Batch-aware ``log q(y) = log p(u) + log sech^2(t) - log scale``, ``t = (y - loc)/scale``.

    Shapes: a (..., N+1), loc and log_scale (...), y (..., M); returns (..., M).
    """
    t = (y - loc[..., None]) / log_scale.exp()[..., None]
    c0 = (a.real**2 + a.imag**2).sum(-1)
    log_p = torch.log(_modulus(a, torch.tanh(t))) - torch.log(2 * c0)[..., None]
    return log_p + _log_sech2(t) - log_scale[..., None]


def _nll_and_grads(
    a: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean negative log-likelihood ``-mean_j log q(y_j)`` of each model and its gradients, written out.

    Shapes: a (B, N+1), loc and log_scale (B,), y (B, M). Returns ``(nll, g_a, g_loc, g_log_scale)`` with torch's
    convention for complex parameters, ``g_a = dL/dRe a + i dL/dIm a = 2 dL/d conj(a)``; equal to autograd through
    :func:`_log_prob` to rounding (``tests/test_density.py``), at about half its cost in the fits of fourier-density.
    With ``t = (y - loc)/s``, ``u = tanh t``, ``z = exp(-i pi u)``, ``E_jk = z_j^k``, ``S = E a``, ``m = |S|^2`` and
    ``c_0 = sum |a_k|^2``, ``log q = log m - log 2c_0 + log sech^2 t - log s``, so

    * ``d log m_j / d conj(a_k) = conj(E_jk) / conj(S_j)`` and ``d log c_0 / d conj(a_k) = a_k / c_0``:
      ``g_a = -(2/M) E^H (S/m) + 2 a / c_0``;
    * ``d log q_j / dt_j = (2 Re(conj(S_j) S'_j) / m_j)(1 - u_j^2) - 2 u_j =: g_j`` with
      ``S' = dS/du = -i pi E (k a)``; then ``dt/dloc = -1/s`` and ``dt/dlog s = -t`` give
      ``g_loc = sum_j g_j / (M s)`` and ``g_log_scale = sum_j g_j t_j / M + 1``.
    """
    B, M = y.shape
    s = log_scale.exp()[:, None]
    t = (y - loc[:, None]) / s
    u = torch.tanh(t)
    z = torch.polar(torch.ones_like(u), -math.pi * u)
    E = torch.empty(B, M, a.shape[-1], dtype=a.dtype, device=a.device)  # E_jk = z_j^k, by a running product
    E[..., 0] = 1
    torch.cumprod(z[..., None].expand(B, M, a.shape[-1] - 1), dim=-1, out=E[..., 1:])
    k = torch.arange(a.shape[-1], dtype=t.dtype, device=t.device)
    S, Sk = (E @ torch.stack([a, a * k], -1)).unbind(-1)   # S = E a and E (k a) in one product
    dS = -1j * math.pi * Sk
    m = S.real * S.real + S.imag * S.imag
    c0 = (a.real * a.real + a.imag * a.imag).sum(-1)
    log_q = torch.log(m) - torch.log(2 * c0)[:, None] + _log_sech2(t) - log_scale[:, None]
    g_a = -(2.0 / M) * ((S / m).conj()[:, None, :] @ E)[:, 0].conj() + 2 * a / c0[:, None]
    g = 2 * (S.conj() * dS).real / m * (1 - u * u) - 2 * u
    return -log_q.mean(-1), g_a, g.sum(-1) / (M * s[:, 0]), (g * t).sum(-1) / M + 1.0


class FourierDensity(torch.nn.Module):
    """The Fourier Basis Density Model as a ``torch.nn.Module``.

    Parameters: complex ``a`` (N+1,), initialised to the uniform density ``a = (1, 0, ..., 0)``,
    and, when ``mapped``, ``loc`` and ``log_scale`` of the map ``u = tanh((y - loc)/scale)``.
    With ``mapped=False`` the model lives on [-1, 1] directly.
    """

    def __init__(
        self,
        N: int,
        mapped: bool = True,
        loc: float = 0.0,
        scale: float = 1.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        _check_int(N, "N")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        a = torch.zeros(N + 1, dtype=cdtype)
        a[0] = 1.0
        self.N = int(N)
        self.mapped = bool(mapped)
        self.a = torch.nn.Parameter(a)
        self.loc = torch.nn.Parameter(torch.tensor(float(loc), dtype=dtype), requires_grad=mapped)
        self.log_scale = torch.nn.Parameter(
            torch.tensor(math.log(scale), dtype=dtype), requires_grad=mapped
        )

    def _real(self, y: Array) -> torch.Tensor:
        return torch.as_tensor(y, dtype=self.loc.dtype, device=self.loc.device)

    def to_unit(self, y: Array) -> torch.Tensor:
        """Map ``y`` to ``u = tanh((y - loc)/scale)`` in [-1, 1] (the identity if not mapped)."""
        y = self._real(y)
        if not self.mapped:
            _check_domain(y)
            return y
        return torch.tanh((y - self.loc) / self.log_scale.exp())

    def log_prob(self, y: Array) -> torch.Tensor:
        """``log q(y)``; with ``mapped=False``, ``log p(y)`` on [-1, 1]."""
        y = self._real(y)
        if self.mapped:
            return _log_prob(self.a, self.loc, self.log_scale, y)
        _check_domain(y)
        return torch.log(fourier_pdf(self.a, y))

    def prob(self, y: Array) -> torch.Tensor:
        return self.log_prob(y).exp()

    def cdf(self, y: Array) -> torch.Tensor:
        """``Q(y) = Phi(tanh((y - loc)/scale))``, exact."""
        return fourier_cdf(self.a, self.to_unit(y).clamp(-1.0, 1.0))

    def penalty(self) -> torch.Tensor:
        return fourier_penalty(self.a)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Exact samples: ``u`` by inverse CDF, then ``y = loc + scale * artanh(u)``.

        ``u`` is kept strictly inside (-1, 1) (at most ~18.7 scales from ``loc``).
        """
        u = fourier_sample(self.a, n, seed=seed)
        if not self.mapped:
            return u
        u = np.clip(u, -np.nextafter(1.0, 0.0), np.nextafter(1.0, 0.0))
        return float(self.loc) + float(self.log_scale.exp()) * np.arctanh(u)


def _check_int(v: object, name: str, low: int = 0) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name} must be at least {low}, got {v}")


def _per_model(value: object, B: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * B
    if len(values) != B:
        raise ValueError(f"{name} must be a scalar or have one entry per data set ({B}), got {len(values)}")
    return values


def fit_fourier_densities(
    xs: Sequence[np.ndarray] | np.ndarray,
    N: int | Sequence[int] = 20,
    steps: int = 400,
    lr: float = 0.05,
    gamma: float | Sequence[float] = 1e-4,
    seed: int | Sequence[int] = 0,
    device: str = "cpu",
    init: FourierDensity | None | Sequence[FourierDensity | None] = None,
) -> list[FourierDensity]:
    """Fit one independent model per data set (all of equal length) in a single batched loop.

    Each model sees the arithmetic of :func:`fit_fourier_density` (the loss is a sum of per-model losses and Adam's
    update is elementwise), so batching changes the results only by rounding (the order of sums in batched matrix
    products). ``N``, ``gamma``, ``seed`` and ``init`` are scalars or one per data set. Models of different ``N``
    share one loop at the largest ``N``: a smaller model's higher coefficients start at 0 and their gradients are
    zeroed, so Adam leaves them at exactly 0 and they add exact zeros to the series (the penalty's FFT length
    differs, which moves it only by rounding). The likelihood's gradients are written out (:func:`_nll_and_grads`,
    equal to autograd's to rounding); the penalty's go through autograd. Each returned model carries ``history``, a numpy array ``(steps,)`` of its objective
    (mean NLL plus penalty) before each step, recorded without extra computation.
    """
    data = np.asarray(xs, dtype=np.float64) if not isinstance(xs, np.ndarray) else xs.astype(np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"xs must hold data sets of equal length >= 2 (shape (B, n)), got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("xs must be finite")
    _check_int(steps, "steps")
    B = data.shape[0]
    Ns, gammas, seeds, inits = (_per_model(v, B, name) for v, name in ((N, "N"), (gamma, "gamma"), (seed, "seed"), (init, "init")))
    for n_b in Ns:
        _check_int(n_b, "N")
    if any(not g >= 0 for g in gammas):
        raise ValueError(f"gamma must be non-negative, got {gammas}")
    N_max = max(Ns)
    a = torch.zeros(B, N_max + 1, dtype=torch.complex128)
    loc = torch.tensor(data.mean(1))
    log_scale = torch.tensor(np.log(np.where(data.std(1) > 0, data.std(1), 1.0)))
    for b, (n_b, sd, start) in enumerate(zip(Ns, seeds, inits)):
        if start is None:
            a[b, 0] = 1.0
            a[b, 1 : n_b + 1] = 0.01 * torch.randn(n_b, dtype=torch.complex128, generator=torch.Generator().manual_seed(sd))
            continue
        if not isinstance(start, FourierDensity):
            raise TypeError(f"init must be a FourierDensity, got {type(start).__name__}")
        if start.N > n_b:
            raise ValueError(f"init has N={start.N} > N={n_b}; warm starts only grow N")
        a[b, : start.N + 1] = start.a.detach().cpu().to(torch.complex128)
        loc[b], log_scale[b] = start.loc.detach().item(), start.log_scale.detach().item()
    params = [torch.nn.Parameter(v.to(device)) for v in (a, loc, log_scale)]
    y = torch.as_tensor(data, device=device)
    g = torch.tensor(gammas, dtype=torch.float64, device=device)
    frozen = torch.arange(N_max + 1, device=device)[None, :] > torch.tensor(Ns, device=device)[:, None]
    use_penalty, any_frozen = any(gm > 0 for gm in gammas), any(n_b < N_max for n_b in Ns)  # fixed: no per-step sync
    opt = Adam(params, lr=lr)
    history = []
    for _ in range(steps):
        with torch.no_grad():  # the likelihood's gradients are written out (_nll_and_grads): no graph of N Horner steps
            loss, *grads = _nll_and_grads(*params, y)
        if use_penalty:  # the penalty's small graph, (B, N+1), by autograd
            a_leaf = params[0].detach().requires_grad_(True)
            penalty = g * _penalty(a_leaf)
            penalty.sum().backward()
            grads[0] = grads[0] + a_leaf.grad
            loss = loss + penalty.detach()
        for p, grad in zip(params, grads):
            p.grad = grad
        if any_frozen:
            params[0].grad.masked_fill_(frozen, 0)
        opt.step()
        history.append(loss)
    history_np = torch.stack(history).cpu().numpy() if history else np.zeros((0, B))
    models = []
    for b, n_b in enumerate(Ns):
        model = FourierDensity(n_b, loc=0.0, scale=1.0).to(device)
        with torch.no_grad():
            model.a.copy_(params[0][b, : n_b + 1])
            model.loc.copy_(params[1][b])
            model.log_scale.copy_(params[2][b])
        model.history = history_np[:, b].copy()  # the objective before each Adam step, shape (steps,)
        models.append(model.eval())
    return models


def fit_fourier_density(
    x: np.ndarray,
    N: int = 20,
    steps: int = 400,
    lr: float = 0.05,
    gamma: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    init: FourierDensity | None = None,
) -> FourierDensity:
    """Maximum likelihood with Adam: minimise ``-mean log q(x) + gamma * penalty``.

    Initialisation: ``a_0 = 1``, ``a_k ~ 0.01 CN(0, 1)`` (torch generator seeded with ``seed``),
    ``loc`` = sample mean and ``log_scale`` = log sample std, all trainable. With ``init``
    (warm start) its ``a`` is zero-padded to N+1 and its ``loc``/``log_scale`` are copied.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of samples, got shape {x.shape}")
    return fit_fourier_densities(x[None], N, steps, lr, [gamma], [seed], device, [init])[0]


# ------------------------------------------------------------------------- baselines
def _check_gmm_args(x: np.ndarray, K: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {x.shape}")
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool):
        raise TypeError(f"K must be an int, got {type(K).__name__}")
    if K < 1 or K > x.size:
        raise ValueError(f"K must satisfy 1 <= K <= len(x) = {x.size}, got {K}")
    return x


def _normal_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x[:, None] - mu) / sd
    return -0.5 * z * z - np.log(sd) - 0.5 * math.log(2 * math.pi)


def gmm_em(
    x: np.ndarray, K: int, iters: int = 300, seed: int = 0, min_std: float = 1e-4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian mixture (learned weights: 3K - 1 real dof) fitted by EM in log space.

    Init: means drawn from the data without replacement, every std = sample std,
    equal weights. Stds are floored at ``min_std`` so a component cannot collapse.
    """
    x = _check_gmm_args(x, K)
    rng = np.random.default_rng(seed)
    mu = rng.choice(x, size=K, replace=False)
    sd = np.full(K, max(x.std(), min_std))
    w = np.full(K, 1.0 / K)
    for _ in range(iters):
        logr = np.log(w) + _normal_logpdf(x, mu, sd)
        logr -= logr.max(axis=1, keepdims=True)  # log-sum-exp, by hand: scipy's costs 2x here
        r = np.exp(logr)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(0) + 1e-300
        w = nk / x.size
        mu = (r * x[:, None]).sum(0) / nk
        sd = np.sqrt((r * (x[:, None] - mu) ** 2).sum(0) / nk)
        sd = np.maximum(sd, min_std)
    return w, mu, sd


def gmm_fit_adam(
    x: np.ndarray, K: int, steps: int = 600, lr: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same mixture fitted by Adam on (logits, means, log stds), same init as ``gmm_em``."""
    return gmm_fit_adam_many([x], K, steps, lr, [seed])[0]


def gmm_fit_adam_many(
    xs: Sequence[np.ndarray], K: int, steps: int = 600, lr: float = 0.05, seeds: Sequence[int] | None = None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`gmm_fit_adam` on several data sets of equal length in one batched loop (``seeds``: one per data set,
    default ``0, 1, ...``). The loss is the sum of the per-set losses and Adam is elementwise, so every mixture gets
    exactly the arithmetic of its own fit; batching changes only the speed."""
    xs = [_check_gmm_args(x, K) for x in xs]
    if not xs or len({x.size for x in xs}) != 1:
        raise ValueError(f"xs must hold at least one data set, all of the same length, got lengths {[x.size for x in xs]}")
    seeds = list(range(len(xs))) if seeds is None else list(seeds)
    if len(seeds) != len(xs):
        raise ValueError(f"seeds must have one entry per data set ({len(xs)}), got {len(seeds)}")
    data = torch.as_tensor(np.stack(xs))  # (B, n)
    B = len(xs)
    logits = torch.zeros(B, K, dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(np.stack([np.random.default_rng(sd).choice(x, size=K, replace=False) for sd, x in zip(seeds, xs)]),
                      requires_grad=True)
    log_sd = torch.tensor([[math.log(x.std())] * K for x in xs], dtype=torch.float64, requires_grad=True)
    opt = Adam([logits, mu, log_sd], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        z = (data[:, :, None] - mu[:, None, :]) / log_sd.exp()[:, None, :]
        comp = -0.5 * z * z - log_sd[:, None, :] - 0.5 * math.log(2 * math.pi)
        loss = -torch.logsumexp(torch.log_softmax(logits, -1)[:, None, :] + comp, dim=-1).mean(-1)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        w, m, sd = torch.softmax(logits, -1).numpy(), mu.detach().numpy().copy(), log_sd.exp().numpy()
    return [(w[b], m[b], sd[b]) for b in range(B)]


def gmm_pdf(x: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Mixture density ``sum_k w_k N(x; mu_k, sd_k^2)``, evaluated in log space."""
    x = np.asarray(x, dtype=np.float64)
    w, mu, sd = (np.asarray(v, dtype=np.float64) for v in (w, mu, sd))
    if not (w.shape == mu.shape == sd.shape) or w.ndim != 1:
        raise ValueError("w, mu and sd must be 1-D arrays of the same length")
    if np.any(sd <= 0):
        raise ValueError("sd must be positive")
    logp = scipy.special.logsumexp(np.log(w) + _normal_logpdf(x.ravel(), mu, sd), axis=1)
    return np.exp(logp).reshape(x.shape)


def kde_pdf(train: np.ndarray, x: np.ndarray, bandwidth: str | float = "scott") -> np.ndarray:
    """Gaussian kernel density estimate (wraps ``scipy.stats.gaussian_kde``).

    ``bandwidth`` is ``'scott'``, ``'silverman'`` or a positive float: the kernel's standard
    deviation in the units of ``x`` (not scipy's factor; we convert).
    """
    train = np.asarray(train, dtype=np.float64)
    if train.ndim != 1 or train.size < 2:
        raise ValueError(f"train must be a 1-D array of at least 2 samples, got shape {train.shape}")
    if isinstance(bandwidth, str):
        if bandwidth not in ("scott", "silverman"):
            raise ValueError(f"bandwidth must be 'scott', 'silverman' or a float, got {bandwidth!r}")
        bw = bandwidth
    else:
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be positive, got {bandwidth}")
        bw = float(bandwidth) / train.std(ddof=1)
    return scipy.stats.gaussian_kde(train, bw_method=bw)(np.asarray(x, dtype=np.float64))


class DeepFactorized(torch.nn.Module):
    """A batch of ``B`` deep factorized densities (the monotone-CDF "DFP" of Ballé et al. 2018, appendix 6.1).

    On the standardised input ``z = (y - shift) / scale`` (``shift``, ``scale`` fixed, from the data), the CDF is
    ``sigmoid(f_K(... f_1(z)))`` with ``f_k(x) = g_k(H_k x + b_k)``, ``g_k(x) = x + a_k * tanh(x)`` for ``k < K``
    and ``g_K`` the identity, where ``H_k = softplus(H~_k) > 0`` and ``a_k = tanh(a~_k) > -1``: every layer is
    increasing, so the CDF is. The density is the CDF's derivative, carried through the layers exactly
    (``dx <- H dx``, ``dx <- (1 + a sech^2 x) dx``, ``sigmoid' = sigmoid (1 - sigmoid)``), divided by ``scale``.
    ``filters`` are the hidden widths ``(r_1, .., r_{K-1})``; parameters per model:
    ``sum r_k r_{k+1} + sum r_{k+1} + sum_{k<K} r_{k+1}`` with ``r_0 = r_K = 1`` (43 for ``(3, 3, 3)``).
    Initialisation as in tensorflow_compression's DeepFactorized: constant ``H~`` with ``softplus(H~_k) = 1 /
    (r_{k+1} s)``, ``s = init_scale^{1/K}`` (the chain divides the input by ``init_scale``), ``b ~ U(-1/2, 1/2)``,
    ``a~ = 0``. That library's ``init_scale = 10`` suits raw data; on the standardised input here 1 trains faster.
    Serves ``book/multimodal/fourier-density.md`` (the paper's baseline).
    """

    def __init__(self, filters: Sequence[int], shift: Sequence[float], scale: Sequence[float], seed: int = 0,
                 init_scale: float = 1.0):
        super().__init__()
        widths = [1, *filters, 1]
        for r in filters:
            _check_int(r, "filters", low=1)
        shift_t, scale_t = torch.as_tensor(shift, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64)
        if shift_t.ndim != 1 or shift_t.shape != scale_t.shape or shift_t.numel() == 0:
            raise ValueError(f"shift and scale must be 1-D of the same length B >= 1, got {tuple(shift_t.shape)} and {tuple(scale_t.shape)}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        if not torch.all(scale_t > 0):
            raise ValueError(f"scale must be positive, got {scale_t.tolist()}")
        B, K = shift_t.numel(), len(widths) - 1
        self.filters = tuple(int(r) for r in filters)
        self.register_buffer("shift", shift_t)
        self.register_buffer("scale", scale_t)
        gen = torch.Generator().manual_seed(seed)
        s = init_scale ** (1 / K)
        self.H = torch.nn.ParameterList(
            torch.nn.Parameter(torch.full((B, r_out, r_in), math.log(math.expm1(1 / (r_out * s))), dtype=torch.float64))
            for r_in, r_out in zip(widths, widths[1:]))
        self.b = torch.nn.ParameterList(
            torch.nn.Parameter(torch.rand(B, r_out, 1, generator=gen, dtype=torch.float64) - 0.5) for r_out in widths[1:])
        self.a = torch.nn.ParameterList(
            torch.nn.Parameter(torch.zeros(B, r_out, 1, dtype=torch.float64)) for r_out in widths[1:-1])

    def n_params(self) -> int:
        """Trainable reals per model (the batch axis excluded)."""
        return sum(p[0].numel() for p in self.parameters())

    def _logits_and_slope(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((y - self.shift[:, None]) / self.scale[:, None])[:, None, :]  # (B, 1, n)
        d = torch.ones_like(x)
        for k, (H_raw, b) in enumerate(zip(self.H, self.b)):
            H = torch.nn.functional.softplus(H_raw)
            x, d = H @ x + b, H @ d
            if k < len(self.a):
                t, a = torch.tanh(x), torch.tanh(self.a[k])
                x, d = x + a * t, d * (1 + a * (1 - t * t))
        return x[:, 0], d[:, 0]

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """``log q(y)`` for ``y`` of shape ``(B, n)`` (model ``b`` scores row ``b``)."""
        logit, slope = self._logits_and_slope(y)
        log_sig_prime = torch.nn.functional.logsigmoid(logit) + torch.nn.functional.logsigmoid(-logit)
        return log_sig_prime + torch.log(slope.clamp_min(1e-300)) - torch.log(self.scale)[:, None]

    def cdf(self, y: torch.Tensor) -> torch.Tensor:
        """``Q(y)`` for ``y`` of shape ``(B, n)``."""
        return torch.sigmoid(self._logits_and_slope(y)[0])

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Every model's density at the points ``x`` (1-D): an array ``(B, len(x))``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"x must be 1-D, got shape {x.shape}")
        with torch.no_grad():
            y = torch.as_tensor(x, device=self.shift.device).expand(self.shift.numel(), -1)
            return self.log_prob(y).exp().cpu().numpy()


def fit_deep_factorized(
    xs: Sequence[np.ndarray] | np.ndarray,
    filters: Sequence[int] = (3, 3, 3),
    steps: int = 1000,
    lr: float = 0.02,
    seed: int = 0,
    device: str = "cpu",
    init_scale: float = 1.0,
) -> DeepFactorized:
    """Maximum likelihood with Adam for one :class:`DeepFactorized` per data set (equal lengths), in one batched loop.

    Input standardised by each data set's mean and std (fixed); the loss is the sum over models of each model's
    mean negative log-likelihood, so the models train independently. The returned module carries ``history``, a
    numpy array ``(steps, B)`` of each model's mean NLL before each step.
    """
    data = np.asarray(xs, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"xs must hold data sets of equal length >= 2 (shape (B, n)), got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("xs must be finite")
    _check_int(steps, "steps")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    std = data.std(1)
    model = DeepFactorized(filters, data.mean(1), np.where(std > 0, std, 1.0), seed=seed, init_scale=init_scale).to(device)
    y = torch.as_tensor(data, device=device)
    opt = Adam(list(model.parameters()), lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -model.log_prob(y).mean(-1)
        loss.sum().backward()
        opt.step()
        history.append(loss.detach())
    model.history = torch.stack(history).cpu().numpy() if history else np.zeros((0, data.shape[0]))
    return model.eval()


def kl_on_grid(p: np.ndarray, q: np.ndarray, grid: np.ndarray, floor: float = 1e-300) -> float:
    """``KL(p || q) = int p log(p / q)`` by the trapezoid rule on ``grid``.

    Points where ``p == 0`` contribute 0; ``q`` is floored at ``floor`` to keep logs finite.
    """
    p, q, grid = (np.asarray(v, dtype=np.float64) for v in (p, q, grid))
    if not (p.shape == q.shape == grid.shape) or grid.ndim != 1:
        raise ValueError("p, q and grid must be 1-D arrays of the same shape")
    if np.any(np.diff(grid) <= 0):
        raise ValueError("grid must be strictly increasing")
    if np.any(p < 0) or np.any(q < 0):
        raise ValueError("p and q must be non-negative")
    integrand = np.where(p > 0, p * (np.log(np.maximum(p, floor)) - np.log(np.maximum(q, floor))), 0.0)
    return float(np.trapezoid(integrand, grid))


# --------------------------------------------------------------------------- targets
Sampler = Callable[[int, np.random.Generator], np.ndarray]
Pdf = Callable[[np.ndarray], np.ndarray]

_TARGET_A = (
    np.array([0.15, 0.25, 0.2, 0.25, 0.15]),
    np.array([-2.5, -1.2, 0.0, 1.0, 2.4]),
    np.array([0.08, 0.3, 0.05, 0.5, 0.15]),
)


def targets(name: str) -> tuple[Sampler, Pdf]:
    """Synthetic targets ``(sample(n, rng), pdf)`` of the notebook.

    * ``'A'``: a five-component GMM with narrow peaks.
    * ``'B'``: 0.4 Laplace(-2, 0.25) + 0.35 U[0, 1.5] + 0.25 N(3, 0.1^2).
    * ``'C'``: ``p(y) ∝ phi(y/1.5) (1 + 0.9 cos 4y)``, smooth, multimodal, not a GMM. Its exact
      normaliser is ``1.5 (1 + 0.9 e^{-18})`` since ``E cos 4Y = e^{-8 * 1.5^2}`` for
      ``Y ~ N(0, 1.5^2)``; sampled by rejection from ``N(0, 1.5^2)``.
    """
    if name == "A":
        w, mu, sd = _TARGET_A

        def sample(n: int, rng: np.random.Generator) -> np.ndarray:
            k = rng.choice(len(w), size=n, p=w)
            return rng.normal(mu[k], sd[k])

        return sample, lambda y: gmm_pdf(y, w, mu, sd)
    if name == "B":

        def sample(n: int, rng: np.random.Generator) -> np.ndarray:
            k = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
            draws = np.stack([rng.laplace(-2, 0.25, n), rng.uniform(0, 1.5, n), rng.normal(3, 0.1, n)])
            return draws[k, np.arange(n)]

        def pdf(y: np.ndarray) -> np.ndarray:
            y = np.asarray(y, dtype=np.float64)
            return (
                0.4 * scipy.stats.laplace.pdf(y, -2, 0.25)
                + 0.35 * scipy.stats.uniform.pdf(y, 0, 1.5)
                + 0.25 * scipy.stats.norm.pdf(y, 3, 0.1)
            )

        return sample, pdf
    if name == "C":
        norm = 1.5 * (1 + 0.9 * math.exp(-18.0))

        def sample(n: int, rng: np.random.Generator) -> np.ndarray:
            out = np.empty(0)
            while out.size < n:
                y = rng.normal(0.0, 1.5, 2 * (n - out.size) + 16)
                keep = rng.uniform(size=y.size) * 1.9 < 1 + 0.9 * np.cos(4 * y)
                out = np.concatenate([out, y[keep]])
            return out[:n]

        def pdf(y: np.ndarray) -> np.ndarray:
            y = np.asarray(y, dtype=np.float64)
            return scipy.stats.norm.pdf(y / 1.5) * (1 + 0.9 * np.cos(4 * y)) / norm

        return sample, pdf
    raise ValueError(f"name must be one of 'A', 'B', 'C', got {name!r}")
