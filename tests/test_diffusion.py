"""Unit tests of kexue_lite.diffusion (schedules, SDE coefficients, log-SNR schedules, pooling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue_lite import diffusion as diff

RNG = np.random.default_rng(5)


def test_sde_coefficients_against_closed_forms():
    s = diff.vp_exp(5.0)
    t = np.array([0.1, 0.3, 0.7])
    np.testing.assert_allclose(s.f(t), -10 * t, atol=1e-12)
    np.testing.assert_allclose(s.g2(t), 20 * t, atol=1e-10)  # VP: g^2 = -2 f
    cos = diff.vp_cosine()
    np.testing.assert_allclose(cos.f(t), -math.pi / 2 * np.tan(math.pi * t / 2), atol=1e-12)
    np.testing.assert_allclose(cos.g2(t), -2 * cos.f(t), atol=1e-10)
    ve = diff.ve_geometric(0.01, 10.0)
    np.testing.assert_allclose(ve.f(t), 0, atol=1e-15)
    np.testing.assert_allclose(ve.g2(t), 2 * math.log(1000) * ve.beta(t) ** 2, rtol=1e-12)
    lin = diff.linear_interp()
    # alpha = 1 - t, beta = t: f = -1/(1-t), g2 = (1-t)^2 d/dt (t/(1-t))^2 = 2t/(1-t)
    np.testing.assert_allclose(lin.f(t), -1 / (1 - t), atol=1e-12)
    np.testing.assert_allclose(lin.g2(t), 2 * t / (1 - t), atol=1e-10)


def test_schedule_types_and_errors():
    s = diff.vp_exp()
    assert isinstance(s.alpha(0.5), float)
    tt = torch.tensor([0.2, 0.4], dtype=torch.float32)
    out = s.f(tt)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        s.alpha(1.5)
    with pytest.raises(TypeError, match="t must"):
        s.alpha("0.5")
    with pytest.raises(ValueError, match="diverge"):
        diff.vp_cosine().f(1.0)
    with pytest.raises(ValueError, match="sigma"):
        diff.ve_geometric(1.0, 0.5)


def test_log_snr_schedules():
    t = np.linspace(0.05, 0.95, 19)
    lam = diff.logsnr_cosine(t, -40, 40)  # effectively unclipped
    np.testing.assert_allclose(lam, -2 * np.log(np.tan(math.pi * t / 2)), atol=1e-12)
    np.testing.assert_allclose(diff.vp_cosine().log_snr(t), lam, atol=1e-12)
    assert diff.logsnr_cosine(0.0) == pytest.approx(15) and diff.logsnr_cosine(1.0) == pytest.approx(-15)
    np.testing.assert_allclose(diff.logsnr_shifted(t, 512) - diff.logsnr_cosine(t), 2 * math.log(64 / 512))
    interp = diff.logsnr_interpolated(t, 512)
    np.testing.assert_allclose(interp, t * diff.logsnr_shifted(t, 512, 32) + (1 - t) * diff.logsnr_shifted(t, 512, 256))
    a, b = diff.alpha_beta_from_logsnr(lam)
    np.testing.assert_allclose(a**2 + b**2, 1, atol=1e-14)
    np.testing.assert_allclose(np.log(a**2 / b**2), lam, atol=1e-9)
    sched = diff.from_log_snr(lambda tt: -2 * torch.log(torch.tan(math.pi * tt / 2)))
    np.testing.assert_allclose(sched.alpha(t), np.cos(math.pi * t / 2), atol=1e-12)


def test_shift_vp_matches_the_snr_rule():
    a_lo, b_lo = np.cos(0.3), np.sin(0.3)
    a_hi, b_hi = diff.shift_vp(a_lo, b_lo, 4)
    assert a_hi**2 + b_hi**2 == pytest.approx(1)
    assert (a_hi / b_hi) ** 2 * 16 == pytest.approx((a_lo / b_lo) ** 2)
    assert diff.shift_vp(1.0, 0.0, 4) == (1.0, 0.0)
    with pytest.raises(ValueError, match="s"):
        diff.shift_vp(0.5, 0.5, 0)


def test_ddpm_schedule_is_close_to_exp():
    t, a = diff.ddpm_discrete()
    assert np.abs(a - np.exp(-5 * t**2)).max() < 0.01 and abs(a[-1] - math.exp(-5)) < 5e-4


def test_pooling_and_multiscale_loss():
    x = RNG.normal(size=(2, 8, 8))
    p = diff.avg_pool(x, 4)
    assert p.shape == (2, 2, 2) and p[1, 0, 1] == pytest.approx(x[1, 0:4, 4:8].mean())
    np.testing.assert_allclose(diff.avg_pool(torch.from_numpy(x), 2).numpy(), diff.avg_pool(x, 2))
    noise = RNG.normal(size=(4, 256, 256))
    assert np.var(diff.avg_pool(noise, 8)) * 64 == pytest.approx(1, rel=0.05)
    ms = diff.multiscale_mse(np.full((8, 8), 0.5), np.zeros((8, 8)), scales=(1, 2, 8))
    assert ms == pytest.approx({1: 0.25, 2: 0.25, 8: 0.25})
    img = diff.synthetic_image(64, seed=1)
    assert img.shape == (64, 64) and img.min() >= -1 and img.max() <= 1
    np.testing.assert_array_equal(img, diff.synthetic_image(64, seed=1))
    with pytest.raises(ValueError, match="divisible"):
        diff.avg_pool(x, 3)
    with pytest.raises(ValueError, match="same shape"):
        diff.multiscale_mse(np.ones((4, 4)), np.ones((2, 2)))


def test_gaussian_mixture_exact_quantities():
    gm = diff.two_mode_1d()
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)[:, None].requires_grad_(True)
    (auto,) = torch.autograd.grad(gm.log_prob(x).sum(), x)
    np.testing.assert_allclose(gm.score(x.detach()).numpy(), auto.numpy(), atol=1e-12)
    dens = np.exp(gm.log_prob(np.linspace(-8, 8, 20001)[:, None]).numpy())
    assert np.trapezoid(dens, np.linspace(-8, 8, 20001)) == pytest.approx(1, abs=1e-9)
    q = np.array([0.1, 0.3, 0.7, 0.95])
    np.testing.assert_allclose(gm.cdf(gm.icdf(q)[:, None]).numpy(), q, atol=1e-12)
    a, b = 0.6, 0.8
    dg = gm.diffuse(a, b)
    xs = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    np.testing.assert_allclose(gm.score_t(xs, torch.full((7, 1), a, dtype=torch.float64), torch.full((7, 1), b, dtype=torch.float64)).numpy(),
                               dg.score(xs).numpy(), atol=1e-12)
    # Tweedie against a direct posterior mean by quadrature
    grid = torch.linspace(-8, 8, 40001, dtype=torch.float64)
    x_obs = 0.4
    post = torch.exp(gm.log_prob(grid[:, None]) - (x_obs - a * grid) ** 2 / (2 * b**2))
    direct = float((grid * post).sum() / post.sum())
    assert float(gm.posterior_mean(torch.tensor([[x_obs]], dtype=torch.float64), a, b)) == pytest.approx(direct, abs=1e-8)
    g = torch.Generator().manual_seed(0)
    s = gm.sample(200_000, g)
    assert float((s > 0).double().mean()) == pytest.approx(0.7, abs=0.005)
    ring = diff.GaussianMixture(np.ones(3), np.array([[0.0, 1], [1, 0], [-1, 0]]), np.array([[[0.2, 0.05], [0.05, 0.1]]] * 3))
    y = torch.randn(5, 2, dtype=torch.float64).requires_grad_(True)
    (auto2,) = torch.autograd.grad(ring.log_prob(y).sum(), y)
    np.testing.assert_allclose(ring.score(y.detach()).numpy(), auto2.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="positive definite"):
        diff.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="weights"):
        diff.GaussianMixture([-1.0, 2.0], [[0.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        ring.cdf(torch.zeros(2, 2))


def test_samplers_and_metrics():
    gm = diff.two_mode_1d()
    vp = diff.vp_exp(5.0)
    g = torch.Generator().manual_seed(1)

    def score(x, t):
        return gm.diffuse(vp.alpha(t), vp.beta(t)).score(x)

    q = (np.arange(200) + 0.5) / 200
    x1 = gm.diffuse(vp.alpha(1.0), vp.beta(1.0)).icdf(q)[:, None]
    ref = gm.diffuse(vp.alpha(1e-3), vp.beta(1e-3)).icdf(q)
    errs = {m: float((diff.ode_sample(diff.pf_ode_velocity(score, vp), x1, 100, 1.0, 1e-3, m)[:, 0] - ref).abs().mean())
            for m in ("euler", "heun", "rk4")}
    assert errs["rk4"] < errs["heun"] < errs["euler"] < 0.01
    out = diff.reverse_sde_sample(score, vp, gm.diffuse(vp.alpha(1.0), vp.beta(1.0)).sample(4000, g), 100, generator=g)
    assert diff.w1_to_cdf(out.numpy(), lambda z: gm.cdf(z[:, None]).numpy(), -5, 5) < 0.06
    x_end = diff.forward_sde(torch.full((4000, 1), 1.5, dtype=torch.float64), vp, 400, generator=g)
    assert float(x_end.var()) == pytest.approx(vp.beta(1.0) ** 2, rel=0.1)
    exact = gm.sample(20000, g).numpy()
    assert diff.w1_to_cdf(exact, lambda z: gm.cdf(z[:, None]).numpy(), -5, 5) < 0.03
    data = torch.randn(10, 2, dtype=torch.float64)
    xq = torch.randn(4, 2, dtype=torch.float64).requires_grad_(True)
    lp = torch.logsumexp(-((xq[:, None] - 0.5 * data[None]) ** 2).sum(-1) / (2 * 0.7**2), 1)
    (auto,) = torch.autograd.grad(lp.sum(), xq)
    np.testing.assert_allclose(diff.empirical_score(xq.detach(), data, 0.5, 0.7).numpy(), auto.numpy(), atol=1e-12)
    assert isinstance(diff.make_mlp(2, 1), torch.nn.Sequential)
    with pytest.raises(ValueError, match="n_steps"):
        diff.ode_sample(lambda x, t: x, torch.zeros(2, 1), 0)
    with pytest.raises(ValueError, match="t_start"):
        diff.reverse_sde_sample(score, vp, torch.zeros(2, 1), 5, t_start=0.1, t_end=0.5)
    with pytest.raises(ValueError, match="method"):
        diff.ode_sample(lambda x, t: x, torch.zeros(2, 1), 3, method="midpoint")


def test_self_consuming_loops():
    run = diff.self_consuming_gaussian(10, 20, 20000, seed=0)
    assert run["mu"].shape == (21, 20000, 1) and run["var"].shape == (21, 20000)
    assert run["mu"][20, :, 0].var() == pytest.approx(20 / 10, rel=0.1)
    se = np.log(run["var"][20]).std() / np.sqrt(20000)
    assert abs(np.log(run["var"][20]).mean() - 20 * diff.log_var_drift(10)) < 4 * se
    assert run["var"][20].mean() == pytest.approx(1, rel=0.1)
    trunc = diff.self_consuming_gaussian(10, 5, 20000, lam=0.8, seed=1)
    assert trunc["var"][5].mean() == pytest.approx(0.8**5, rel=0.05)
    fresh = diff.self_consuming_gaussian(5, 50, 2000, n_real=5, fresh_real=True, dim=2, seed=2)
    assert np.median(fresh["var"][50]) > 0.7
    import scipy.special

    assert diff.log_var_drift(20) == pytest.approx(scipy.special.digamma(9.5) + math.log(2 / 19))
    rng = np.random.default_rng(0)  # Monte Carlo of E log(chi2_k / k)
    k = 9
    assert np.log(rng.chisquare(k, 400_000) / k).mean() == pytest.approx(diff.log_var_drift(k + 1), abs=0.005)
    cat = diff.self_consuming_categorical(np.arange(1, 101) ** -1.0, 500, 20, temperature=0.9, seed=3)
    assert np.all(np.diff(cat["support"]) <= 0) and cat["p"].shape == (21, 100)
    np.testing.assert_allclose(cat["p"].sum(1), 1)
    with pytest.raises(ValueError, match="n \\+ n_real"):
        diff.self_consuming_gaussian(1, 3, 10)
    with pytest.raises(ValueError, match="lam"):
        diff.self_consuming_gaussian(5, 3, 10, lam=0)
    with pytest.raises(ValueError, match="temperature"):
        diff.self_consuming_categorical(np.ones(3), 10, 2, temperature=0)


def test_rectified_flow_velocity():
    ring = diff.ring_mixture(k=4, radius=2.0, std=0.3)
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # endpoints: E[x_1 - x_0 | x_0 = x] = -x and E[x_1 - x_0 | x_1 = x] = x - E[x_0]
    np.testing.assert_allclose(diff.rf_velocity(ring, x, 0.0).numpy(), -x.numpy(), atol=1e-12)
    np.testing.assert_allclose(diff.rf_velocity(ring, x, 1.0).numpy(), x.numpy(), atol=1e-12)  # ring mean is 0
    # interior: agrees with the score form -(x + t score) / (1 - t) of the marginal of (1 - t) x_0 + t x_1
    from_score = diff.rf_velocity_from_score(lambda y, t: ring.diffuse(1 - t, t).score(y))
    for t in (0.2, 0.5, 0.9):
        np.testing.assert_allclose(diff.rf_velocity(ring, x, t).numpy(), from_score(x, t).numpy(), atol=1e-10)
    # one Gaussian: the conditional mean is linear, so least squares on samples recovers it
    g = diff.GaussianMixture([1.0], [[1.5]], [0.25])
    gen = torch.Generator().manual_seed(2)
    x0, x1 = g.sample(400_000, gen), torch.randn(400_000, 1, dtype=torch.float64, generator=gen)
    t = 0.4
    xt = (1 - t) * x0 + t * x1
    design = torch.cat([xt, torch.ones_like(xt)], 1)
    coef = torch.linalg.lstsq(design, x1 - x0).solution
    probe = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    np.testing.assert_allclose(diff.rf_velocity(g, probe, t).numpy(), (torch.cat([probe, torch.ones_like(probe)], 1) @ coef).numpy(), atol=0.01)
    with pytest.raises(ValueError, match="t must lie"):
        diff.rf_velocity(ring, x, 1.5)
    with pytest.raises(ValueError, match="t = 1"):
        from_score(x, 1.0)


def test_flow_metrics():
    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(256, 2, dtype=torch.float64, generator=gen)
    # a constant velocity moves in straight lines; v(x, t) = x does not (x_t = x_1 e^{t - 1})
    assert diff.straightness(lambda x, t: torch.ones_like(x), x1) < 1e-20
    assert diff.straightness(lambda x, t: x, x1) > 1e-3
    z0, z1 = diff.reflow_pairs(lambda x, t: torch.ones_like(x), x1, n_steps=8)
    np.testing.assert_allclose(z0.numpy(), (x1 - 1).numpy(), atol=1e-12)
    assert z1 is x1
    n, h = 2000, 1.0
    a = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    b = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    assert diff.mmd_rbf(a, a) == pytest.approx(0, abs=1e-12)
    assert diff.mmd_rbf(a, b) == pytest.approx(diff.mmd_rbf(b, a), abs=1e-12)
    # N(0, I) vs N(m, I) in 2-D: MMD^2 = 2 c (1 - exp(-|m|^2 / (2 (h^2 + 2)))), c = h^2 / (h^2 + 2),
    # plus the V-statistic's diagonal bias 2 (1 - c) / n
    c, m2 = h**2 / (h**2 + 2), 8.0
    exact = 2 * c * (1 - math.exp(-m2 / (2 * (h**2 + 2)))) + 2 * (1 - c) / n
    assert diff.mmd_rbf(a, b + 2.0, bandwidth=h) == pytest.approx(exact, abs=0.05)  # sampling sd about 0.017
    assert diff.mmd_rbf(a, b, bandwidth=h) == pytest.approx(2 * (1 - c) / n, abs=2e-3)
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    pts = torch.tensor([[0.1, 0.0], [4.9, 0.1], [5.0, -0.1], [2.5, 0.0]], dtype=torch.float64)
    covered, per = diff.mode_coverage(pts, centers, radius=0.5)
    assert covered == pytest.approx(0.75)
    np.testing.assert_allclose(per, [0.25, 0.5])
    with pytest.raises(ValueError, match="bandwidth"):
        diff.mmd_rbf(a, b, bandwidth=0.0)
    with pytest.raises(ValueError, match="radius"):
        diff.mode_coverage(pts, centers, radius=-1.0)
