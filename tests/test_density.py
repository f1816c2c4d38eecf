"""Unit and property tests of kexue_lite.density (the Fourier Basis Density Model and baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kexue_lite import density, optim

torch.set_num_threads(1)

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@st.composite
def coeffs(draw, max_n: int = 12) -> np.ndarray:
    """Random complex coefficients a_0..a_N with a_0 bounded away from zero."""
    n = draw(st.integers(0, max_n))
    re = draw(arrays(np.float64, n + 1, elements=finite))
    im = draw(arrays(np.float64, n + 1, elements=finite))
    a = re + 1j * im
    a[0] += 0.5 + abs(a[0])  # c_0 = sum |a_k|^2 > 0
    return a


def direct_autocorr(a: np.ndarray) -> np.ndarray:
    n1 = len(a)
    return np.array([np.sum(a[: n1 - n] * np.conj(a[n:])) for n in range(n1)])


GRID = np.linspace(-1, 1, 20_001)
PROPS = settings(max_examples=40, deadline=None, derandomize=True)


# ---------------------------------------------------------------- construction
@PROPS
@given(coeffs())
def test_autocorr_matches_direct_sum_numpy_and_torch(a):
    want = direct_autocorr(a)
    assert np.allclose(density.fourier_autocorr(a), want, atol=1e-10 * np.abs(a).max() ** 2)
    got_t = density.fourier_autocorr(torch.tensor(a))
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.complex128
    assert np.allclose(got_t.numpy(), want, atol=1e-10 * np.abs(a).max() ** 2)


@PROPS
@given(coeffs())
def test_density_is_nonnegative_normalised_and_equals_series(a):
    p = density.fourier_pdf(a, GRID)
    assert p.min() >= 0.0
    # the trapezoid rule integrates trigonometric polynomials exactly over a full period
    assert np.trapezoid(p, GRID) == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(p, density.fourier_pdf(a, GRID, form="series"), atol=1e-9 * p.max())


@PROPS
@given(coeffs())
def test_cdf_monotone_from_zero_to_one_and_differentiates_to_pdf(a):
    Phi = density.fourier_cdf(a, GRID)
    assert Phi[0] == pytest.approx(0.0, abs=1e-12)
    assert Phi[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(Phi) >= -1e-12)
    p = density.fourier_pdf(a, GRID)
    trap = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(GRID))])
    assert np.allclose(Phi, trap, atol=1e-6 * max(1.0, p.max()))


@PROPS
@given(coeffs(), st.floats(0.1, 10), st.floats(0, 2 * math.pi))
def test_penalty_is_scale_and_phase_invariant(a, lam, phi):
    base = density.fourier_penalty(a)
    assert base >= 0
    assert density.fourier_penalty(lam * np.exp(1j * phi) * a) == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_penalty_equals_integral_of_squared_derivative():
    a = np.random.default_rng(1).normal(size=6) + 1j * np.random.default_rng(2).normal(size=6)
    x = np.linspace(-1, 1, 400_001)
    p = density.fourier_pdf(a, x)
    dp = np.gradient(p, x)
    assert np.trapezoid(dp**2, x) == pytest.approx(density.fourier_penalty(a), rel=1e-6)


@PROPS
@given(coeffs(max_n=8))
def test_spectral_factor_recovers_c_with_minimum_phase(a):
    c = density.fourier_autocorr(a)
    b = density.spectral_factor(c)
    assert np.allclose(density.fourier_autocorr(b), c, atol=1e-7 * c[0].real)
    nz = np.flatnonzero(np.abs(b) > 1e-12 * np.abs(b).max())
    roots = np.roots(b[: nz[-1] + 1][::-1])
    assert np.all(np.abs(roots) >= 1 - 1e-6)  # no root inside the unit disk


def test_nonidentifiability_phase_and_conjugate_reversal():
    a = np.array([1 + 2j, -0.5j, 0.3 + 0.1j, 2.0])
    c = density.fourier_autocorr(a)
    assert np.allclose(density.fourier_autocorr(np.exp(0.3j) * a), c)
    assert np.allclose(density.fourier_autocorr(np.conj(a[::-1])), c)


def test_autograd_through_autocorr_and_pdf():
    a = torch.tensor([1.0 + 0.2j, 0.3 - 0.1j, -0.2 + 0.4j], dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: density.fourier_autocorr(z).abs().sum(), (a,))
    x = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: density.fourier_pdf(z, x), (a,))
    assert torch.autograd.gradcheck(lambda z: density.fourier_cdf(z, x), (a,))


def test_float32_inputs_stay_float32():
    a = torch.tensor([1.0 + 0j, 0.2 + 0.1j], dtype=torch.complex64)
    p = density.fourier_pdf(a, torch.linspace(-1, 1, 5))
    assert p.dtype == torch.float32 and torch.all(p >= 0)


# ---------------------------------------------------------------- sampling
@settings(max_examples=8, deadline=None, derandomize=True)
@given(coeffs(max_n=10), st.integers(0, 2**31 - 1))
def test_samples_follow_the_cdf(a, seed):
    x = density.fourier_sample(a, 4000, seed=seed)
    assert x.min() >= -1 and x.max() <= 1
    assert scipy.stats.kstest(x, lambda z: density.fourier_cdf(a, np.clip(z, -1, 1))).pvalue > 1e-4


def test_sampling_is_deterministic_under_a_seed():
    a = np.array([1.0, 0.5j, 0.2])
    assert np.array_equal(density.fourier_sample(a, 50, seed=3), density.fourier_sample(a, 50, seed=3))
    assert density.fourier_sample(a, 0).shape == (0,)


# ---------------------------------------------------------------- the model and its fit
def test_model_density_on_the_line_normalised_and_cdf_consistent():
    m = density.FourierDensity(4, loc=0.5, scale=2.0)
    with torch.no_grad():
        m.a.copy_(torch.tensor([1.0, 0.3 + 0.2j, -0.2j, 0.1, 0.05 + 0.05j], dtype=torch.complex128))
    y = np.linspace(-60, 60, 400_001)
    q = m.prob(y).detach().numpy()
    assert np.all(q >= 0) and np.trapezoid(q, y) == pytest.approx(1.0, abs=1e-6)
    Q = m.cdf(y).detach().numpy()
    trap = np.concatenate([[0.0], np.cumsum((q[1:] + q[:-1]) / 2 * np.diff(y))])
    assert np.allclose(Q, trap, atol=1e-6)
    draws = m.sample(4000, seed=0)
    assert scipy.stats.kstest(draws, lambda z: m.cdf(z).detach().numpy()).pvalue > 1e-4


def test_float32_model_matches_float64():
    a = torch.tensor([1.0, 0.3 + 0.2j, -0.2j], dtype=torch.complex128)
    models = [density.FourierDensity(2, loc=0.2, scale=1.5, dtype=dt) for dt in (torch.float32, torch.float64)]
    for m in models:
        with torch.no_grad():
            m.a.copy_(a.to(m.a.dtype))
    y = np.linspace(-20, 20, 101)
    lp32, lp64 = (m.log_prob(y) for m in models)
    assert lp32.dtype == torch.float32 and torch.allclose(lp32.double(), lp64, atol=1e-4)
    assert torch.allclose(models[0].cdf(y).double(), models[1].cdf(y), atol=1e-5)


def test_log_prob_is_finite_far_in_the_tails():
    m = density.FourierDensity(3)
    lp = m.log_prob(torch.tensor([-1e6, -50.0, 0.0, 50.0, 1e6], dtype=torch.float64))
    assert torch.all(torch.isfinite(lp) | (lp == -math.inf))
    assert torch.isfinite(lp[1:4]).all()


def test_unmapped_model_is_the_bare_series():
    m = density.FourierDensity(2, mapped=False)
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    assert torch.allclose(m.prob(x), torch.full_like(x, 0.5))  # a = (1, 0, 0): uniform on [-1, 1]
    with pytest.raises(ValueError, match="x must lie in"):
        m.log_prob(torch.tensor([1.5]))


def test_fit_improves_likelihood_and_keeps_mass_one():
    sample, truth = density.targets("C")
    x = sample(800, np.random.default_rng(0))
    nll = [-density.fit_fourier_density(x, N=6, steps=s, seed=0).log_prob(x).mean().item() for s in (0, 20, 200)]
    assert nll[2] < nll[1] < nll[0]
    grid = np.linspace(-8, 8, 16_001)
    q = density.fit_fourier_density(x, N=6, steps=100).prob(grid).detach().numpy()
    assert np.trapezoid(q, grid) == pytest.approx(1.0, abs=1e-3)
    assert density.kl_on_grid(truth(grid), q, grid) < 0.5


def test_batched_fit_equals_separate_fits_and_warm_start_pads():
    sample, _ = density.targets("A")
    xs = [sample(300, np.random.default_rng(s)) for s in range(2)]
    batch = density.fit_fourier_densities(xs, N=5, steps=50, gamma=[0.0, 1e-3], seed=[3, 4])
    for x, g, s, m in zip(xs, [0.0, 1e-3], [3, 4], batch):
        single = density.fit_fourier_density(x, N=5, steps=50, gamma=g, seed=s)
        assert torch.allclose(single.a, m.a, atol=1e-9)
        assert torch.allclose(single.log_scale, m.log_scale, atol=1e-9)
    grown = density.fit_fourier_density(xs[0], N=8, steps=0, init=batch[0])
    assert torch.equal(grown.a[:6], batch[0].a) and torch.all(grown.a[6:] == 0)


def test_batched_fit_with_mixed_orders_equals_separate_fits():
    sample, _ = density.targets("C")
    xs = [sample(300, np.random.default_rng(s)) for s in range(3)]
    Ns, gammas = [2, 7, 4], [0.0, 1e-3, 1e-2]
    batch = density.fit_fourier_densities(xs, N=Ns, steps=60, gamma=gammas, seed=[0, 1, 2])
    for x, n, g, s, m in zip(xs, Ns, gammas, [0, 1, 2], batch):
        single = density.fit_fourier_density(x, N=n, steps=60, gamma=g, seed=s)
        assert m.N == n and m.a.shape == (n + 1,)
        assert torch.allclose(single.a, m.a, atol=1e-10) and torch.allclose(single.loc, m.loc, atol=1e-10)


def test_log_sech2_is_exact_past_softplus_threshold():
    """log sech^2 t = log 4 - 2|t| - 2 log1p(e^{-2|t|}); torch's default softplus threshold lost 4e-9 just below t = -10."""
    t = np.linspace(-40, 40, 8001)
    exact = np.log(4) - 2 * np.abs(t) - 2 * np.log1p(np.exp(-2 * np.abs(t)))
    got = density._log_sech2(torch.tensor(t)).numpy()
    assert np.abs(got - exact).max() < 1e-13 * (1 + np.abs(exact)).max()


@pytest.mark.parametrize("N", [0, 1, 7, 30])
def test_written_out_gradients_equal_autograd(N):
    """_nll_and_grads (the fits' likelihood gradients) against autograd through _log_prob, in torch's complex
    convention (dL/dRe a + i dL/dIm a); loc and log_scale away from their initial values."""
    rng = np.random.default_rng(N)
    B, M = 3, 257
    y = torch.tensor(rng.normal(size=(B, M)) * 2.5 + 0.3)
    a = torch.tensor(rng.normal(size=(B, N + 1)) + 1j * rng.normal(size=(B, N + 1)), requires_grad=True)
    loc = torch.tensor(rng.normal(size=B), requires_grad=True)
    log_scale = torch.tensor(rng.normal(size=B) * 0.5, requires_grad=True)
    nll = -density._log_prob(a, loc, log_scale, y).mean(-1)
    nll.sum().backward()
    with torch.no_grad():
        mine = density._nll_and_grads(a, loc, log_scale, y)
    for ref, got in zip((nll.detach(), a.grad, loc.grad, log_scale.grad), mine):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        assert torch.allclose(got, ref, rtol=1e-11, atol=1e-12 * (1 + float(ref.abs().max())))  # N = 0: both ~1e-15


def test_fit_equals_an_autograd_reference_loop():
    """The fitted parameters equal those of the plain autograd loop (loss backward, the same Adam) to rounding."""
    sample, _ = density.targets("A")
    x = sample(400, np.random.default_rng(5))
    fit = density.fit_fourier_density(x, N=6, steps=80, gamma=1e-3, seed=2)
    start = density.fit_fourier_density(x, N=6, steps=0, seed=2)
    params = [torch.nn.Parameter(p.detach().clone()) for p in (start.a, start.loc, start.log_scale)]
    opt = optim.Adam(params, lr=0.05)
    y = torch.as_tensor(x)[None]
    for _ in range(80):
        opt.zero_grad()
        loss = -density._log_prob(params[0][None], params[1][None], params[2][None], y).mean() + 1e-3 * density.fourier_penalty(params[0])
        loss.backward()
        opt.step()
    for ref, got in zip(params, (fit.a, fit.loc, fit.log_scale)):
        assert torch.allclose(got, ref.detach(), rtol=0, atol=1e-10)


def test_fits_record_the_objective_before_each_step():
    sample, _ = density.targets("C")
    xs = [sample(300, np.random.default_rng(s)) for s in range(2)]
    fb = density.fit_fourier_densities(xs, N=[3, 5], steps=30, gamma=[0.0, 1e-3], seed=[0, 1])
    start = density.fit_fourier_densities(xs, N=[3, 5], steps=0, seed=[0, 1])
    for m, m0, x, g in zip(fb, start, xs, [0.0, 1e-3]):
        assert m.history.shape == (30,) and m0.history.shape == (0,)
        first = -m0.log_prob(x).mean().item() + g * m0.penalty().item()
        assert m.history[0] == pytest.approx(first, rel=1e-12) and m.history[-1] < m.history[0]
    dfp = density.fit_deep_factorized(np.stack(xs), filters=(2, 2), steps=20, lr=0.05)
    dfp0 = density.fit_deep_factorized(np.stack(xs), filters=(2, 2), steps=0)
    assert dfp.history.shape == (20, 2) and dfp0.history.shape == (0, 2)
    with torch.no_grad():
        first = -dfp0.log_prob(torch.as_tensor(np.stack(xs))).mean(-1).numpy()
    assert np.allclose(dfp.history[0], first, rtol=1e-12) and np.all(dfp.history[-1] < dfp.history[0])


def _deep_factorized_by_autograd(model: density.DeepFactorized, y: torch.Tensor) -> torch.Tensor:
    """The density as the derivative of the model's CDF, by autograd (independent of the carried slope)."""
    y = y.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.cdf(y).sum(), y)
    return grad


def test_deep_factorized_is_a_monotone_cdf_whose_derivative_is_the_density():
    sample, _ = density.targets("A")
    xs = np.stack([sample(400, np.random.default_rng(s)) for s in range(2)])
    model = density.fit_deep_factorized(xs, filters=(3, 3, 3), steps=150, lr=0.1)
    assert model.n_params() == 43  # 24 matrix entries, 10 biases, 9 gate factors
    grid = np.linspace(-8, 8, 16_001)
    q = model.pdf(grid)
    assert q.shape == (2, grid.size) and np.all(q >= 0)
    assert np.allclose(np.trapezoid(q, grid, axis=1), 1.0, atol=2e-3)
    y = torch.as_tensor(np.stack([grid[::40]] * 2))
    with torch.no_grad():
        cdf = model.cdf(y).numpy()
    assert np.all(np.diff(cdf, axis=1) >= 0) and np.all(cdf[:, 0] < 1e-3) and np.all(cdf[:, -1] > 1 - 1e-3)
    assert np.allclose(model.log_prob(y).exp().detach().numpy(), _deep_factorized_by_autograd(model, y).numpy(), rtol=1e-10)
    nll_start = -density.fit_deep_factorized(xs, steps=0).log_prob(torch.as_tensor(xs)).mean().item()
    assert -model.log_prob(torch.as_tensor(xs)).mean().item() < nll_start - 0.2


def test_deep_factorized_batch_trains_each_model_independently():
    sample, _ = density.targets("C")
    xs = np.stack([sample(300, np.random.default_rng(s)) for s in range(2)])
    both = density.fit_deep_factorized(xs, filters=(2, 2), steps=40, lr=0.05)
    xs2 = xs.copy()
    xs2[0] = sample(300, np.random.default_rng(9))  # change the first data set only
    other = density.fit_deep_factorized(xs2, filters=(2, 2), steps=40, lr=0.05)
    grid = np.linspace(-5, 5, 101)
    assert np.allclose(both.pdf(grid)[1], other.pdf(grid)[1], rtol=1e-12)   # the second model did not notice
    assert not np.allclose(both.pdf(grid)[0], other.pdf(grid)[0], rtol=1e-3)


# ---------------------------------------------------------------- baselines and metrics
def test_gmm_em_and_adam_recover_two_separated_components():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 0.5, 600), rng.normal(2, 1.0, 400)])
    for fit in (density.gmm_em(x, 2, seed=1), density.gmm_fit_adam(x, 2, seed=1, steps=800)):
        w, mu, sd = fit
        order = np.argsort(mu)
        assert w.sum() == pytest.approx(1.0)
        assert np.allclose(w[order], [0.6, 0.4], atol=0.05)
        assert np.allclose(mu[order], [-3, 2], atol=0.15)
        assert np.allclose(sd[order], [0.5, 1.0], atol=0.15)


def test_gmm_and_kde_densities_integrate_to_one():
    grid = np.linspace(-15, 15, 30_001)
    assert np.trapezoid(density.gmm_pdf(grid, [0.3, 0.7], [-1, 2], [0.5, 2.0]), grid) == pytest.approx(1.0, abs=1e-6)
    train = np.random.default_rng(0).normal(size=200)
    assert np.trapezoid(density.kde_pdf(train, grid), grid) == pytest.approx(1.0, abs=1e-6)
    h = 0.3
    want = scipy.stats.norm.pdf((0.1 - train) / h).mean() / h
    assert density.kde_pdf(train, np.array([0.1]), bandwidth=h)[0] == pytest.approx(want, rel=1e-10)


def test_kl_on_grid_matches_the_gaussian_closed_form():
    g = np.linspace(-20, 20, 40_001)
    p, q = scipy.stats.norm.pdf(g, 0, 1), scipy.stats.norm.pdf(g, 1, 2)
    want = math.log(2) + (1 + 1) / (2 * 4) - 0.5
    assert density.kl_on_grid(p, q, g) == pytest.approx(want, rel=1e-6)
    assert density.kl_on_grid(p, p, g) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("name", "tol"), [("A", 1e-6), ("B", 1e-4), ("C", 1e-6)])  # B has jumps
def test_targets_are_normalised_and_their_samples_follow_them(name, tol):
    sample, pdf = density.targets(name)
    grid = np.linspace(-12, 12, 240_001)
    p = pdf(grid)
    assert np.trapezoid(p, grid) == pytest.approx(1.0, abs=tol)
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(grid))])
    x = sample(5000, np.random.default_rng(0))
    assert scipy.stats.kstest(x, lambda z: np.interp(z, grid, cdf)).pvalue > 1e-3


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: density.fourier_autocorr(np.zeros((2, 2))), ValueError, "one-dimensional"),
        (lambda: density.fourier_autocorr(np.zeros(0)), ValueError, "at least one"),
        (lambda: density.fourier_autocorr([1.0, 2.0]), TypeError, "numpy array or a torch tensor"),
        (lambda: density.fourier_pdf(np.ones(2), np.array([1.1])), ValueError, "x must lie in"),
        (lambda: density.fourier_pdf(np.ones(2), np.array([0.0]), form="fft"), ValueError, "form"),
        (lambda: density.fourier_cdf(np.ones(2), np.array([-2.0])), ValueError, "x must lie in"),
        (lambda: density.fourier_sample(np.ones(2), -1), ValueError, "n must be non-negative"),
        (lambda: density.fourier_sample(np.ones(2), 2.5), TypeError, "n must be an int"),
        (lambda: density.spectral_factor(np.array([0.0, 1.0])), ValueError, "c\\[0\\] must be positive"),
        (lambda: density.FourierDensity(-1), ValueError, "N must be at least 0"),
        (lambda: density.FourierDensity(2, dtype=torch.int32), TypeError, "dtype"),
        (lambda: density.fit_fourier_density(np.ones((3, 3))), ValueError, "1-D"),
        (lambda: density.fit_fourier_density(np.array([0.0, np.nan])), ValueError, "finite"),
        (lambda: density.fit_fourier_density(np.arange(5.0), gamma=-1), ValueError, "gamma"),
        (lambda: density.fit_fourier_densities([np.arange(5.0)] * 2, seed=[1]), ValueError, "seed"),
        (lambda: density.fit_fourier_density(np.arange(5.0), N=2, init=density.FourierDensity(3)), ValueError, "warm"),
        (lambda: density.gmm_em(np.arange(5.0), 0), ValueError, "K must satisfy"),
        (lambda: density.gmm_em(np.arange(5.0), 6), ValueError, "K must satisfy"),
        (lambda: density.gmm_fit_adam(np.arange(5.0), 1.5), TypeError, "K must be an int"),
        (lambda: density.fit_fourier_densities([np.arange(5.0)] * 2, N=[3, -1]), ValueError, "N must be at least"),
        (lambda: density.fit_deep_factorized(np.arange(5.0)), ValueError, "shape"),
        (lambda: density.fit_deep_factorized(np.ones((2, 5)), lr=0.0), ValueError, "lr"),
        (lambda: density.fit_deep_factorized(np.ones((2, 5)), filters=(3, 0)), ValueError, "filters"),
        (lambda: density.DeepFactorized((3,), [0.0], [-1.0]), ValueError, "scale"),
        (lambda: density.gmm_pdf(np.zeros(2), [1.0], [0.0], [0.0]), ValueError, "sd must be positive"),
        (lambda: density.kde_pdf(np.arange(5.0), np.zeros(2), bandwidth="wide"), ValueError, "bandwidth"),
        (lambda: density.kde_pdf(np.arange(5.0), np.zeros(2), bandwidth=-1.0), ValueError, "bandwidth"),
        (lambda: density.kl_on_grid(np.ones(3), np.ones(2), np.arange(3.0)), ValueError, "same shape"),
        (lambda: density.kl_on_grid(np.ones(3), np.ones(3), np.array([0.0, 2.0, 1.0])), ValueError, "increasing"),
        (lambda: density.targets("D"), ValueError, "name must be one of"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_runs_on_cuda():
    sample, _ = density.targets("C")
    m = density.fit_fourier_density(sample(500, np.random.default_rng(0)), N=4, steps=20, device="cuda")
    assert m.a.is_cuda and torch.isfinite(m.log_prob(torch.zeros(3, device="cuda", dtype=torch.float64))).all()
