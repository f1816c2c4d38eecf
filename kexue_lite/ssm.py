"""State-space models: the HiPPO matrices, their discretisation, and the S4 convolution kernel.

Serves the three notebooks of the ``ssm`` part (kexue.fm/archives/10114, 10137, 10162; Gu et al.,
HiPPO, arXiv:2008.07669; Gu, Goel & Ré, S4, arXiv:2111.00396). numpy float64 / complex128
throughout; :func:`kernel_s4` and :func:`cauchy` also accept torch tensors (any device).

Conventions (used everywhere below)
-----------------------------------
* Indices start at ``n = 0``; states have ``N`` components ``c_0 .. c_{N-1}``.
* **Article** (Su's derivation): orthonormal Legendre ``g_n(s) = sqrt((2n+1)/2) P_n(s)`` on
  ``[-1, 1]`` with Lebesgue measure, ``c_n(T) = int_{-1}^{1} u(t_T(s)) g_n(s) ds`` where
  ``t_T(s) = (s+1) T / 2`` (LegS, whole history) or ``(s+1) w / 2 + T - w`` (LegT, window ``w``).
  LegT obeys ``x' = A x + B u``; LegS obeys ``x' = (A x + B u) / t``. The returned ``A`` is the
  *signed* matrix (stable, eigenvalues with negative real part).
* Every other convention is a rescaling ``c = D c~`` with ``D = diag(lambda_n)``:
  ``A~ = D^-1 A D``, ``B~ = D^-1 B``. ``"paper"``: ``lambda_n = sqrt(2)``, so ``A`` is unchanged and ``B``
  and the states shrink by ``sqrt(2)``. For LegS this is the HiPPO paper's Theorem 2 (its probability measure); for
  LegT it is the reference code ``transition('legt')`` of HazyResearch/hippo-code, NOT the paper, whose Theorem 1
  prints LegT in the LMU form (``"lmu_code"``); the name is kept for compatibility (hippo-linear-systems, 10114).
  ``"lmu"`` / ``"nosqrt"``: ``lambda_n = sqrt(2 / (2n+1))`` (Voelker et al.'s Legendre Memory
  Unit for LegT; the square-root-free LegS). ``"lmu_code"``: additionally ``(-1)^n``, the
  time-reversed Legendre basis of the LMU code.
* Discrete systems (S4's convention, :func:`run_recurrence`, :func:`kernel_loop`):
  ``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = C^T x_k``, ``x_{-1} = 0``, so
  ``y_k = sum_{j<=k} K_j u_{k-j}`` with ``K_j = C^T Ab^j Bb`` (no complex conjugation of ``C``;
  in a complex basis pass ``conj(C~)``).
* DFT: numpy's, ``K^_l = sum_k K_k z_l^k`` with ``z_l = exp(-2 pi i l / L)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.special
import torch

__all__ = [
    "legendre_g",
    "hippo_legt",
    "hippo_legs",
    "hippo_fourier_window",
    "hippo_fourier_legs",
    "project",
    "reconstruct",
    "discretize",
    "legs_step",
    "legs_run",
    "run_recurrence",
    "legs_matvec",
    "legs_solve",
    "legs_eigvec",
    "nplr_legs",
    "kernel_loop",
    "kernel_doubling",
    "cauchy",
    "kernel_s4",
    "causal_conv",
]

LEGT_CONVENTIONS = ("article", "paper", "lmu", "lmu_code")
LEGS_CONVENTIONS = ("article", "paper", "nosqrt")
KINDS = ("legs", "legt", "fourier_legs", "fourier_legt")


# ----------------------------------------------------------------------------- checks
def _check_order(N: object, name: str = "N", minimum: int = 1) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(N).__name__}")
    if N < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {N}")
    return int(N)


def _check_positive(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be positive and finite, got {x}")
    return float(x)


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def _square(A: object, name: str = "A") -> np.ndarray:
    if not isinstance(A, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(A).__name__}")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {A.shape}")
    return A


def _vector(v: object, name: str, n: int | None = None) -> np.ndarray:
    if not isinstance(v, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(v).__name__}")
    if v.ndim != 1 or (n is not None and v.shape[0] != n):
        want = f"({n},)" if n is not None else "one-dimensional"
        raise ValueError(f"{name} must have shape {want}, got {v.shape}")
    return v


# ------------------------------------------------------------------ HiPPO matrices (10114)
def legendre_g(n: int, s: np.ndarray | float) -> np.ndarray:
    """Orthonormal Legendre polynomial ``g_n(s) = sqrt((2n+1)/2) P_n(s)`` on ``[-1, 1]``."""
    n = _check_order(n, "n", minimum=0)
    return math.sqrt((2 * n + 1) / 2) * scipy.special.eval_legendre(n, np.asarray(s, dtype=float))


def _scales(N: int, kind: str, convention: str) -> np.ndarray:
    """``lambda_n`` with ``c_article = lambda_n * c_convention`` (module docstring)."""
    n = np.arange(N)
    if kind.startswith("fourier"):
        _check_choice(convention, "convention", ("article",))
        return np.ones(N)
    allowed = LEGS_CONVENTIONS if kind == "legs" else LEGT_CONVENTIONS
    convention = _check_choice(convention, "convention", allowed)
    if convention == "article":
        return np.ones(N)
    if convention == "paper":
        return np.full(N, math.sqrt(2))
    lam = np.sqrt(2 / (2 * n + 1))
    return lam * (-1.0) ** n if convention == "lmu_code" else lam


def _rescale(A: np.ndarray, B: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A~ = D^-1 A D``, ``B~ = D^-1 B`` with ``D = diag(lam)``."""
    return A * lam[None, :] / lam[:, None], B / lam


def hippo_legt(N: int, w: float = 1.0, convention: str = "article") -> tuple[np.ndarray, np.ndarray]:
    """HiPPO-LegT ``(A, B)`` for ``x' = A x + B u`` over the window ``[t - w, t]``.

    Article: ``A_nk = -(1/w) sqrt((2n+1)(2k+1)) * (1 if k < n else (-1)^(n-k))``,
    ``B_n = sqrt(2(2n+1)) / w``; other conventions by rescaling (module docstring).
    """
    N = _check_order(N)
    w = _check_positive(w, "w")
    lam = _scales(N, "legt", convention)
    n = np.arange(N)
    r = np.sqrt(2 * n + 1)
    sign = np.where(n[None, :] < n[:, None], 1.0, (-1.0) ** (n[:, None] - n[None, :]))
    A = -np.outer(r, r) * sign / w
    B = np.sqrt(2 * (2 * n + 1)) / w
    return _rescale(A, B, lam)


def hippo_legs(N: int, convention: str = "article") -> tuple[np.ndarray, np.ndarray]:
    """HiPPO-LegS ``(A, B)``; the ODE is ``x' = (A x + B u) / t`` (only the matrices are returned).

    Article: ``A_nk = -sqrt((2n+1)(2k+1))`` (k < n), ``-(n+1)`` (k = n), ``0`` (k > n);
    ``B_n = sqrt(2(2n+1))``. ``"paper"``: same ``A``, ``B_n = sqrt(2n+1)`` (what S4 uses).
    """
    N = _check_order(N)
    lam = _scales(N, "legs", convention)
    n = np.arange(N)
    r = np.sqrt(2 * n + 1)
    A = -np.tril(np.outer(r, r), -1) - np.diag(n + 1.0)
    B = np.sqrt(2 * (2 * n + 1))
    return _rescale(A, B, lam)


def hippo_fourier_window(N: int, w: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Fourier basis on a sliding window (10114): complex ``(A, B)`` of size ``2N+1``, modes ``n = -N..N``.

    ``A_nn = (2 pi i n - 1) / w``, ``A_nk = -1 / w`` (k != n), ``B_n = 1 / w``: the article's system, which
    replaces ``u(T - w)`` by the truncated series at the window's start. It does NOT converge as ``N`` grows: at that
    jump the partial sums tend to the average ``(u(T) + u(T - w)) / 2`` (Dirichlet), so the error stays near 0.18 in
    the notebook's test (hippo-linear-systems shows it, and the variant ``u(T - w) ~ 2 sum c_k - u(T)`` that converges).
    """
    N = _check_order(N, minimum=0)
    w = _check_positive(w, "w")
    n = np.arange(-N, N + 1)
    A = np.full((2 * N + 1, 2 * N + 1), -1.0 / w, dtype=complex) + np.diag(2j * np.pi * n / w)
    return A, np.full(2 * N + 1, 1.0 / w, dtype=complex)


def hippo_fourier_legs(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourier analogue of LegS (10137): complex ``(A, B, n)``, modes ``n = -N..N``, ODE ``x' = (A x + B u) / t``.

    ``A_nk = -n / (n - k)`` (k != n), ``A_nn = i pi n - 1``, ``B_n = 1``; exact only with infinitely
    many modes (it expands ``s`` on ``[0, 1]`` in a Fourier series).
    """
    N = _check_order(N, minimum=0)
    n = np.arange(-N, N + 1)
    diff = n[:, None] - n[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(diff != 0, -n[:, None] / np.where(diff == 0, 1, diff), 0.0).astype(complex)
    A[np.diag_indices_from(A)] = 1j * np.pi * n - 1
    return A, np.ones(2 * N + 1, dtype=complex), n


# --------------------------------------------------------- exact coefficients by quadrature
def _window(T: float, kind: str, w: float) -> tuple[float, float]:
    """The interval ``[t0, t1]`` that the basis covers at time ``T``."""
    if kind in ("legs", "fourier_legs"):
        return 0.0, T
    if T < w:
        raise ValueError(f"a sliding window needs T >= w, got T = {T} < w = {w}")
    return T - w, T


def project(
    u: Callable[[np.ndarray], np.ndarray],
    T: float,
    N: int,
    kind: str = "legs",
    w: float = 1.0,
    convention: str = "article",
    n_quad: int | None = None,
) -> np.ndarray:
    """Exact coefficients ``c(T)`` of ``u`` by Gauss–Legendre quadrature with ``n_quad`` nodes.

    ``kind``: ``"legs"`` / ``"legt"`` (N Legendre coefficients, module docstring; real), or
    ``"fourier_legs"`` / ``"fourier_legt"`` (complex ``c_n = int_0^1 u(t_T(s)) exp(-2 pi i n s) ds``
    for ``n = -N..N``, with ``t_T(s) = s T`` or ``s w + T - w``). ``n_quad`` defaults to
    ``max(200, 4 N + 64)``.
    """
    if not callable(u):
        raise TypeError("u must be callable as u(t) on an array of times")
    kind = _check_choice(kind, "kind", KINDS)
    T = _check_positive(T, "T")
    w = _check_positive(w, "w")
    fourier = kind.startswith("fourier")
    N = _check_order(N, minimum=0 if fourier else 1)
    n_quad = max(200, 4 * N + 64) if n_quad is None else _check_order(n_quad, "n_quad")
    t0, t1 = _window(T, kind, w)
    s, weights = np.polynomial.legendre.leggauss(n_quad)
    values = np.asarray(u(t0 + (s + 1) * (t1 - t0) / 2), dtype=float)
    if values.shape != s.shape:
        raise ValueError(f"u must return one value per time, got shape {values.shape}")
    if fourier:
        _scales(1, kind, convention)  # Fourier coefficients have one convention
        n = np.arange(-N, N + 1)
        basis = np.exp(-2j * np.pi * np.outer(n, (s + 1) / 2))
        return basis @ (weights * values) / 2
    basis = np.stack([legendre_g(n, s) for n in range(N)])
    return basis @ (weights * values) / _scales(N, kind, convention)


def reconstruct(
    c: np.ndarray, t: np.ndarray, T: float, kind: str = "legs", w: float = 1.0, convention: str = "article"
) -> np.ndarray:
    """The truncated expansion ``u(t) ~ sum_n lambda_n c_n g_n(s(t))`` on the basis's window at time ``T``.

    Fourier kinds return the complex series ``sum_n c_n exp(2 pi i n s(t))``.
    """
    kind = _check_choice(kind, "kind", KINDS)
    T = _check_positive(T, "T")
    w = _check_positive(w, "w")
    c = _vector(np.asarray(c), "c")
    t0, t1 = _window(T, kind, w)
    t = np.asarray(t, dtype=float)
    if kind.startswith("fourier"):
        if c.shape[0] % 2 != 1:
            raise ValueError(f"Fourier coefficients come for n = -N..N (odd length), got {c.shape[0]}")
        N = c.shape[0] // 2
        s01 = (t - t0) / (t1 - t0)
        return np.exp(2j * np.pi * np.multiply.outer(s01, np.arange(-N, N + 1))) @ c
    N = c.shape[0]
    s = 2 * (t - t0) / (t1 - t0) - 1
    lam = _scales(N, kind, convention)
    return sum(lam[n] * c[n] * legendre_g(n, s) for n in range(N))


# ------------------------------------------------------------- discretisation (10137)
def discretize(
    A: np.ndarray, B: np.ndarray, dt: float, method: str = "bilinear", alpha: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(Ab, Bb)`` with ``x_{k+1} = Ab x_k + Bb u_k`` for ``x' = A x + B u`` and input held on each step.

    Generalised bilinear transform (GBT): ``int x ~ dt (alpha x_k + (1-alpha) x_{k+1})`` gives
    ``Ab = (I - (1-alpha) dt A)^-1 (I + alpha dt A)``, ``Bb = (I - (1-alpha) dt A)^-1 dt B``;
    ``"forward"`` is ``alpha = 1``, ``"backward"`` ``alpha = 0``, ``"bilinear"`` ``alpha = 1/2``.
    ``"zoh"`` is exact for piecewise-constant input: ``Ab = exp(dt A)``,
    ``Bb = A^-1 (exp(dt A) - I) B``, computed as the block exponential of ``dt [[A, B], [0, 0]]``
    (no inverse of ``A``). ``B`` may be ``(N,)`` or ``(N, m)``; complex input is allowed.
    """
    A = _square(A)
    if not isinstance(B, np.ndarray):
        raise TypeError(f"B must be a numpy array, got {type(B).__name__}")
    if B.ndim not in (1, 2) or B.shape[0] != A.shape[0]:
        raise ValueError(f"B must have shape ({A.shape[0]},) or ({A.shape[0]}, m), got {B.shape}")
    dt = _check_positive(dt, "dt")
    method = _check_choice(method, "method", ("forward", "backward", "bilinear", "zoh", "gbt"))
    N = A.shape[0]
    if method == "zoh":
        B2 = B.reshape(N, -1)
        m = B2.shape[1]
        block = np.zeros((N + m, N + m), dtype=np.result_type(A, B, float))
        block[:N, :N], block[:N, N:] = A, B2
        E = scipy.linalg.expm(dt * block)
        return E[:N, :N], E[:N, N:].reshape(B.shape)
    if method == "gbt":
        if alpha is None:
            raise ValueError("method='gbt' needs alpha in [0, 1]")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    elif alpha is not None:
        raise ValueError(f"alpha is only used with method='gbt', got alpha={alpha} with method={method!r}")
    else:
        alpha = {"forward": 1.0, "backward": 0.0, "bilinear": 0.5}[method]
    eye = np.eye(N)
    lhs = eye - (1 - alpha) * dt * A
    if alpha == 1:
        return eye + dt * A, dt * B
    return np.linalg.solve(lhs, eye + alpha * dt * A), np.linalg.solve(lhs, dt * B)


def legs_step(x: np.ndarray, u_k: float, k: int, A: np.ndarray, B: np.ndarray, method: str = "bilinear") -> np.ndarray:
    """One step of the LegS ODE ``x' = (A x + B u)/t`` from ``t = k`` to ``k + 1`` (the step size cancels).

    ``"bilinear"``: ``x_{k+1} = (I - A/(2(k+1)))^-1 [(I + A/(2k)) x_k + B u_k / k]`` (the article's
    rule: the trapezoidal rule for ``int x/s`` (the article calls it a midpoint approximation), ``eps/t`` for
    ``int 1/s``). ``"forward"``:
    ``x_k + (A x_k + B u_k)/k``. ``"exact"``: zero-order hold in ``tau = ln t`` over
    ``ln((k+1)/k)``, exact for input held constant on ``[k, k+1)``.
    """
    A = _square(A)
    x = _vector(x, "x", A.shape[0])
    B = _vector(B, "B", A.shape[0])
    k = _check_order(k, "k", minimum=1)
    method = _check_choice(method, "method", ("bilinear", "forward", "exact"))
    if method == "forward":
        return x + (A @ x + B * u_k) / k
    if method == "exact":
        Ab, Bb = discretize(A, B, math.log1p(1 / k), "zoh")
        return Ab @ x + Bb * u_k
    eye = np.eye(A.shape[0])
    return np.linalg.solve(eye - A / (2 * (k + 1)), x + A @ x / (2 * k) + B * u_k / k)


def legs_run(u: np.ndarray, A: np.ndarray, B: np.ndarray, method: str = "bilinear", x1: np.ndarray | None = None) -> np.ndarray:
    """States ``x_1 .. x_K`` of the LegS recursion driven by ``u_0 .. u_{K-1}`` (row ``k-1`` holds ``x_k``).

    ``u_k`` is held on ``[k, k+1)`` and ``x_{k+1} = legs_step(x_k, u_k, k)``; the default start ``x_1 = -A^-1 B u_0`` is the exact
    state for a constant first sample (``(sqrt 2 u_0, 0, ...)`` in the article's convention).
    """
    A = _square(A)
    B = _vector(B, "B", A.shape[0])
    u = _vector(np.asarray(u, dtype=float), "u")
    if u.shape[0] == 0:
        raise ValueError("u must hold at least one sample")
    N = A.shape[0]
    X = np.empty((u.shape[0], N), dtype=np.result_type(A, B, float))
    X[0] = -np.linalg.solve(A, B) * u[0] if x1 is None else _vector(x1, "x1", N)
    for k in range(1, u.shape[0]):  # the step from t = k to k + 1 sees u_k (input held on [k, k+1))
        X[k] = legs_step(X[k - 1], u[k], k, A, B, method)
    return X


def run_recurrence(Ab: np.ndarray, Bb: np.ndarray, C: np.ndarray, u: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
    """Outputs ``y_0 .. y_{L-1}`` of ``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = C^T x_k`` (S4's convention).

    ``x_{-1} = x0`` (default 0). Sequential, ``O(L N^2)``: the reference the kernels are tested against.
    """
    Ab = _square(Ab, "Ab")
    N = Ab.shape[0]
    Bb, C = _vector(Bb, "Bb", N), _vector(C, "C", N)
    u = _vector(np.asarray(u), "u")
    x = np.zeros(N, dtype=np.result_type(Ab, Bb, u)) if x0 is None else _vector(x0, "x0", N).astype(np.result_type(Ab, Bb, u, x0))
    y = np.empty(u.shape[0], dtype=np.result_type(x, C))
    for k in range(u.shape[0]):
        x = Ab @ x + Bb * u[k]
        y[k] = C @ x
    return y


# ------------------------------------------------------------------ O(d) LegS operations
def _legs_r(v: np.ndarray) -> np.ndarray:
    if not isinstance(v, np.ndarray):
        raise TypeError(f"v must be a numpy array, got {type(v).__name__}")
    if v.ndim == 0 or v.shape[-1] == 0:
        raise ValueError(f"v must have a non-empty last axis, got shape {v.shape}")
    return np.sqrt(2 * np.arange(v.shape[-1]) + 1.0)


def legs_matvec(v: np.ndarray) -> np.ndarray:
    """``A v`` for the article's LegS ``A`` in ``O(d)``: ``(A v)_n = n v_n - sqrt(2n+1) sum_{k<=n} sqrt(2k+1) v_k``.

    Acts on the last axis (a batch of vectors is fine).
    """
    r = _legs_r(v)
    return np.arange(v.shape[-1]) * v - r * np.cumsum(r * v, axis=-1)


def legs_solve(lam: float, v: np.ndarray) -> np.ndarray:
    """``(I - lam A)^-1 v`` for the article's LegS ``A`` in ``O(d)`` by the scalar recursion of 10137.

    With ``S_n = sum_{k<=n} sqrt(2k+1) z_k``: ``S_n = ((1 - lam n) S_{n-1} + sqrt(2n+1) v_n) / (1 + lam n + lam)``
    and ``z_n = (S_n - S_{n-1}) / sqrt(2n+1)``. Acts on the last axis. For ``lam >= 0`` (the bilinear
    rule's ``eps/2``) the factor ``|1 - lam n| / (1 + lam n + lam)`` is below 1, so the recursion is
    stable; ``lam < 0`` is allowed while ``1 + lam (n+1) != 0`` but can amplify rounding.
    """
    r = _legs_r(v)
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not math.isfinite(lam):
        raise TypeError(f"lam must be a finite real number, got {lam!r}")
    d = v.shape[-1]
    if any(1 + lam * (n + 1) == 0 for n in range(d)):
        raise ValueError(f"I - lam A is singular for lam = {lam}")
    S = np.empty(v.shape, dtype=np.result_type(v, float))
    prev = np.zeros(v.shape[:-1], dtype=S.dtype)
    for n in range(d):
        prev = ((1 - lam * n) * prev + r[n] * v[..., n]) / (1 + lam * n + lam)
        S[..., n] = prev
    return np.diff(S, axis=-1, prepend=0) / r


# ------------------------------------------------------------------------ S4 (10162)
def legs_eigvec(d: int, lam: int) -> np.ndarray:
    """Closed-form eigenvector ``v`` of ``-A`` (LegS, size ``d``) for the eigenvalue ``lam``, scaled so ``S_{d-1} = 1``.

    ``S_n = sum_{k<=n} sqrt(2k+1) v_k = (-1)^(d-n-1) (d-lam)! (n+lam)! / ((d+lam-1)! (n-lam+1)!)`` for
    ``n >= lam - 1`` (else 0), and ``v_n = (S_n - S_{n-1}) / sqrt(2n+1)``. Evaluated with log-gamma,
    so nothing overflows; entries below ``1e-308`` underflow to 0.
    """
    d = _check_order(d, "d")
    lam = _check_order(lam, "lam")
    if lam > d:
        raise ValueError(f"lam must lie in 1..d = 1..{d}, got {lam}")
    S = np.zeros(d)
    for n in range(lam - 1, d):
        log = math.lgamma(d - lam + 1) + math.lgamma(n + lam + 1) - math.lgamma(d + lam) - math.lgamma(n - lam + 2)
        S[n] = (-1.0) ** (d - n - 1) * math.exp(log)
    return np.diff(S, prepend=0.0) / np.sqrt(2 * np.arange(d) + 1.0)


def nplr_legs(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal-plus-low-rank form of the LegS ``A``: ``(Lam, P, V)`` with ``A = V (diag(Lam) - p p^*) V^*``, ``p = V^* P``.

    ``S = A + P P^T + I/2`` with ``P_n = sqrt(n + 1/2)`` is skew-symmetric, so ``i S`` is Hermitian:
    ``eigh(i S) = (w, V)`` gives a unitary ``V`` and ``Lam = -1/2 - i w`` (real part exactly -1/2).
    """
    N = _check_order(N)
    A, _ = hippo_legs(N)
    P = np.sqrt(np.arange(N) + 0.5)
    S = A + np.outer(P, P) + 0.5 * np.eye(N)
    S = (S - S.T) / 2  # exactly skew in floating point
    w, V = np.linalg.eigh(1j * S)
    return -0.5 - 1j * w, P, V


def _krylov_inputs(Ab: np.ndarray, Bb: np.ndarray, C: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    Ab = _square(Ab, "Ab")
    N = Ab.shape[0]
    return Ab, _vector(Bb, "Bb", N), _vector(C, "C", N), _check_order(L, "L")


def kernel_loop(Ab: np.ndarray, Bb: np.ndarray, C: np.ndarray, L: int) -> np.ndarray:
    """``K_k = C^T Ab^k Bb`` for ``k < L`` by ``L`` matrix-vector products, ``O(L N^2)``."""
    Ab, x, C, L = _krylov_inputs(Ab, Bb, C, L)
    K = np.empty(L, dtype=np.result_type(Ab, x, C))
    for k in range(L):
        K[k] = C @ x
        x = Ab @ x
    return K


def kernel_doubling(Ab: np.ndarray, Bb: np.ndarray, C: np.ndarray, L: int) -> np.ndarray:
    """``K_k = C^T Ab^k Bb`` for ``k < L`` by repeated squaring: ``[X, Ab^(2^j) X]`` doubles the Krylov block.

    ``O(L N^2 + N^3 log L)`` flops, but in a few large matrix products instead of ``L`` small ones.
    """
    Ab, Bb, C, L = _krylov_inputs(Ab, Bb, C, L)
    X = Bb[:, None]
    power = Ab
    while X.shape[1] < L:
        X = np.concatenate([X, power @ X], axis=1)
        if X.shape[1] < L:
            power = power @ power
    return C @ X[:, :L]


def cauchy(a, b, g, lam):
    """Cauchy sums ``k(l) = sum_i conj(a_i) b_i / (g_l - lam_i)`` for every ``l`` (naive ``O(M N)``).

    ``a`` and ``b`` have shape ``(..., N)`` (a batch of pairs shares one ``(M, N)`` table of
    ``1/(g_l - lam_i)``), ``g`` ``(M,)``, ``lam`` ``(N,)``; returns ``(..., M)``. numpy or torch.
    """
    if isinstance(g, torch.Tensor):
        table = 1 / (g[:, None] - lam[None, :])
        return (torch.conj(a) * b) @ table.transpose(0, 1)
    a, b, g, lam = (np.asarray(v) for v in (a, b, g, lam))
    if g.ndim != 1 or lam.ndim != 1:
        raise ValueError(f"g and lam must be one-dimensional, got shapes {g.shape} and {lam.shape}")
    if a.shape[-1] != lam.shape[0] or b.shape[-1] != lam.shape[0]:
        raise ValueError(f"a and b must end in N = {lam.shape[0]} (the size of lam), got {a.shape} and {b.shape}")
    table = 1 / (g[:, None] - lam[None, :])
    return (np.conj(a) * b) @ table.T


def _cauchy_imaginary_axis(w, gamma, lam):
    """``sum_i w_i / (i gamma_l - lam_i)`` for real ``gamma``, in real arithmetic (numpy or torch).

    With ``lam = a + i b`` and ``y = gamma_l - b_i``: ``1 / (i gamma - lam) = (-a - i y) / (a^2 + y^2)``,
    so one real table ``1/(a^2 + y^2)`` and two real matrix products replace the complex
    reciprocals of :func:`cauchy` (same result to rounding; on a CPU about as fast: the s4-kernel notebook's timings
    range from half to twice the complex version's, and at large ``L N`` memory traffic dominates).
    """
    a, b = lam.real, lam.imag
    y = gamma[:, None] - b[None, :]
    inv = 1 / (y * y + a * a)
    y = y * inv
    cat = torch.cat if isinstance(w, torch.Tensor) else np.concatenate
    wri = cat([w.real, w.imag])  # (2r, N)
    r = w.shape[0]
    re_part = (wri * -a) @ inv.T  # sum_i w_i (-a_i) / D
    im_part = -(wri @ y.T)  # sum_i w_i (-y) / D
    return (re_part[:r] - im_part[r:]) + 1j * (im_part[:r] + re_part[r:])


def kernel_s4(Lam, P, B, Ct, dt: float, L: int):
    """S4's kernel ``K_0 .. K_{L-1}`` from the NPLR form: generating function, Woodbury, Cauchy sums, inverse FFT.

    Inputs are in the NPLR basis of :func:`nplr_legs` (``A = diag(Lam) - P P^*``): ``P = V^* P``,
    ``B = V^* B``, ``Ct = V^* (I - Ab^L)^* C`` (or a trainable vector). At the roots of unity
    ``z_l = exp(-2 pi i l / L)``, ``l = 0..L/2``, with ``g_l = (2/dt)(1 - z_l)/(1 + z_l) = (2i/dt) tan(pi l / L)``::

        K^_l = 2/(1 + z_l) [k_CB - k_CP k_PB / (1 + k_PP)],   k_ab = sum_i conj(a_i) b_i / (g_l - Lam_i)

    (the four Cauchy sums of :func:`cauchy`, computed in real arithmetic because ``g`` is purely
    imaginary) and ``K = irfft(K^, L)``. At ``z = -1`` (``l = L/2``), ``g`` is infinite and the limit
    ``K^_{L/2} = (dt/2) Ct^* B`` is used. numpy (complex128) or torch (any device) in, the same out.

    ``irfft`` keeps only the half spectrum, so the returned kernel is always real. It is the system's kernel only if
    the weights ``conj(Ct_i) B_i`` come in conjugate pairs with ``Lam`` (as for ``Ct = V^* (I - Ab^L)^* C`` with a real
    ``C``); a free complex ``Ct`` (as S4 trains) gives a real kernel that no real readout of the system produces.
    """
    dt = _check_positive(dt, "dt")
    L = _check_order(L, "L", minimum=2)
    if L % 2:
        raise ValueError(f"L must be even (the half-spectrum path of irfft), got {L}")
    if isinstance(Lam, torch.Tensor):
        lib = torch
        theta = 2 * math.pi * torch.arange(L // 2, device=Lam.device, dtype=Lam.real.dtype) / L
    else:
        Lam, P, B, Ct = (np.asarray(v, dtype=complex) for v in (Lam, P, B, Ct))
        for name, v in (("P", P), ("B", B), ("Ct", Ct)):
            if v.shape != Lam.shape or Lam.ndim != 1:
                raise ValueError(f"{name} must have the shape of Lam {Lam.shape}, got {v.shape}")
        lib = np
        theta = 2 * math.pi * np.arange(L // 2) / L  # l = 0 .. L/2 - 1; the Nyquist bin is the limit below
    z = lib.exp(-1j * theta)
    gamma = (2 / dt) * lib.tan(theta / 2)  # g = i gamma on the unit circle
    w = lib.stack([lib.conj(Ct) * B, lib.conj(Ct) * P, lib.conj(P) * B, lib.conj(P) * P])
    k = _cauchy_imaginary_axis(w, gamma, Lam)
    K_hat = 2 / (1 + z) * (k[0] - k[1] * k[2] / (1 + k[3]))
    nyquist = (dt / 2 * (lib.conj(Ct) * B).sum()).reshape(1)
    return lib.fft.irfft(lib.cat([K_hat, nyquist]) if lib is torch else np.concatenate([K_hat, nyquist]), n=L)


def causal_conv(K: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``y_k = sum_{j<=k} K_j u_{k-j}`` by FFT, zero-padded to ``2L`` (no wrap-around), first ``L`` kept.

    ``u`` may carry leading batch axes; ``K`` and ``u``'s last axis have the same length ``L``.
    """
    K, u = np.asarray(K), np.asarray(u)
    if K.ndim != 1 or u.ndim == 0 or u.shape[-1] != K.shape[0] or K.shape[0] == 0:
        raise ValueError(f"K must be (L,) and u (..., L) with the same L, got {K.shape} and {u.shape}")
    L = K.shape[0]
    if np.iscomplexobj(K) or np.iscomplexobj(u):
        return np.fft.ifft(np.fft.fft(K, 2 * L) * np.fft.fft(u, 2 * L), axis=-1)[..., :L]
    return np.fft.irfft(np.fft.rfft(K, 2 * L) * np.fft.rfft(u, 2 * L), 2 * L, axis=-1)[..., :L]
