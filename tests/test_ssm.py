"""Unit and property tests of kexue_lite.ssm (HiPPO matrices, discretisation, S4 kernel).

Expected values come from closed forms written out here independently (the article's and the
papers' formulas), from a second algorithm, or from exact integration — never from the code
under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from kexue_lite import ssm

torch.set_num_threads(1)
PROPS = settings(max_examples=25, deadline=None, derandomize=True)
RNG = np.random.default_rng(1234)


def u_smooth(t):
    return np.sin(3 * t) + 0.5 * np.cos(5 * t)


# ----------------------------------------------------------------------- HiPPO matrices
def legt_article(N, w):
    """The article's LegT matrices, entry by entry (eq. leg-t-hippo-1)."""
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(N):
            A[n, k] = -math.sqrt((2 * n + 1) * (2 * k + 1)) * (1 if k < n else (-1) ** (n - k)) / w
    return A, np.array([math.sqrt(2 * (2 * n + 1)) / w for n in range(N)])


def legs_article(N):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(n):
            A[n, k] = -math.sqrt((2 * n + 1) * (2 * k + 1))
        A[n, n] = -(n + 1)
    return A, np.array([math.sqrt(2 * (2 * n + 1)) for n in range(N)])


@pytest.mark.parametrize("N", [1, 2, 5, 9])
def test_legt_and_legs_match_the_articles_entries(N):
    A, B = ssm.hippo_legt(N, w=0.7)
    A0, B0 = legt_article(N, 0.7)
    np.testing.assert_allclose(A, A0, atol=1e-14)
    np.testing.assert_allclose(B, B0, atol=1e-14)
    A, B = ssm.hippo_legs(N)
    A0, B0 = legs_article(N)
    np.testing.assert_allclose(A, A0, atol=1e-14)
    np.testing.assert_allclose(B, B0, atol=1e-14)


def test_paper_and_code_conventions():
    # Reference code (hippo-code op.py / s4 hippo.py), transcribed: legt Q = arange(N), R = sqrt(2Q+1),
    # j, i = meshgrid(Q, Q); A = R[:, None] * where(i < j, (-1)^(i-j), 1) * R[None, :]; B = R; A = -A.
    N = 6
    Q = np.arange(N, dtype=float)
    R = np.sqrt(2 * Q + 1)[:, None]
    j, i = np.meshgrid(Q, Q)
    A_code = -(R * np.where(i < j, (-1.0) ** (i - j), 1) * R.T)
    A, B = ssm.hippo_legt(N, convention="paper")
    np.testing.assert_allclose(A, A_code, atol=1e-14)
    np.testing.assert_allclose(B, np.sqrt(2 * Q + 1), atol=1e-14)
    # legs: col, row = meshgrid(q, q); r = 2q+1; M = -(where(row >= col, r, 0) - diag(q));
    # T = sqrt(diag(2q+1)); A = T M T^-1; B = diag(T)
    col, row = np.meshgrid(Q, Q)
    M = -(np.where(row >= col, 2 * Q + 1, 0) - np.diag(Q))
    Tm = np.sqrt(np.diag(2 * Q + 1))
    A_code = Tm @ M @ np.linalg.inv(Tm)
    A, B = ssm.hippo_legs(N, convention="paper")
    np.testing.assert_allclose(A, A_code, atol=1e-14)
    np.testing.assert_allclose(B, np.sqrt(2 * Q + 1), atol=1e-14)


def test_lmu_and_nosqrt_conventions():
    N, w = 5, 2.0
    n = np.arange(N)[:, None]
    k = np.arange(N)[None, :]
    A, B = ssm.hippo_legt(N, w, convention="lmu")
    np.testing.assert_allclose(A, -(2 * n + 1) * np.where(k < n, 1.0, (-1.0) ** (n - k)) / w, atol=1e-13)
    np.testing.assert_allclose(B, (2 * np.arange(N) + 1) / w, atol=1e-13)
    # Voelker et al. (2019), eq. (2): A_ij = (2i+1)/theta * (-1 if i < j else (-1)^(i-j+1)), B_i = (2i+1)(-1)^i / theta
    A, B = ssm.hippo_legt(N, w, convention="lmu_code")
    np.testing.assert_allclose(A, (2 * n + 1) * np.where(n < k, -1.0, (-1.0) ** (n - k + 1)) / w, atol=1e-13)
    np.testing.assert_allclose(B, (2 * np.arange(N) + 1) * (-1.0) ** np.arange(N) / w, atol=1e-13)
    A, B = ssm.hippo_legs(N, convention="nosqrt")
    np.testing.assert_allclose(A, -(np.tril((2 * n + 1) * np.ones((1, N)), -1) + np.diag(np.arange(N) + 1.0)), atol=1e-13)
    np.testing.assert_allclose(B, 2 * np.arange(N) + 1.0, atol=1e-13)


@given(st.integers(1, 12), st.sampled_from(ssm.LEGT_CONVENTIONS))
@PROPS
def test_conventions_are_similar_systems(N, convention):
    """Every convention is D^-1 A D of the article's: same eigenvalues, and the same u(t) reconstructed."""
    A0, _ = ssm.hippo_legt(N)
    A, _ = ssm.hippo_legt(N, convention=convention)
    ev0 = np.sort_complex(np.linalg.eigvals(A0))
    ev = np.sort_complex(np.linalg.eigvals(A))
    np.testing.assert_allclose(ev, ev0, atol=1e-8 * max(1, np.abs(ev0).max()))
    c = ssm.project(u_smooth, 3.0, N, "legt", convention=convention)
    c0 = ssm.project(u_smooth, 3.0, N, "legt")
    t = np.linspace(2.0, 3.0, 7)
    np.testing.assert_allclose(ssm.reconstruct(c, t, 3.0, "legt", convention=convention),
                               ssm.reconstruct(c0, t, 3.0, "legt"), atol=1e-12)


def test_legs_eigenvalues_and_steady_state():
    A, B = ssm.hippo_legs(8)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), -np.arange(8, 0, -1.0), atol=1e-12)
    np.testing.assert_allclose(-np.linalg.solve(A, B), [math.sqrt(2)] + [0] * 7, atol=1e-12)


def test_legendre_g_is_orthonormal():
    s, w = np.polynomial.legendre.leggauss(40)
    G = np.stack([ssm.legendre_g(n, s) for n in range(12)])
    np.testing.assert_allclose((G * w) @ G.T, np.eye(12), atol=1e-13)
    assert ssm.legendre_g(3, 1.0) == pytest.approx(math.sqrt(3.5))


def test_fourier_matrices():
    A, B = ssm.hippo_fourier_window(2, w=2.0)
    n = np.arange(-2, 3)
    np.testing.assert_allclose(np.diag(A), (2j * np.pi * n - 1) / 2)
    assert A[0, 1] == -0.5 and np.all(B == 0.5)
    A, B, n = ssm.hippo_fourier_legs(3)
    assert list(n) == list(range(-3, 4)) and np.all(B == 1)
    i, k = 1, 5  # n = -2, k = 2
    assert A[i, k] == pytest.approx(-(-2) / (-2 - 2))
    np.testing.assert_allclose(np.diag(A), 1j * np.pi * n - 1)


# ---------------------------------------------------------- projections and the ODEs
def test_projection_of_a_polynomial_is_exact_and_reconstructs_it():
    u = lambda t: 1 - 2 * t + t**3  # noqa: E731  degree 3: four coefficients reconstruct it
    c = ssm.project(u, 2.0, 4)
    t = np.linspace(0, 2, 11)
    np.testing.assert_allclose(ssm.reconstruct(c, t, 2.0), u(t), atol=1e-12)
    # c_0 = int u((s+1)T/2) g_0(s) ds = (1/sqrt 2) * (2/T) int_0^T u(t) dt
    assert c[0] == pytest.approx((2 - 4 + 4) / math.sqrt(2), abs=1e-12)
    c_paper = ssm.project(u, 2.0, 4, convention="paper")
    np.testing.assert_allclose(c_paper, c / math.sqrt(2), atol=1e-14)


def test_fourier_projection_against_the_midpoint_rule():
    T, N = 2.5, 6
    s = (np.arange(200_000) + 0.5) / 200_000
    n = np.arange(-N, N + 1)
    mid = np.exp(-2j * np.pi * np.outer(n, s)) @ u_smooth(s * T) / s.size
    np.testing.assert_allclose(ssm.project(u_smooth, T, N, "fourier_legs"), mid, atol=1e-9)
    rec = ssm.reconstruct(ssm.project(u_smooth, T, 40, "fourier_legs"), np.array([T / 2]), T, "fourier_legs")
    assert abs(rec[0] - u_smooth(T / 2)) < 0.05  # a Fourier series of a non-periodic function converges slowly


def test_legs_ode_tracks_the_exact_projection():
    N = 10
    A, B = ssm.hippo_legs(N)
    sol = solve_ivp(lambda t, x: (A @ x + B * u_smooth(t)) / t, (1e-3, 2.0), ssm.project(u_smooth, 1e-3, N),
                    method="DOP853", rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sol.y[:, -1], ssm.project(u_smooth, 2.0, N), atol=1e-9)


def test_legt_ode_error_falls_with_N():
    errs = []
    for N in (4, 8, 16):
        A, B = ssm.hippo_legt(N)
        sol = solve_ivp(lambda t, x: A @ x + B * u_smooth(t), (1.0, 6.0), ssm.project(u_smooth, 1.0, N, "legt"),
                        method="DOP853", rtol=1e-12, atol=1e-13)
        errs.append(np.abs(sol.y[:, -1] - ssm.project(u_smooth, 6.0, N, "legt")).max())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-9, errs


# -------------------------------------------------------------------- discretisation
@given(st.integers(1, 6), st.floats(0.01, 0.5))
@PROPS
def test_zoh_is_the_exact_solution_for_held_input(N, dt):
    A, B = ssm.hippo_legt(N)
    Ab, Bb = ssm.discretize(A, B, dt, "zoh")
    np.testing.assert_allclose(Ab, scipy.linalg.expm(dt * A), atol=1e-11)
    np.testing.assert_allclose(Bb, np.linalg.solve(A, (scipy.linalg.expm(dt * A) - np.eye(N)) @ B), atol=1e-9)


@given(st.floats(0.0, 1.0), st.floats(0.01, 0.3))
@PROPS
def test_gbt_reduces_to_the_named_rules(alpha, dt):
    A, B = ssm.hippo_legt(4)
    Ab, Bb = ssm.discretize(A, B, dt, "gbt", alpha=alpha)
    # (I - (1-alpha) dt A) Ab = I + alpha dt A, and the same left factor on Bb
    lhs = np.eye(4) - (1 - alpha) * dt * A
    np.testing.assert_allclose(lhs @ Ab, np.eye(4) + alpha * dt * A, atol=1e-12)
    np.testing.assert_allclose(lhs @ Bb, dt * B, atol=1e-12)
    for method, a in (("forward", 1.0), ("backward", 0.0), ("bilinear", 0.5)):
        np.testing.assert_allclose(ssm.discretize(A, B, dt, method)[0], ssm.discretize(A, B, dt, "gbt", alpha=a)[0], atol=1e-12)


def test_orders_of_accuracy():
    """Final-state error against the exact (ZOH) recursion: slope 1, 1, 2 in log-log."""
    A, B = ssm.hippo_legt(4)
    errs = {m: [] for m in ("forward", "backward", "bilinear")}
    eps = [0.02, 0.01, 0.005]
    for e in eps:
        u = u_smooth(np.arange(int(round(2 / e))) * e)
        ref = _states(*ssm.discretize(A, B, e, "zoh"), u)
        for m in errs:
            errs[m].append(np.abs(_states(*ssm.discretize(A, B, e, m), u) - ref).max())
    for m, want in (("forward", 1), ("backward", 1), ("bilinear", 2)):
        slope = np.polyfit(np.log(eps), np.log(errs[m]), 1)[0]
        assert abs(slope - want) < 0.15, (m, slope)


def _states(Ab, Bb, u):
    x = np.zeros(Ab.shape[0])
    for uk in u:
        x = Ab @ x + Bb * uk
    return x


def test_discretize_accepts_complex_and_matrix_input():
    A, B = ssm.hippo_fourier_window(3)
    Ab, Bb = ssm.discretize(A, B, 0.01, "zoh")
    assert Ab.dtype == complex and Bb.shape == (7,)
    A, _ = ssm.hippo_legt(3)
    Ab, Bb = ssm.discretize(A, np.eye(3), 0.1, "bilinear")
    assert Bb.shape == (3, 3)


def test_legs_step_is_step_size_free_and_exact_matches_the_ode():
    A, B = ssm.hippo_legs(6)
    u = np.sin(0.3 * np.arange(30)) + 0.2
    X = ssm.legs_run(u, A, B, "exact")
    # exact: the ODE in t with u_k held on [k, k+1), integrated from x_1 to t = 30
    x = X[0]
    for k in range(1, 30):
        x = solve_ivp(lambda t, x: (A @ x + B * u[k]) / t, (k, k + 1), x, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
    np.testing.assert_allclose(X[-1], x, atol=1e-9)
    Xb = ssm.legs_run(u, A, B)
    Xf = ssm.legs_run(u, A, B, "forward")
    assert np.abs(Xb[-1] - X[-1]).max() < np.abs(Xf[-1] - X[-1]).max()
    # A constant input keeps the exact state (sqrt 2, 0, ...) under the exact rule; the article's
    # bilinear rule (input integral taken as eps/t) drifts from it, less and less as k grows.
    const = [math.sqrt(2)] + [0] * 5
    np.testing.assert_allclose(ssm.legs_run(np.ones(50), A, B, "exact")[-1], const, atol=1e-12)
    drift = np.abs(ssm.legs_run(np.ones(400), A, B) - const).max(axis=1)
    assert drift[10] > drift[100] > drift[399] > 0


def test_run_recurrence_against_a_hand_loop_and_the_convolution():
    N, L = 5, 40
    A, B = ssm.hippo_legs(N, "paper")
    Ab, Bb = ssm.discretize(A, B, 0.1)
    C = RNG.normal(size=N)
    u = RNG.normal(size=L)
    y = ssm.run_recurrence(Ab, Bb, C, u)
    direct = [sum(C @ np.linalg.matrix_power(Ab, j) @ Bb * u[k - j] for j in range(k + 1)) for k in range(L)]
    np.testing.assert_allclose(y, direct, atol=1e-12)
    np.testing.assert_allclose(ssm.causal_conv(ssm.kernel_loop(Ab, Bb, C, L), u), y, atol=1e-12)
    x0 = RNG.normal(size=N)
    y0 = ssm.run_recurrence(Ab, Bb, C, np.zeros(L), x0=x0)
    np.testing.assert_allclose(y0[3], C @ np.linalg.matrix_power(Ab, 4) @ x0, atol=1e-12)


@given(st.integers(1, 300), st.floats(0.0, 3.0))
@PROPS
def test_legs_fast_operations_match_dense(d, lam):
    A, _ = ssm.hippo_legs(d)
    v = np.random.default_rng(d).normal(size=(2, d))
    np.testing.assert_allclose(ssm.legs_matvec(v), v @ A.T, atol=1e-10 * d)
    # lam >= 0 (the bilinear rule's eps/2): the recursion's factor |1 - lam n| / (1 + lam n + lam) is below 1
    want = np.linalg.solve(np.eye(d) - lam * A, v.T).T
    np.testing.assert_allclose(ssm.legs_solve(lam, v), want, rtol=1e-9, atol=1e-11 * np.abs(want).max())


# --------------------------------------------------------------------------- S4
@pytest.mark.parametrize("d", [1, 4, 9, 20])
def test_legs_eigvec_closed_form(d):
    A, _ = ssm.hippo_legs(d)
    for lam in range(1, d + 1):
        v = ssm.legs_eigvec(d, lam)
        np.testing.assert_allclose(-A @ v, lam * v, atol=1e-12 * max(1, np.abs(v).max()) * d)
        assert np.cumsum(np.sqrt(2 * np.arange(d) + 1) * v)[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("N", [1, 2, 7, 32])
def test_nplr_form_reconstructs_A(N):
    Lam, P, V = ssm.nplr_legs(N)
    A, _ = ssm.hippo_legs(N)
    p = V.conj().T @ P
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N), atol=1e-13)
    np.testing.assert_allclose(Lam.real, -0.5, atol=1e-15)
    np.testing.assert_allclose(V @ (np.diag(Lam) - np.outer(p, p.conj())) @ V.conj().T, A, atol=1e-12 * N)


def _s4_inputs(N, L, dt, seed=0):
    A, B = ssm.hippo_legs(N, "paper")
    Ab, Bb = ssm.discretize(A, B, dt)
    C = np.random.default_rng(seed).normal(size=N)
    Lam, P, V = ssm.nplr_legs(N)
    Vh = V.conj().T
    Ct = Vh @ ((np.eye(N) - np.linalg.matrix_power(Ab, L)).T @ C)
    return (Ab, Bb, C), (Lam, Vh @ P, Vh @ B, Ct)


@pytest.mark.parametrize("N,L,dt", [(1, 8, 0.1), (8, 64, 0.05), (64, 1024, 4 / 1024), (33, 256, 0.5)])
def test_three_kernels_agree(N, L, dt):
    (Ab, Bb, C), nplr = _s4_inputs(N, L, dt)
    K = ssm.kernel_loop(Ab, Bb, C, L)
    # the definition, power by power
    direct = [C @ np.linalg.matrix_power(Ab, k) @ Bb for k in range(min(L, 20))]
    np.testing.assert_allclose(K[:20], direct, atol=1e-12 * np.abs(K).max())
    scale = np.abs(K).max()
    np.testing.assert_allclose(ssm.kernel_doubling(Ab, Bb, C, L), K, atol=1e-12 * scale)
    np.testing.assert_allclose(ssm.kernel_s4(*nplr, dt, L), K, atol=1e-11 * scale)


def test_kernel_s4_in_torch_matches_numpy():
    _, nplr = _s4_inputs(16, 128, 0.05)
    want = ssm.kernel_s4(*nplr, 0.05, 128)
    got = ssm.kernel_s4(*(torch.from_numpy(v) for v in nplr), 0.05, 128)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, atol=1e-13)
    got32 = ssm.kernel_s4(*(torch.from_numpy(v).to(torch.complex64) for v in nplr), 0.05, 128)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, atol=1e-4 * np.abs(want).max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_kernel_s4_on_cuda():
    _, nplr = _s4_inputs(16, 128, 0.05)
    got = ssm.kernel_s4(*(torch.from_numpy(v).cuda() for v in nplr), 0.05, 128)
    np.testing.assert_allclose(got.cpu().numpy(), ssm.kernel_s4(*nplr, 0.05, 128), atol=1e-12)


def test_cauchy_against_a_double_loop():
    a, b, lam = (RNG.normal(size=5) + 1j * RNG.normal(size=5) for _ in range(3))
    g = 1j * RNG.normal(size=7) + 3
    want = [sum(np.conj(a[i]) * b[i] / (gl - lam[i]) for i in range(5)) for gl in g]
    np.testing.assert_allclose(ssm.cauchy(a, b, g, lam), want, atol=1e-13)
    batch = ssm.cauchy(np.stack([a, b]), np.stack([b, a]), g, lam)
    assert batch.shape == (2, 7)
    np.testing.assert_allclose(batch[0], want, atol=1e-13)
    got = ssm.cauchy(*(torch.from_numpy(v) for v in (a, b, g, lam)))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-13)


def test_real_arithmetic_cauchy_equals_the_complex_one():
    lam = RNG.normal(size=6) + 1j * RNG.normal(size=6)
    w = RNG.normal(size=(4, 6)) + 1j * RNG.normal(size=(4, 6))
    gamma = RNG.normal(size=9) * 10
    want = ssm.cauchy(np.conj(w), np.ones(6), 1j * gamma, lam)  # sum_i w_i / (i gamma - lam_i)
    np.testing.assert_allclose(ssm._cauchy_imaginary_axis(w, gamma, lam), want, atol=1e-13)
    got = ssm._cauchy_imaginary_axis(*(torch.from_numpy(v) for v in (w, gamma, lam)))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-13)


def test_causal_conv_has_no_wrap_around():
    K = np.zeros(8)
    K[0], K[3] = 1.0, 2.0
    u = np.zeros(8)
    u[6] = 1.0  # a circular convolution would put K[3] u[6] at index 1
    y = ssm.causal_conv(K, u)
    np.testing.assert_allclose(y, [0, 0, 0, 0, 0, 0, 1, 0], atol=1e-15)
    U = RNG.normal(size=(3, 8))
    np.testing.assert_allclose(ssm.causal_conv(K, U)[1], np.convolve(K, U[1])[:8], atol=1e-13)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: ssm.hippo_legt(0), ValueError, "N"),
        (lambda: ssm.hippo_legt(2.0), TypeError, "N"),
        (lambda: ssm.hippo_legt(3, w=0), ValueError, "w"),
        (lambda: ssm.hippo_legt(3, convention="nosqrt"), ValueError, "convention"),
        (lambda: ssm.hippo_legs(3, convention="lmu"), ValueError, "convention"),
        (lambda: ssm.legendre_g(-1, 0.0), ValueError, "n"),
        (lambda: ssm.project(u_smooth, 0.5, 4, "legt"), ValueError, "T >= w"),
        (lambda: ssm.project(u_smooth, -1.0, 4), ValueError, "T"),
        (lambda: ssm.project(3.0, 1.0, 4), TypeError, "u"),
        (lambda: ssm.project(u_smooth, 1.0, 4, kind="chebyshev"), ValueError, "kind"),
        (lambda: ssm.project(u_smooth, 1.0, 4, "fourier_legs", convention="paper"), ValueError, "convention"),
        (lambda: ssm.reconstruct(np.ones(4), np.ones(2), 1.0, "fourier_legs"), ValueError, "odd"),
        (lambda: ssm.discretize(np.eye(2), np.ones(2), 0.0), ValueError, "dt"),
        (lambda: ssm.discretize(np.eye(2), np.ones(2), 0.1, "rk4"), ValueError, "method"),
        (lambda: ssm.discretize(np.eye(2), np.ones(2), 0.1, "gbt"), ValueError, "alpha"),
        (lambda: ssm.discretize(np.eye(2), np.ones(2), 0.1, "gbt", alpha=2), ValueError, "alpha"),
        (lambda: ssm.discretize(np.eye(2), np.ones(3), 0.1), ValueError, "B"),
        (lambda: ssm.discretize([[1.0]], np.ones(1), 0.1), TypeError, "A"),
        (lambda: ssm.legs_step(np.ones(2), 1.0, 0, *ssm.hippo_legs(2)), ValueError, "k"),
        (lambda: ssm.legs_step(np.ones(3), 1.0, 1, *ssm.hippo_legs(2)), ValueError, "x"),
        (lambda: ssm.legs_solve(-1.0, np.ones(3)), ValueError, "lam"),
        (lambda: ssm.legs_matvec([1.0, 2.0]), TypeError, "v"),
        (lambda: ssm.legs_eigvec(4, 5), ValueError, "lam"),
        (lambda: ssm.legs_eigvec(4, 0), ValueError, "lam"),
        (lambda: ssm.nplr_legs(0), ValueError, "N"),
        (lambda: ssm.kernel_loop(np.eye(2), np.ones(2), np.ones(2), 0), ValueError, "L"),
        (lambda: ssm.kernel_doubling(np.eye(2), np.ones(3), np.ones(2), 4), ValueError, "Bb"),
        (lambda: ssm.kernel_s4(np.ones(2), np.ones(2), np.ones(2), np.ones(2), 0.1, 7), ValueError, "even"),
        (lambda: ssm.kernel_s4(np.ones(2), np.ones(2), np.ones(2), np.ones(2), -0.1, 8), ValueError, "dt"),
        (lambda: ssm.kernel_s4(np.ones(2), np.ones(3), np.ones(2), np.ones(2), 0.1, 8), ValueError, "P"),
        (lambda: ssm.cauchy(np.ones(2), np.ones(2), np.ones(3), np.ones(3)), ValueError, "N"),
        (lambda: ssm.causal_conv(np.ones(4), np.ones(5)), ValueError, "same L"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
