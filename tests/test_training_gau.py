"""Tests of kexue_lite.training.gau_init (gau-without-warmup, 8990)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch

from kexue_lite.training import gau_init as g


def _have_gau() -> bool:
    try:
        from kexue_lite import attention, training

        return hasattr(attention, "GatedAttentionUnit") and hasattr(training, "init_weights")
    except Exception:  # pragma: no cover - the shared component is missing
        return False


needs_gau = pytest.mark.skipif(not _have_gau(), reason="attention.GatedAttentionUnit not available yet")


# --- swish moments -------------------------------------------------------------------------------------------


def test_swish_moments_against_scipy_quadrature():
    pdf = scipy.stats.norm.pdf
    mu = scipy.integrate.quad(lambda x: x * scipy.special.expit(x) * pdf(x), -np.inf, np.inf, epsabs=1e-13)[0]
    nu2 = scipy.integrate.quad(lambda x: (x * scipy.special.expit(x)) ** 2 * pdf(x), -np.inf, np.inf, epsabs=1e-13)[0]
    got_mu, got_nu2 = g.swish_gaussian_moments()
    assert abs(got_mu - mu) < 1e-10 and abs(got_nu2 - nu2) < 1e-10


def test_swish_mean_by_stein_lemma():
    # E[x sigma(x)] = E[sigma'(x)] = E[sigma(x)(1 - sigma(x))] (Stein), an independent integral
    pdf = scipy.stats.norm.pdf
    stein = scipy.integrate.quad(lambda x: scipy.special.expit(x) * (1 - scipy.special.expit(x)) * pdf(x), -np.inf, np.inf,
                                 epsabs=1e-13)[0]
    assert abs(g.swish_gaussian_moments()[0] - stein) < 1e-10


def test_swish_moments_article_values_and_monte_carlo():
    mu, nu2 = g.swish_gaussian_moments()
    assert abs(mu - 0.2066) < 5e-5 and abs(nu2 - 0.3557) < 1e-4  # the article's 0.2066..., 0.3557...
    x = np.random.default_rng(0).standard_normal(2_000_000)
    sw = x * scipy.special.expit(x)
    assert abs(sw.mean() - mu) < 2e-3 and abs((sw**2).mean() - nu2) < 3e-3
    # sigma(x) + sigma(-x) = 1 gives E[x^2 sigma(x)] = 1/2, and sigma < 1 gives nu2 = E[x^2 sigma^2] < 1/2
    assert 0 < mu and mu**2 < nu2 < 0.5


def test_swish_moments_against_mpmath_30_digits():
    # an independent library and rule (tanh-sinh at 30 digits) for the module's scipy quadrature
    import mpmath

    with mpmath.workdps(30):
        for c in (1.0, 0.25, 1.7):
            cm = mpmath.mpf(c)
            f = lambda x, k: (cm * x / (1 + mpmath.exp(-cm * x))) ** k * mpmath.npdf(x)  # noqa: E731
            ref = [float(mpmath.quad(lambda x: f(x, k), [-mpmath.inf, 0, mpmath.inf])) for k in (1, 2)]
            got = g.swish_gaussian_moments(c)
            assert abs(got[0] - ref[0]) < 1e-13 and abs(got[1] - ref[1]) < 1e-13


def test_swish_moments_cached_and_types():
    a, b = g.swish_gaussian_moments(), g.swish_gaussian_moments()
    assert a is b and all(isinstance(v, float) for v in a)


# --- E[relu(S)^2] -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m, sigma", [(0.0, 1.0), (5.465, 3.996), (-2.0, 0.7), (3.0, 0.1), (-0.3, 4.0)])
def test_relu2_moment_against_quadrature(m, sigma):
    ref = scipy.integrate.quad(lambda x: x * x * scipy.stats.norm.pdf(x, m, sigma), 0, np.inf, epsabs=1e-13)[0]
    assert abs(g.relu2_gaussian_moment(m, sigma) - ref) < 1e-9 * max(1.0, ref)


def test_relu2_moment_limits_and_symmetry():
    assert abs(g.relu2_gaussian_moment(0.0, 2.0) - 2.0) < 1e-15  # sigma^2 / 2
    assert abs(g.relu2_gaussian_moment(50.0, 1.0) - 2501.0) < 1e-9  # E[S^2] = m^2 + sigma^2 when S > 0 a.s.
    assert g.relu2_gaussian_moment(-50.0, 1.0) < 1e-300
    # E[relu(S)^2] + E[relu(-S)^2] = E[S^2]
    for m, s in [(1.3, 0.4), (-2.0, 3.0)]:
        assert abs(g.relu2_gaussian_moment(m, s) + g.relu2_gaussian_moment(-m, s) - (m * m + s * s)) < 1e-12


def test_relu2_moment_monte_carlo():
    s_draws = np.random.default_rng(1).normal(1.0, 2.0, 1_000_000)
    assert abs(np.mean(np.maximum(s_draws, 0) ** 2) - g.relu2_gaussian_moment(1.0, 2.0)) < 0.03


@pytest.mark.parametrize("m, sigma, exc, word", [(0.0, 0.0, ValueError, "sigma"), (0.0, -1.0, ValueError, "sigma"),
                                                 (float("nan"), 1.0, ValueError, "m"), (0.0, float("inf"), ValueError, "sigma"),
                                                 (True, 1.0, TypeError, "m"), ("1", 1.0, TypeError, "m")])
def test_relu2_moment_errors(m, sigma, exc, word):
    with pytest.raises(exc, match=word):
        g.relu2_gaussian_moment(m, sigma)


def test_relu2_moment_accepts_numpy_scalars():
    assert abs(g.relu2_gaussian_moment(np.float32(1.0), np.float64(2.0)) - g.relu2_gaussian_moment(1.0, 2.0)) < 1e-12


# --- predicted output scale ----------------------------------------------------------------------------------


def test_output_scale_article_value():
    # s nu^6 / n at s = 128, n = 512 from the article's moments, and with its rounded nu = 0.6
    assert abs(g.gau_output_scale(512, 128) - 0.01126) < 1e-5
    assert abs(128 * 0.6**6 / 512 - 0.01166) < 1e-5
    assert abs(2 * g.gau_output_scale(512, 128) - g.gau_output_scale(256, 128)) < 1e-15  # proportional to s / n
    assert abs(g.gau_output_scale(512, 128) - g.gau_output_scale(2048, 512)) < 1e-15


def test_output_scale_corrected_values_and_limit():
    mu, nu2 = 0.20662096, 0.35577552  # scipy-checked moments (test above)
    s = 128
    e_lim = scipy.integrate.quad(lambda x: x * x * scipy.stats.norm.pdf(x, s * mu**2, math.sqrt(s * (nu2**2 - mu**4))), 0, np.inf)[0]
    limit = math.sqrt(nu2) * mu * e_lim / s
    assert abs(g.gau_output_scale(10**9, s, method="corrected") - limit) < 1e-6
    assert abs(limit - 0.0436) < 5e-4 and abs(g.gau_output_scale(512, s, method="corrected") - 0.0486) < 1e-4
    # always above the article's estimate, and it plateaus in n instead of falling like 1/n
    for n in (16, 128, 512, 4096):
        assert g.gau_output_scale(n, s, method="corrected") > g.gau_output_scale(n, s)
    assert g.gau_output_scale(512, s, method="corrected") / g.gau_output_scale(2048, s, method="corrected") < 1.2


@pytest.mark.parametrize("kwargs, exc, word", [(dict(n=0, s=4), ValueError, "n"), (dict(n=8, s=0), ValueError, "s"),
                                               (dict(n=8.0, s=4), TypeError, "n"), (dict(n=8, s=4, method="exact"), ValueError, "method")])
def test_output_scale_errors(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        g.gau_output_scale(**kwargs)


# --- one step of Adam / SGD ----------------------------------------------------------------------------------


def _linear_model(dtype):
    torch.manual_seed(3)
    model = torch.nn.Linear(5, 4, bias=False).to(dtype)
    x = torch.randn(7, 5, dtype=dtype)
    return model, x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_step_sgd_closed_form(dtype):
    model, x = _linear_model(dtype)
    w0 = model.weight.detach().clone()
    r = torch.randn(7, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64).to(dtype)
    y0 = x @ w0.T
    # loss = mean(y r): dL/dW^T = x^T r / N, so y1 - y0 = -lr x x^T r / N
    delta = -0.1 * x @ (x.T @ r) / r.numel()
    expected = (delta.double().norm() / y0.double().norm()).item()
    got = g.one_step_relative_change(model, x, lr=0.1, optimizer="sgd", readout_seed=11)
    assert abs(got - expected) < (1e-5 if dtype == torch.float32 else 1e-12) * max(1.0, expected)
    assert torch.equal(model.weight, w0)  # untouched


def test_one_step_adam_first_step_is_sign_step():
    model, x = _linear_model(torch.float64)
    r = torch.randn(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grad_wT = x.T @ r / r.numel()
    delta = -1e-3 * x @ torch.sign(grad_wT)  # Adam's first step: -lr g / (|g| + eps) ~ -lr sign(g)
    y0 = x @ model.weight.detach().T
    expected = (delta.norm() / y0.norm()).item()
    got = g.one_step_relative_change(model, x, lr=1e-3)
    assert abs(got - expected) < 1e-6 * expected


def test_one_step_depends_on_lr_and_seed_deterministically():
    model, x = _linear_model(torch.float64)
    a = g.one_step_relative_change(model, x, lr=1e-3, readout_seed=1)
    assert a == g.one_step_relative_change(model, x, lr=1e-3, readout_seed=1)
    assert abs(g.one_step_relative_change(model, x, lr=2e-3, readout_seed=1) / a - 2) < 1e-5  # Adam: linear in lr


@pytest.mark.parametrize("kwargs, exc, word", [(dict(lr=0.0), ValueError, "lr"), (dict(lr=float("nan")), ValueError, "lr"),
                                               (dict(optimizer="lamb"), ValueError, "optimizer"),
                                               (dict(readout_seed=-1), ValueError, "readout_seed")])
def test_one_step_errors(kwargs, exc, word):
    model, x = _linear_model(torch.float32)
    with pytest.raises(exc, match=word):
        g.one_step_relative_change(model, x, **kwargs)


def test_one_step_input_errors():
    model, x = _linear_model(torch.float32)
    with pytest.raises(TypeError, match="model"):
        g.one_step_relative_change(lambda t: t, x)
    with pytest.raises(TypeError, match="x"):
        g.one_step_relative_change(model, x.numpy())
    with pytest.raises(ValueError, match="x"):
        g.one_step_relative_change(model, torch.full((2, 5), float("nan")))
    with pytest.raises(ValueError, match="x"):
        g.one_step_relative_change(model, torch.zeros(0, 5))


# --- Monte Carlo on the shared GAU -------------------------------------------------------------------------


def _reference_gau_stats(n, d, e, s, lam, seed, causal=False):
    """An independent numpy GAU with LeCun weights (not the shared module): A and the output ratio."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    wu, wv, wz = (rng.standard_normal((d, k)) * lam / math.sqrt(d) for k in (e, e, s))
    wo = rng.standard_normal((e, d)) * lam / math.sqrt(e)
    sw = lambda t: t * scipy.special.expit(t)  # noqa: E731
    u, v, z = sw(x @ wu), sw(x @ wv), sw(x @ wz)
    A = np.maximum(z @ z.T / math.sqrt(s), 0) ** 2 / n
    if causal:
        A = np.tril(A)
    o = (u * (A @ v)) @ wo
    return math.sqrt((o**2).mean() / (x**2).mean()), A


@needs_gau
def test_gau_stats_statistically_match_independent_numpy_gau():
    kw = dict(n=128, d=256, expansion=2, s=64)
    ours = [g.gau_init_stats(**kw, seed=k) for k in range(3)]
    ref = [_reference_gau_stats(128, 256, 512, 64, 1.0, 100 + k) for k in range(3)]
    ratio_ours, ratio_ref = np.mean([o["rms_ratio"] for o in ours]), np.mean([r[0] for r in ref])
    assert abs(ratio_ours / ratio_ref - 1) < 0.15
    diag_ref = np.mean([np.diag(r[1]).mean() for r in ref])
    assert abs(np.mean([o["diag_mean"] for o in ours]) / diag_ref - 1) < 0.1
    row_ref = np.mean([r[1].sum(-1).mean() for r in ref])
    assert abs(np.mean([o["row_sum"] for o in ours]) / row_ref - 1) < 0.15
    o = ours[0]
    assert abs(o["row_sum"] - o["diag_mean"] - o["offdiag_mass"]) < 1e-12 and o["diag_mean"] > 10 * o["offdiag_mean"]


@needs_gau
def test_gau_stats_article_size_near_corrected_estimate():
    st = g.gau_init_stats(n=512, d=768, s=128, seed=0)
    assert 0.045 < st["rms_ratio"] < 0.065
    assert st["rms_ratio"] > 3 * g.gau_output_scale(512, 128)  # the article's estimate is too small


@needs_gau
def test_gau_stats_lambda_causal_dtype_seed_and_rng():
    kw = dict(n=64, d=64, s=16)
    state = torch.get_rng_state()
    base = g.gau_init_stats(**kw)
    assert torch.equal(state, torch.get_rng_state())
    g._gau_init_stats_cached.cache_clear()  # recompute (not a cache hit): deterministic in its arguments
    assert g.gau_init_stats(**kw) == base and g.gau_init_stats(**kw, seed=1) != base
    small = g.gau_init_stats(**kw, lam=0.5)
    # all seven weight factors scale the output; swish(lam x) < lam swish(x) for x > 0 makes it steeper than lam^7
    assert small["rms_ratio"] < 0.5**7 * base["rms_ratio"]
    assert g.gau_init_stats(**kw, causal=True)["row_sum"] < base["row_sum"]
    f64 = g.gau_init_stats(**kw, dtype=torch.float64)
    assert abs(f64["rms_ratio"] / base["rms_ratio"] - 1) < 1e-4
    assert g.gau_init_stats(**kw, qk_init="normal")["row_sum"] < 1e-3 * base["row_sum"]


@needs_gau
@pytest.mark.parametrize("kwargs, exc, word", [(dict(n=1), ValueError, "n"), (dict(lam=0.0), ValueError, "lam"),
                                               (dict(lam=float("inf")), ValueError, "lam"), (dict(d=8.5), TypeError, "d"),
                                               (dict(dtype=torch.int64), TypeError, "dtype"), (dict(seed=-1), ValueError, "seed"),
                                               (dict(qk_init="zeros"), ValueError, "qk_init"), (dict(causal=1), TypeError, "causal")])
def test_gau_stats_errors(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        g.gau_init_stats(**{"n": 8, "d": 8, "s": 4, **kwargs})


# --- scaled weights (lam) ------------------------------------------------------------------------------------


def test_scaled_swish_moments_against_scipy_and_small_scale_limit():
    pdf = scipy.stats.norm.pdf
    for c in (0.3, 0.5, 2.0):
        mu = scipy.integrate.quad(lambda x: c * x * scipy.special.expit(c * x) * pdf(x), -np.inf, np.inf, epsabs=1e-13)[0]
        nu2 = scipy.integrate.quad(lambda x: (c * x * scipy.special.expit(c * x)) ** 2 * pdf(x), -np.inf, np.inf, epsabs=1e-13)[0]
        got = g.swish_gaussian_moments(c)
        assert abs(got[0] - mu) < 1e-10 and abs(got[1] - nu2) < 1e-10
    # swish(c x) = c x / 2 + c^2 x^2 / 4 + O(c^4): mu ~ c^2 / 4 and nu2 ~ c^2 / 4 as c -> 0
    mu_small, nu2_small = g.swish_gaussian_moments(1e-3)
    assert abs(mu_small / 0.25e-6 - 1) < 1e-4 and abs(nu2_small / 0.25e-6 - 1) < 1e-4
    assert g.swish_gaussian_moments(1) == g.swish_gaussian_moments()


def test_output_scale_with_lam():
    assert abs(g.gau_output_scale(512, 128, lam=0.5) - 0.5**7 * g.gau_output_scale(512, 128)) < 1e-15
    corr = [g.gau_output_scale(512, 128, method="corrected", lam=lam) for lam in (0.25, 0.5, 1.0)]
    # steeper than lam^7 between 0.5 and 1, because swish(lam x) < lam swish(x) for x > 0
    assert corr[1] / corr[2] < 0.5**7 and corr[0] < corr[1] < corr[2]
    with pytest.raises(ValueError, match="lam"):
        g.gau_output_scale(8, 4, lam=-1.0)


@pytest.mark.parametrize("scale, exc", [(0.0, ValueError), (float("nan"), ValueError), (-1.0, ValueError), ("a", TypeError)])
def test_scaled_swish_moments_errors(scale, exc):
    with pytest.raises(exc, match="scale"):
        g.swish_gaussian_moments(scale)
