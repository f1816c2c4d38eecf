"""Unit tests of kexue_lite.diffusion: schedules and SDEs, mixtures, samplers, flows, SiD, IGN, self-consuming loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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
    full = diff.GaussianMixture([0.2, 0.8], [[0.0, 1], [1, -1]], [[[0.2, 0.05], [0.05, 0.1]], [[1.0, -0.6], [-0.6, 0.5]]])
    ab = torch.tensor([[0.9], [0.6], [0.3], [0.6], [0.95]], dtype=torch.float64)  # per-sample (alpha, beta), VP
    per_sample = full.score_t(y.detach(), ab, torch.sqrt(1 - ab**2))
    one_by_one = torch.cat([full.diffuse(float(a_), math.sqrt(1 - float(a_) ** 2)).score(y.detach()[i:i + 1]) for i, a_ in enumerate(ab[:, 0])])
    np.testing.assert_allclose(per_sample.numpy(), one_by_one.numpy(), atol=1e-12)  # full covariances, eigen-route
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
    one = diff.self_consuming_categorical([0.0, 1.0, 0.0], 50, 3)  # a single token: entropy exactly +0
    assert np.all(one["entropy"] == 0) and not np.signbit(one["entropy"]).any() and np.all(one["support"] == 1)
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


def _tiny(i, o, seed):
    torch.manual_seed(seed)
    return diff.make_mlp(i, o, hidden=16, depth=1)


def test_gan_single_loss_gradients():
    D, G = _tiny(2, 1, 0), _tiny(2, 2, 1)
    gen = torch.Generator().manual_seed(0)
    x, z = torch.randn(64, 2, generator=gen, dtype=torch.float64), torch.randn(64, 2, generator=gen, dtype=torch.float64)
    single = torch.autograd.grad(diff.gan_single_loss(D, G, x, z), [*D.parameters(), *G.parameters()])
    nd = len(list(D.parameters()))
    d_loss = (D(x) - D(G(z).detach())).mean()  # discriminator: low score on real, high on fake
    g_loss = D(G(z)).mean()  # generator: low score on fake
    for got, want in zip(single[:nd], torch.autograd.grad(d_loss, list(D.parameters()))):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    for got, want in zip(single[nd:], torch.autograd.grad(g_loss, list(G.parameters()))):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


def test_ign_losses_match_the_frozen_copy_formulation():
    import copy

    f = _tiny(2, 2, 2)
    gen = torch.Generator().manual_seed(1)
    x, z = torch.randn(64, 2, generator=gen, dtype=torch.float64), torch.randn(64, 2, generator=gen, dtype=torch.float64)
    w = (20.0, 20.0, 2.5)
    for clamp in (None, 1.5):
        ours = torch.autograd.grad(diff.ign_total_loss(diff.ign_losses(f, x, z, clamp_ratio=clamp), w), list(f.parameters()))
        # the paper's loop: a deep copy of f with gradients off plays f' in every frozen slot
        f_copy = copy.deepcopy(f).requires_grad_(False)
        fz, fz_copy = f(z), f_copy(z)
        rec = (f(x) - x).abs().sum(1).mean()
        idem = (f_copy(fz) - fz).abs().sum(1).mean()
        tight = -(f(fz_copy) - fz_copy).abs().sum(1).mean()
        if clamp is not None:
            tight = torch.tanh(tight / (clamp * rec.detach())) * clamp * rec.detach()
        ref = torch.autograd.grad(w[0] * rec + w[1] * idem + w[2] * tight, list(f.parameters()))
        ours_losses = diff.ign_losses(f, x, z, clamp_ratio=clamp)  # idem and tight_raw: same value, different gradients
        assert float(ours_losses["idem"].detach()) == pytest.approx(float(ours_losses["tight_raw"].detach()), rel=1e-14)
        for got, want in zip(ours, ref):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # frozen_call: same values, no parameter gradients
    xg = x.clone().requires_grad_(True)
    y = diff.frozen_call(f, xg)
    torch.testing.assert_close(y, f(x))
    grads = torch.autograd.grad(y.sum(), [xg, *f.parameters()], allow_unused=True)
    assert grads[0] is not None and all(g is None for g in grads[1:])


def test_ign_identity_trap_and_errors():
    ident = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        ident.weight.fill_(1.0)
        ident.bias.zero_()
    x, z = torch.randn(32, 1, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    for clamp in (None, 1.5):
        losses = diff.ign_losses(ident, x, z, clamp_ratio=clamp)
        assert all(float(v.detach()) == 0.0 for v in losses.values())  # every term vanishes at f = id, with no 0/0 in the clamp
    with pytest.raises(ValueError, match="dist"):
        diff.ign_losses(ident, x, z, dist="l3")
    with pytest.raises(ValueError, match="clamp_ratio"):
        diff.ign_losses(ident, x, z, clamp_ratio=0.0)
    modes = diff.GaussianMixture([0.5, 0.5], [[-1.5], [1.5]], [0.01, 0.01])
    probe = torch.zeros(5, 1, dtype=torch.float64)
    f, hist = diff.train_ign(lambda b, g: modes.sample(b, g), 1, steps=20, batch=32, snapshot_every=10, z_probe=probe)
    assert len(hist["rec"]) == 20 and [s for s, _ in hist["snapshots"]] == [0, 10, 20]
    torch.testing.assert_close(hist["snapshots"][-1][1], f(probe).detach())


def test_train_ign_trains_a_given_net_like_a_hand_written_loop():
    blobs = diff.GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.0]], [0.01, 0.01])

    def bottleneck():  # 2 -> 1 -> 2: an autoencoder that cannot represent the identity of the plane
        torch.manual_seed(3)
        return torch.nn.Sequential(diff.make_mlp(2, 1, hidden=8, depth=1), diff.make_mlp(1, 2, hidden=8, depth=1))

    net = bottleneck()
    f, hist = diff.train_ign(blobs.sample, 2, steps=15, batch=32, lr=3e-3, seed=4, net=net)
    assert f is net and len(hist["rec"]) == 15
    # the reference: the paper's loop written out with a deep copy of f in the frozen slot (not train_ign's code)
    import copy

    ref = bottleneck()
    gen = torch.Generator().manual_seed(4)
    opt = torch.optim.Adam(ref.parameters(), lr=3e-3, betas=(0.5, 0.999))
    for _ in range(15):
        x = blobs.sample(32, gen)
        z = torch.randn(32, 2, generator=gen, dtype=torch.float64)
        frozen = copy.deepcopy(ref).requires_grad_(False)
        fz, fz_frozen = ref(z), frozen(z)
        rec = (ref(x) - x).abs().sum(1).mean()
        tight = -(ref(fz_frozen) - fz_frozen).abs().sum(1).mean()
        loss = 20 * rec + 20 * (frozen(fz) - fz).abs().sum(1).mean() + 2.5 * torch.tanh(tight / (1.5 * rec.detach())) * 1.5 * rec.detach()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for got, want in zip(f.parameters(), ref.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    probe = torch.randn(50, 2, dtype=torch.float64)
    for y in probe[:10]:  # the Jacobian has rank <= 1 at every probed point (a 2 -> 1 -> 2 composition)
        jac = torch.autograd.functional.jacobian(f, y[None])[0, :, 0, :]
        assert torch.linalg.matrix_rank(jac) <= 1 and float(torch.linalg.det(jac).abs()) < 1e-12
    with pytest.raises(TypeError, match="net must be"):
        diff.train_ign(blobs.sample, 2, steps=1, net=lambda y: y)
    with pytest.raises(ValueError, match=r"\(n, d\) outputs"):
        diff.train_ign(blobs.sample, 2, steps=1, net=diff.make_mlp(2, 1, hidden=4, depth=1))
    with pytest.raises(ValueError, match="net must have float64"):
        diff.train_ign(blobs.sample, 2, steps=1, net=diff.make_mlp(2, 2, hidden=4, depth=1).float())
    with pytest.raises(ValueError, match="net must have float64 parameters on device meta"):
        diff.train_ign(blobs.sample, 2, steps=1, net=diff.make_mlp(2, 2, hidden=4, depth=1), device="meta")


def test_sid_losses_and_conversions():
    gen = torch.Generator().manual_seed(4)
    et, ef, eps = (torch.randn(10, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    l1, l2 = diff.sid_losses(et, ef, eps)
    np.testing.assert_allclose(l1.numpy(), ((et - ef) ** 2).sum(1).numpy(), atol=1e-14)
    np.testing.assert_allclose(l2.numpy(), ((et - ef) * (et - eps)).sum(1).numpy(), atol=1e-14)
    assert float(diff.sid_generator_loss(et, ef, eps, lam=1.2)) == pytest.approx(float((l2 - 1.2 * l1).mean()), abs=1e-14)
    x_t, alpha, beta = torch.randn(10, 3, generator=gen, dtype=torch.float64), 0.6, 0.8
    np.testing.assert_allclose(diff.x0_to_eps(x_t, diff.eps_to_x0(x_t, eps, alpha, beta), alpha, beta).numpy(), eps.numpy(), atol=1e-14)
    with pytest.raises(ValueError, match="share a shape"):
        diff.sid_losses(et, ef[:, :2], eps)


def test_linear_gaussian_sid_grads_by_finite_differences():
    # teacher N(mu, sigma^2), student a z + b, one noise level: L1 and L2 are Gaussian moments (written out here)
    mu, sigma, A, B = 1.0, 0.5, 0.8, 0.6
    Q = A**2 * sigma**2 + B**2

    def losses(a, b, a_f, b_f):  # the fake denoiser is optimal for the student (a_f, b_f)
        P_f = A**2 * a_f**2 + B**2
        # eps_phi - eps_psi = c_z z + c_e e + c_0 and eps_phi - e = k_z z + k_e e + k_0 with z, e independent N(0, 1)
        c_z, c_e, c_0 = B * A * a * (1 / Q - 1 / P_f), B**2 * (1 / Q - 1 / P_f), B * A * ((b - mu) / Q - (b - b_f) / P_f)
        k_z, k_e, k_0 = B * A * a / Q, B**2 / Q - 1, B * A * (b - mu) / Q
        return c_z**2 + c_e**2 + c_0**2, c_z * k_z + c_e * k_e + c_0 * k_0

    h = 1e-6
    for a, b in ((0.3, 2.0), (1.4, -0.5)):
        g = diff.linear_gaussian_sid_grads(a, b, mu, sigma, A, B)
        true_da = (losses(a + h, b, a + h, b)[0] - losses(a - h, b, a - h, b)[0]) / (2 * h)
        true_db = (losses(a, b + h, a, b + h)[0] - losses(a, b - h, a, b - h)[0]) / (2 * h)
        np.testing.assert_allclose(g["true"], (true_da, true_db), rtol=1e-6)
        for k, key in enumerate(("l1", "l2")):
            da = (losses(a + h, b, a, b)[k] - losses(a - h, b, a, b)[k]) / (2 * h)
            db = (losses(a, b + h, a, b)[k] - losses(a, b - h, a, b)[k]) / (2 * h)
            np.testing.assert_allclose(g[key], (da, db), rtol=1e-6)
        assert losses(a, b, a, b)[0] == pytest.approx(losses(a, b, a, b)[1], rel=1e-12)  # L1 = L2 at psi*
    with pytest.raises(ValueError, match="sigma"):
        diff.linear_gaussian_sid_grads(1.0, 0.0, 0.0, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="beta_bar"):
        diff.linear_gaussian_sid_grads(1.0, 0.0, 0.0, 1.0, 1.0, 0.0)


def test_linear_gaussian_sid_descent_and_helpers():
    a, b = diff.linear_gaussian_sid_descent(0.2, 2.0, 1.0, 0.5, "sid", steps=1000)
    assert abs(a[-1] - 0.5) + abs(b[-1] - 1.0) < 2e-3
    a, b = diff.linear_gaussian_sid_descent(0.2, 2.0, 1.0, 0.5, "l1", steps=1000)
    assert a[-1] < 0.1 and abs(b[-1]) > 10 and (a > 0).all()
    with pytest.raises(ValueError, match="loss"):
        diff.linear_gaussian_sid_descent(0.2, 2.0, 1.0, 0.5, "l3")
    with pytest.raises(ValueError, match="a0"):
        diff.linear_gaussian_sid_descent(0.0, 2.0, 1.0, 0.5, "sid")
    # W1 by quantiles: a shift by c costs exactly c; exact quantiles cost 0
    gm = diff.two_mode_1d()
    q = (np.arange(1000) + 0.5) / 1000
    assert diff.w1_to_quantiles(gm.icdf(q).numpy(), gm.icdf) == pytest.approx(0, abs=1e-12)
    assert diff.w1_to_quantiles(gm.icdf(q).numpy() + 0.3, gm.icdf) == pytest.approx(0.3, abs=1e-12)
    with pytest.raises(ValueError, match="empty"):
        diff.w1_to_quantiles([], gm.icdf)
    base = diff.ResidualOnBase(lambda x: 2 * x, 1, 1, 8)
    xs = torch.randn(5, 1, dtype=torch.float64)
    torch.testing.assert_close(base(xs), 2 * xs)
    g, snaps = diff.train_sid(gm, "sid", steps=4, batch=16, snapshot_every=2, z_probe=xs)
    assert [s for s, _ in snaps] == [0, 2, 4]
    torch.testing.assert_close(snaps[0][1], xs)  # the generator starts as the identity
    with pytest.raises(ValueError, match="loss"):
        diff.train_sid(gm, "gan")


def test_ddpm_posterior_by_gaussian_conditioning():
    # x_0 fixed; x_{t-1} = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev) e1, x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2:
    # condition the jointly Gaussian pair (x_{t-1}, x_t) on x_t (covariances written out independently)
    abar_prev, beta_t = 0.7, 0.02
    alpha_t = 1 - beta_t
    var_prev = 1 - abar_prev
    var_t = alpha_t * var_prev + beta_t
    cov = math.sqrt(alpha_t) * var_prev
    gain = cov / var_t  # coefficient of x_t in E[x_{t-1} | x_t, x_0]
    a, b, var = diff.ddpm_posterior(abar_prev, beta_t)
    assert float(b) == pytest.approx(gain, rel=1e-12)
    assert float(a) == pytest.approx(math.sqrt(abar_prev) - gain * math.sqrt(alpha_t * abar_prev), rel=1e-12)
    assert float(var) == pytest.approx(var_prev - cov**2 / var_t, rel=1e-12)
    with pytest.raises(ValueError, match="beta_t"):
        diff.ddpm_posterior(0.5, 1.0)
    with pytest.raises(ValueError, match="abar_prev"):
        diff.ddpm_posterior(0.0, 0.1)


_pos = st.floats(0.05, 3.0)
PROPS = settings(max_examples=30, deadline=None, derandomize=True)


@PROPS
@given(a=_pos, b=st.floats(-3, 3), mu=st.floats(-3, 3), sigma=_pos, t=st.floats(0.05, 0.95))
def test_sid_gradient_signs(a, b, mu, sigma, t):
    A, B = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
    g = diff.linear_gaussian_sid_grads(a, b, mu, sigma, A, B)
    P, Q = A**2 * a**2 + B**2, A**2 * sigma**2 + B**2
    assert g["l1"][0] >= 0  # naive L1 never widens the student
    assert float(g["l2"][0]) == pytest.approx(float(g["true"][0]) * P / (P + Q), rel=1e-9, abs=1e-300)
    assert np.sign(g["true"][1]) == np.sign(b - mu)  # the true b-gradient always points at mu
    # lambda = 1: both factors positive, so the SiD gradient has the true gradient's signs
    mix = (g["l2"][0] - g["l1"][0], g["l2"][1] - g["l1"][1])
    assert np.sign(mix[0]) == np.sign(g["true"][0]) and np.sign(mix[1]) == np.sign(g["true"][1])


@PROPS
@given(w=st.floats(0.1, 0.9), m=st.floats(-2, 2), s1=st.floats(0.1, 1.0), s2=st.floats(0.1, 1.0), t=st.floats(0.05, 0.95))
def test_rf_velocity_equals_score_form(w, m, s1, s2, t):
    gm = diff.GaussianMixture([w, 1 - w], [[m], [m + 1.5]], [s1**2, s2**2])
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    from_score = diff.rf_velocity_from_score(lambda y, t_: gm.diffuse(1 - t_, t_).score(y))
    np.testing.assert_allclose(diff.rf_velocity(gm, x, t).numpy(), from_score(x, t).numpy(), atol=1e-9)


@PROPS
@given(c=st.floats(-5, 5), n=st.integers(1, 400))
def test_w1_to_quantiles_charges_a_shift_exactly(c, n):
    gm = diff.two_mode_1d()
    q = (np.arange(n) + 0.5) / n
    assert diff.w1_to_quantiles(gm.icdf(q).numpy() + c, gm.icdf) == pytest.approx(abs(c), abs=1e-9)


# ------------------------------------------------------------------------------ devices
def test_mixture_construction_from_tensors_and_to():
    lists = diff.GaussianMixture([1, 3], [[0.0, 1.0], [2.0, -1.0]], [[0.5, 0.2], [1.0, 2.0]])
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float32)
    tensors = diff.GaussianMixture(torch.tensor([1.0, 3.0]), means, torch.tensor([[0.5, 0.2], [1.0, 2.0]]))
    means += 100  # the mixture keeps its own copy
    moved = tensors.to("cpu")
    x = torch.from_numpy(RNG.normal(size=(7, 2)))
    for m in (tensors, moved):
        assert m.device == torch.device("cpu") and m.means.dtype == torch.float64
        torch.testing.assert_close(m.score(x), lists.score(x), rtol=0, atol=1e-6)  # float32 means: ~1e-7 rounding
    gen = torch.Generator().manual_seed(3)
    a = lists.sample(50, generator=gen)
    b = lists.sample(50, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(a, lists.sample(50, generator=gen)) and torch.equal(a, b)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
def test_mixture_and_samplers_on_cuda_match_cpu():
    m = diff.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, 0.0]], [[[0.2, 0.0], [0.0, 0.2]], [[0.5, 0.1], [0.1, 0.3]]])
    mc = m.to("cuda")
    assert mc.means.is_cuda
    x = torch.from_numpy(RNG.normal(size=(64, 2)))
    xc = x.cuda()
    for name in ("log_prob", "score"):
        torch.testing.assert_close(getattr(mc, name)(xc).cpu(), getattr(m, name)(x), rtol=1e-10, atol=1e-12)
    ab = torch.full((64, 1), 0.6, dtype=torch.float64)
    torch.testing.assert_close(mc.eps_t(xc, ab.cuda(), 0.8 * torch.ones_like(ab).cuda()).cpu(),
                               m.eps_t(x, ab, 0.8 * torch.ones_like(ab)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(diff.rf_velocity(mc, xc, 0.4).cpu(), diff.rf_velocity(m, x, 0.4), rtol=1e-10, atol=1e-12)
    # a CPU generator gives the same draws whichever device the samples live on
    torch.testing.assert_close(mc.sample(100, torch.Generator().manual_seed(1)).cpu(), m.sample(100, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="x is on cpu"):
        mc.score(x)
    sched = diff.vp_cosine()
    score = lambda y, t: (mc if y.is_cuda else m).diffuse(sched.alpha(t), sched.beta(t)).score(y)  # noqa: E731
    for run in (lambda y, g: diff.forward_sde(y, sched, 20, 0.9, generator=g),
                lambda y, g: diff.reverse_sde_sample(score, sched, y, 20, 0.9, generator=g),
                lambda y, g: diff.ode_sample(diff.pf_ode_velocity(score, sched), y, 10, 0.9, 0.0, "rk4")):
        got = run(xc, torch.Generator().manual_seed(2))
        assert got.is_cuda
        torch.testing.assert_close(got.cpu(), run(x, torch.Generator().manual_seed(2)), rtol=1e-8, atol=1e-10)
    one = diff.two_mode_1d()
    assert abs(diff.w1_to_quantiles(one.to("cuda").sample(2000), one.icdf) - diff.w1_to_quantiles(one.sample(2000), one.icdf)) < 0.05


@cuda
def test_trainers_on_cuda_follow_the_cpu_run():
    ring = diff.ring_mixture(4, 1.5, 0.2)

    def pairs(b, g):
        return ring.sample(b, g), torch.randn(b, 2, generator=g, dtype=torch.float64)

    probe = torch.from_numpy(RNG.normal(size=(32, 2)))
    nets = {d: diff.train_velocity_field(pairs, 2, steps=20, batch=64, hidden=16, device=d) for d in ("cpu", "cuda")}
    assert next(nets["cuda"].parameters()).is_cuda
    v = {d: diff.nn_velocity(n)(probe.to(d), 0.5).cpu() for d, n in nets.items()}
    torch.testing.assert_close(v["cuda"], v["cpu"], rtol=1e-6, atol=1e-8)
    ign = {d: diff.train_ign(lambda b, g: ring.sample(b, g), 2, steps=20, batch=64, hidden=16, snapshot_every=10,
                             z_probe=probe, device=d)[1] for d in ("cpu", "cuda")}
    torch.testing.assert_close(ign["cuda"]["snapshots"][-1][1], ign["cpu"]["snapshots"][-1][1], rtol=1e-6, atol=1e-8)
    den = {d: diff.nn_score(diff.train_denoiser(ring.sample, 2, diff.vp_cosine(), steps=20, batch=64, hidden=16, device=d),
                            diff.vp_cosine())(probe.to(d), 0.5).cpu() for d in ("cpu", "cuda")}
    torch.testing.assert_close(den["cuda"], den["cpu"], rtol=1e-6, atol=1e-8)
    gan = {d: diff.train_gan(ring.sample, 2, steps=20, batch=64, hidden=16, device=d)[0] for d in ("cpu", "cuda")}
    with torch.no_grad():
        torch.testing.assert_close(gan["cuda"](probe.cuda()).cpu(), gan["cpu"](probe), rtol=1e-6, atol=1e-8)
    sid = {d: diff.train_sid(diff.two_mode_1d(), steps=10, batch=64, hidden=16, snapshot_every=5, z_probe=probe[:, :1], device=d)[1]
           for d in ("cpu", "cuda")}
    assert not sid["cuda"][-1][1].is_cuda
    torch.testing.assert_close(sid["cuda"][-1][1], sid["cpu"][-1][1], rtol=1e-6, atol=1e-8)


def test_train_denoiser_learns_the_score_and_nn_score_divides_by_beta():
    vp = diff.vp_cosine()
    const = torch.nn.Linear(2, 1, dtype=torch.float64)
    torch.nn.init.zeros_(const.weight)
    torch.nn.init.constant_(const.bias, 0.7)
    x = torch.zeros(3, 1, dtype=torch.float64)
    torch.testing.assert_close(diff.nn_score(const, vp)(x, 0.5), torch.full((3, 1), -0.7 / vp.beta(0.5), dtype=torch.float64))
    data = diff.GaussianMixture([1.0], [[1.0]], [0.25])  # N(1, 0.5^2): the diffused score is linear
    score = diff.nn_score(diff.train_denoiser(data.sample, 1, vp, steps=600, batch=256, hidden=32), vp)
    for t in (0.3, 0.5, 0.8):
        law = data.diffuse(vp.alpha(t), vp.beta(t))
        xs = law.sample(2000, torch.Generator().manual_seed(1))
        want = law.score(xs)
        assert float(((score(xs, t) - want) ** 2).mean().sqrt() / (want**2).mean().sqrt()) < 0.25
    with pytest.raises(ValueError, match="t_min"):
        diff.train_denoiser(data.sample, 1, vp, t_min=1.0)
    with pytest.raises(ValueError, match="^steps must"):  # the message names the trainer's own argument
        diff.train_denoiser(data.sample, 1, vp, steps=0)


def test_train_gan_moves_noise_onto_both_modes():
    modes = diff.GaussianMixture([0.5, 0.5], [[-1.5], [1.5]], [0.01, 0.01])
    G, D, hist = diff.train_gan(modes.sample, 1, steps=400, hidden=32, seed=0)
    assert len(hist["d"]) == len(hist["g"]) == 400 and all(p.grad is not None for p in D.parameters())
    with torch.no_grad():
        out = G(torch.randn(2000, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    near = float(((out.abs() - 1.5).abs() < 0.3).double().mean())
    assert near > 0.35  # raw noise: 2 [Phi(1.8) - Phi(1.2)] = 0.158
    assert 0.25 < float((out > 0).double().mean()) < 0.75
    with pytest.raises(ValueError, match="^steps must"):
        diff.train_gan(modes.sample, 1, steps=-1)


def test_trainers_are_deterministic_under_a_seed():
    ring = diff.ring_mixture(4, 1.5, 0.2)
    probe = torch.from_numpy(RNG.normal(size=(16, 2)))

    def pairs(b, g):
        return ring.sample(b, g), torch.randn(b, 2, generator=g, dtype=torch.float64)

    runs = {
        "velocity": lambda seed: diff.nn_velocity(diff.train_velocity_field(pairs, 2, steps=5, batch=32, hidden=8, seed=seed))(probe, 0.5),
        "denoiser": lambda seed: diff.nn_score(diff.train_denoiser(ring.sample, 2, diff.vp_cosine(), steps=5, batch=32, hidden=8, seed=seed),
                                               diff.vp_cosine())(probe, 0.5),
        "ign": lambda seed: diff.train_ign(ring.sample, 2, steps=5, batch=32, hidden=8, seed=seed, snapshot_every=5, z_probe=probe)[1]["snapshots"][-1][1],
        "gan": lambda seed: diff.train_gan(ring.sample, 2, steps=5, batch=32, hidden=8, seed=seed)[0](probe).detach(),
        "sid": lambda seed: diff.train_sid(ring, steps=5, batch=32, hidden=8, seed=seed, snapshot_every=5, z_probe=probe)[1][-1][1],
    }
    for name, run in runs.items():
        first = run(0)
        assert torch.equal(first, run(0)), name
        assert not torch.equal(first, run(1)), name


# ------------------------------------------------------------------------------ validation (issue 15)
def test_schedule_keeps_the_graph_of_a_tensor_that_requires_grad():
    s = diff.vp_exp(5.0)
    for dtype in (torch.float64, torch.float32):
        t = torch.tensor([0.2, 0.6], dtype=dtype, requires_grad=True)
        a = s.alpha(t)
        assert a.requires_grad and a.dtype == dtype  # not silently detached
        (da,) = torch.autograd.grad(a.sum(), t)
        np.testing.assert_allclose(da.double().numpy(), (-10 * t * torch.exp(-5 * t**2)).detach().double().numpy(), rtol=1e-6)
    t = torch.tensor([0.2, 0.6], dtype=torch.float64, requires_grad=True)
    f, g2 = s.f(t), s.g2(t)  # f = -10 t and g2 = 20 t: d/dt = -10 and 20, through the inner autograd
    np.testing.assert_allclose(f.detach().numpy(), -10 * t.detach().numpy(), atol=1e-12)
    (df,) = torch.autograd.grad(f.sum(), t)
    (dg2,) = torch.autograd.grad(g2.sum(), t)
    np.testing.assert_allclose(df.numpy(), [-10, -10], atol=1e-9)
    np.testing.assert_allclose(dg2.numpy(), [20, 20], atol=1e-8)
    (dl,) = torch.autograd.grad(s.log_snr(t).sum(), t)
    assert torch.isfinite(dl).all()
    assert not s.alpha(torch.tensor([0.3])).requires_grad  # no graph where none was asked for
    with pytest.raises(TypeError, match="t must"):
        s.alpha(np.array([0.5 + 0j]))
    with pytest.raises(TypeError, match="t must"):
        s.alpha(torch.tensor([True]))


def test_logsnr_functions_refuse_t_outside_the_unit_interval():
    for bad in (1.5, -0.1, np.array([0.5, np.nan]), np.array([0.2, 1.2]), torch.tensor([1.2])):
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            diff.logsnr_cosine(bad)
    with pytest.raises(ValueError, match=r"t must lie"):
        diff.logsnr_shifted(1.5, 512)
    with pytest.raises(ValueError, match=r"t must lie"):
        diff.logsnr_interpolated(-1.0, 512)
    with pytest.raises(ValueError, match="logsnr_max"):
        diff.logsnr_cosine(0.5, logsnr_max=math.inf)
    with pytest.raises(ValueError, match="d_low"):
        diff.logsnr_interpolated(0.5, 512, d_low=0)
    with pytest.raises(ValueError, match="image_d"):
        diff.logsnr_shifted(0.5, -64)
    with pytest.raises(ValueError, match="lam"):
        diff.alpha_beta_from_logsnr(np.array([0.0, np.nan]))
    a, b = diff.alpha_beta_from_logsnr(np.array([np.inf, -np.inf]))  # the exact limits, not nan
    np.testing.assert_array_equal(a, [1, 0])
    np.testing.assert_array_equal(b, [0, 1])
    lam = torch.tensor([0.0, 1.0], requires_grad=True)  # a tensor t keeps its graph
    assert diff.logsnr_cosine(torch.tensor([0.3], requires_grad=True)).requires_grad
    assert diff.alpha_beta_from_logsnr(lam)[0].requires_grad


def test_shift_vp_refuses_a_zero_over_zero_snr():
    with pytest.raises(ValueError, match="both be 0"):
        diff.shift_vp(0, 0, 2.0)
    with pytest.raises(ValueError, match="both be 0"):
        diff.shift_vp(np.array([0.6, 0.0]), np.array([0.8, 0.0]), 2.0)
    with pytest.raises(ValueError, match="alpha_lo"):
        diff.shift_vp(np.nan, 0.5, 2.0)
    with pytest.raises(ValueError, match="beta_lo"):
        diff.shift_vp(0.5, -0.1, 2.0)
    with pytest.raises(ValueError, match="s must be finite"):
        diff.shift_vp(0.6, 0.8, math.inf)
    assert diff.shift_vp(0.0, 1.0, 4) == (0.0, 1.0)  # SNR 0 stays 0


def test_w1_distances_refuse_2d_empty_and_nan_samples():
    gm = diff.two_mode_1d()

    def cdf(z):
        return gm.cdf(z[:, None]).numpy()

    col = gm.sample(500, torch.Generator().manual_seed(0)).numpy()  # (n, 1): one-dimensional data
    assert diff.w1_to_cdf(col, cdf, -5, 5) == diff.w1_to_cdf(col[:, 0], cdf, -5, 5)
    with pytest.raises(ValueError, match="one-dimensional"):
        diff.w1_to_cdf(np.zeros((10, 2)), cdf, -5, 5)
    with pytest.raises(ValueError, match="one-dimensional"):
        diff.w1_to_quantiles(np.zeros((10, 2)), gm.icdf)
    with pytest.raises(ValueError, match="empty"):
        diff.w1_to_cdf(np.zeros(0), cdf, -5, 5)
    with pytest.raises(ValueError, match="finite"):
        diff.w1_to_cdf(np.array([0.0, np.nan]), cdf, -5, 5)
    with pytest.raises(ValueError, match="finite"):
        diff.w1_to_quantiles(np.array([0.0, -np.inf]), gm.icdf)
    with pytest.raises(ValueError, match="lo < hi"):
        diff.w1_to_cdf(col, cdf, 5, -5)
    with pytest.raises(ValueError, match="n_grid"):
        diff.w1_to_cdf(col, cdf, -5, 5, n_grid=1)
    with pytest.raises(ValueError, match="cdf_fn must return"):
        diff.w1_to_cdf(col, lambda z: cdf(z)[:10], -5, 5)


def test_self_consuming_gaussian_refuses_a_singular_covariance_fit():
    with pytest.raises(ValueError, match=r"n \+ n_real > dim"):
        diff.self_consuming_gaussian(3, 2, 5, dim=3)
    with pytest.raises(ValueError, match=r"n \+ n_real > dim"):
        diff.self_consuming_gaussian(2, 2, 5, dim=4, n_real=2)
    run = diff.self_consuming_gaussian(2, 2, 5, dim=3, n_real=2)  # 4 points in 3-D: full rank
    assert np.isfinite(run["var"]).all()
    with pytest.raises(ValueError, match="n_real"):
        diff.self_consuming_gaussian(5, 2, 5, n_real=-1)
    with pytest.raises(ValueError, match="lam"):
        diff.self_consuming_gaussian(5, 2, 5, lam=math.inf)


def test_self_consuming_categorical_refuses_zero_tokens_and_bad_p0():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="^n must"):
            diff.self_consuming_categorical(np.ones(3), bad, 2)
    with pytest.raises(ValueError, match="generations"):
        diff.self_consuming_categorical(np.ones(3), 10, 0)
    with pytest.raises(ValueError, match="p0"):
        diff.self_consuming_categorical(np.array([0.5, np.nan]), 10, 2)
    with pytest.raises(ValueError, match="temperature"):
        diff.self_consuming_categorical(np.ones(3), 10, 2, temperature=math.inf)  # would revive lost tokens (0^0 = 1)
    cold = diff.self_consuming_categorical(np.array([0.5, 0.3, 0.2]), 10, 3, temperature=1e-4)  # p^(1/T) underflows
    assert np.isfinite(cold["p"]).all() and cold["support"][-1] == 1 and cold["p"][-1, 0] == 1


def test_schedule_and_sampler_parameters_are_checked():
    with pytest.raises(ValueError, match="c must be finite"):
        diff.vp_exp(math.inf)
    for t_max in (0.0, 1.0, math.nan):
        with pytest.raises(ValueError, match="t_max"):
            diff.vp_cosine(t_max)
    with pytest.raises(ValueError, match="sigma_max"):
        diff.ve_geometric(0.01, math.inf)
    with pytest.raises(ValueError, match="T must"):
        diff.ddpm_discrete(T=0)
    with pytest.raises(ValueError, match="t_max"):
        diff.Schedule(lambda t: t, lambda t: t, t_max=2.0)
    vp, x = diff.vp_exp(), torch.zeros(4, 1, dtype=torch.float64)
    for t_end in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="t_end"):
            diff.forward_sde(x, vp, 3, t_end=t_end)
    with pytest.raises(ValueError, match="t_end"):  # would step past t = 0 unseen
        diff.reverse_sde_sample(lambda y, t: y, vp, x, 1, t_start=0.5, t_end=-0.5)
    with pytest.raises(ValueError, match="t_start"):
        diff.reverse_sde_sample(lambda y, t: y, vp, x, 1, t_start=1.5, t_end=0.5)
    with pytest.raises(TypeError, match="schedule"):
        diff.forward_sde(x, "vp", 3)
    with pytest.raises(TypeError, match="x0"):
        diff.forward_sde(np.zeros((4, 1)), vp, 3)
    with pytest.raises(ValueError, match="differ"):
        diff.ode_sample(lambda y, t: y, x, 3, 0.5, 0.5)
    with pytest.raises(ValueError, match="t_end must be finite"):
        diff.ode_sample(lambda y, t: y, x, 3, 1.0, math.nan)
    with pytest.raises(TypeError, match="velocity_fn"):
        diff.ode_sample(None, x, 3)
    net = torch.nn.Linear(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="beta_t = 0"):  # -eps / 0 would be an infinite score
        diff.nn_score(net, vp)(x, 0.0)
    with pytest.raises(ValueError, match="^batch must"):
        diff.train_denoiser(diff.two_mode_1d().sample, 1, vp, batch=0)
    with pytest.raises(ValueError, match="data_sampler must return tensors of shape"):
        diff.train_denoiser(lambda b, g: torch.zeros(b, 2, dtype=torch.float64), 1, vp, steps=1)


def test_mixture_inputs_are_checked():
    with pytest.raises(ValueError, match="weights must be finite"):
        diff.GaussianMixture([math.nan, 1.0], [[0.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="means must be finite"):
        diff.GaussianMixture([1.0], [[math.inf]], [1.0])
    with pytest.raises(ValueError, match="symmetric"):  # eigh would silently read one triangle only
        diff.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [-0.5, 1.0]]])
    with pytest.raises(ValueError, match="means must have shape"):
        diff.GaussianMixture([1.0], np.zeros((1, 2, 2)), [1.0])
    with pytest.raises(ValueError, match="means must have shape"):
        diff.GaussianMixture([1.0, 1.0], np.zeros((2, 0)), [1.0, 1.0])
    gm = diff.two_mode_1d()
    with pytest.raises(ValueError, match="x must be finite"):
        gm.score(torch.tensor([[0.0], [math.nan]], dtype=torch.float64))
    with pytest.raises(ValueError, match="both be 0"):
        gm.diffuse(0.0, 0.0)
    with pytest.raises(ValueError, match="alpha must be finite"):
        gm.diffuse(math.nan, 1.0)
    with pytest.raises(ValueError, match="alpha must not be 0"):
        gm.posterior_mean(torch.zeros(2, 1, dtype=torch.float64), 0.0, 1.0)
    with pytest.raises(ValueError, match="^n must"):
        gm.sample(0)
    x = torch.zeros(3, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="alpha must be a tensor of shape"):
        gm.score_t(x, torch.ones(3, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="both be 0"):
        gm.score_t(x, torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))
    for q in (1.5, -0.1, math.nan):  # bisection would return the bracket's end silently
        with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
            gm.icdf(np.array([0.5, q]))
    ends = gm.icdf(np.array([0.0, 0.5, 1.0]))
    assert ends[0] == -math.inf and ends[2] == math.inf and math.isfinite(float(ends[1]))
    assert gm.icdf(0.3).shape == () and float(gm.icdf(0.3)) == pytest.approx(float(gm.icdf(np.array([0.3]))[0]))
    with pytest.raises(ValueError, match="stds"):
        diff.two_mode_1d(stds=(-0.3, 0.5))  # would be squared into a valid variance
    with pytest.raises(ValueError, match="^k must"):
        diff.ring_mixture(0)
    with pytest.raises(ValueError, match="std must be positive"):
        diff.ring_mixture(4, 2.0, -0.1)
    data = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="beta must be positive"):
        diff.empirical_score(torch.zeros(2, 2, dtype=torch.float64), data, 1.0, 0.0)
    with pytest.raises(ValueError, match="data must be a non-empty"):
        diff.empirical_score(torch.zeros(2, 2, dtype=torch.float64), data[:0], 1.0, 0.5)  # softmax of nothing: a silent 0
    with pytest.raises(ValueError, match="same dimension"):
        diff.empirical_score(torch.zeros(2, 1, dtype=torch.float64), data, 1.0, 0.5)  # would broadcast silently


def test_metrics_pooling_and_nets_refuse_bad_input():
    a = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="x must be a non-empty"):
        diff.mmd_rbf(a[:0], a)  # mean of nothing: nan
    with pytest.raises(ValueError, match="same dimension"):
        diff.mmd_rbf(a, a[:, :1])
    with pytest.raises(ValueError, match="bandwidth must be finite"):
        diff.mmd_rbf(a, a, bandwidth=math.inf)  # every kernel value 1: a silent 0
    with pytest.raises(ValueError, match="y must be finite"):
        diff.mmd_rbf(a, a.clone().fill_(math.nan))
    ints = torch.tensor([[0, 1], [2, 3]])
    assert diff.mmd_rbf(ints, ints + 1) == pytest.approx(diff.mmd_rbf(ints.double(), ints.double() + 1))
    with pytest.raises(ValueError, match="centers must be a non-empty"):
        diff.mode_coverage(a, a[:0], 0.5)
    with pytest.raises(ValueError, match="x must be a non-empty"):
        diff.mode_coverage(a[:0], a, 0.5)
    with pytest.raises(ValueError, match="radius must be finite"):
        diff.mode_coverage(a, a, math.inf)
    with pytest.raises(ValueError, match="x1 must be a non-empty"):
        diff.straightness(lambda x, t: x, a[:0])
    img = torch.arange(16).reshape(4, 4)
    torch.testing.assert_close(diff.avg_pool(img, 2), diff.avg_pool(img.double(), 2))  # integers pooled in float64
    with pytest.raises(ValueError, match="two"):
        diff.avg_pool(np.ones(8), 2)
    with pytest.raises(TypeError, match="x must be a numpy array"):
        diff.avg_pool([[1.0, 2.0], [3.0, 4.0]], 1)
    with pytest.raises(ValueError, match="scales must not be empty"):
        diff.multiscale_mse(np.ones((4, 4)), np.zeros((4, 4)), scales=())
    with pytest.raises(TypeError, match="both"):
        diff.multiscale_mse(np.ones((4, 4)), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="finite"):
        diff.multiscale_mse(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="in_dim"):
        diff.make_mlp(0, 1)
    with pytest.raises(ValueError, match="depth"):
        diff.make_mlp(2, 1, depth=-1)
    assert len(diff.make_mlp(2, 1, depth=0)) == 1  # depth 0: one linear layer


def test_flow_ign_and_sid_inputs_are_checked():
    ring = diff.ring_mixture(4)
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="t must be finite"):
        diff.rf_velocity(ring, x, math.nan)
    with pytest.raises(TypeError, match="mixture"):
        diff.rf_velocity("ring", x, 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\)"):
        diff.rf_velocity_from_score(lambda y, t: y)(x, -0.5)
    with pytest.raises(ValueError, match="pair_sampler"):
        diff.train_velocity_field(lambda b, g: torch.zeros(b, 2), 2, steps=1)
    f = diff.make_mlp(2, 2, hidden=4, depth=1)
    with pytest.raises(ValueError, match="clamp_ratio must be finite"):
        diff.ign_losses(f, x, x, clamp_ratio=math.inf)  # tanh(r / inf) * inf = nan
    with pytest.raises(ValueError, match="x must be a non-empty"):
        diff.ign_losses(f, x[:0], x)
    with pytest.raises(ValueError, match=r"\(n, d\) outputs"):
        diff.ign_losses(diff.make_mlp(2, 1, hidden=4, depth=1), x, x)  # (n, 1) - (n, 2) would broadcast
    losses = diff.ign_losses(f, x, x)
    with pytest.raises(ValueError, match="weights must be three"):
        diff.ign_total_loss(losses, (1.0, 2.0))
    with pytest.raises(ValueError, match=r"weights\[2\] must be finite"):
        diff.ign_total_loss(losses, (1.0, 2.0, math.nan))
    with pytest.raises(ValueError, match="snapshot_every"):
        diff.train_ign(ring.sample, 2, steps=1, snapshot_every=-1)
    with pytest.raises(ValueError, match="^lr must"):
        diff.train_gan(ring.sample, 2, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="alpha must not be 0"):
        diff.eps_to_x0(x, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="beta must not be 0"):
        diff.x0_to_eps(x, x, torch.ones(3, 1), torch.tensor([[0.5], [0.0], [0.5]]))
    import sympy as sp

    A, B, xt, m = sp.symbols("A B x_t m", positive=True)  # symbolic arguments still pass
    assert sp.simplify(diff.eps_to_x0(xt, diff.x0_to_eps(xt, m, A, B), A, B) - m) == 0
    e = torch.zeros(0, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="at least one sample"):
        diff.sid_generator_loss(e, e, e)
    with pytest.raises(ValueError, match="lam must be finite"):
        diff.sid_generator_loss(x, x, x, lam=math.nan)
    with pytest.raises(ValueError, match="sigma must be finite"):
        diff.linear_gaussian_sid_grads(1.0, 0.0, 0.0, math.inf, 0.5, 0.5)
    with pytest.raises(ValueError, match="alpha_bar must be finite"):
        diff.linear_gaussian_sid_grads(1.0, 0.0, 0.0, 1.0, math.nan, 0.5)
    for t_range in ((0.0, 0.5), (0.9, 0.1), (0.5, 1.5)):  # t = 0 has beta_bar = 0; a reversed range is no range
        with pytest.raises(ValueError, match="t_range"):
            diff.linear_gaussian_sid_descent(0.2, 2.0, 1.0, 0.5, "sid", steps=3, t_range=t_range)
    with pytest.raises(ValueError, match="^lr must"):
        diff.linear_gaussian_sid_descent(0.2, 2.0, 1.0, 0.5, "sid", steps=3, lr=-0.1)
    with pytest.raises(ValueError, match="t_range"):
        diff.train_sid(diff.two_mode_1d(), steps=1, t_range=(0.8, 0.2))
    with pytest.raises(ValueError, match="fake_steps"):
        diff.train_sid(diff.two_mode_1d(), steps=1, fake_steps=-1)
    with pytest.raises(TypeError, match="teacher"):
        diff.train_sid("teacher", steps=1)


def test_every_public_name_is_re_exported_from_its_module():
    import importlib

    modules = ("schedules", "log_snr", "multiscale", "mixtures", "samplers", "nets", "denoiser", "metrics",
               "rectified_flow", "ign", "sid", "self_consuming")
    seen = []
    for name in modules:
        mod = importlib.import_module(f"kexue_lite.diffusion.{name}")
        assert mod.__doc__ and "notebook" in mod.__doc__, name  # each module names the notebooks it serves
        for public in mod.__all__:
            assert getattr(diff, public) is getattr(mod, public)
        seen += mod.__all__
    assert sorted(seen) == sorted(diff.__all__) and len(seen) == len(set(seen)) == 55


def test_scalar_parameters_refuse_tensors_that_require_grad():
    # scalar parameters are used as Python floats: a tensor with a graph is refused rather than silently detached
    gm = diff.two_mode_1d()
    with pytest.raises(TypeError, match="alpha must be a plain number"):
        gm.diffuse(torch.tensor(0.6, dtype=torch.float64, requires_grad=True), 0.8)
    with pytest.raises(TypeError, match="lam must be a plain number"):
        x = torch.zeros(2, 1, dtype=torch.float64)
        diff.sid_generator_loss(x, x, x, lam=torch.tensor(1.2, requires_grad=True))
    law = gm.diffuse(torch.tensor(0.6, dtype=torch.float64), np.float64(0.8))  # plain 0-d tensors and numpy scalars are fine
    torch.testing.assert_close(law.means, gm.diffuse(0.6, 0.8).means)
    with pytest.raises(TypeError, match="beta must be a real number"):
        gm.diffuse(0.6, True)


def test_mmd_rbf_to_a_fixed_sample_equals_mmd_rbf():
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(300, 2, dtype=torch.float64, generator=gen)
    to_y = diff.mmd_rbf_to(y, bandwidth=0.5)
    for shift in (0.0, 0.5, 2.0):
        x = torch.randn(200, 2, dtype=torch.float64, generator=gen) + shift
        assert to_y(x) == diff.mmd_rbf(x, y, bandwidth=0.5)
    with pytest.raises(ValueError, match="same dimension"):
        to_y(torch.zeros(3, 1, dtype=torch.float64))


def test_train_velocity_field_is_adam_with_torchs_cosine_schedule_bit_for_bit():
    """The trainer's own cosine decay equals torch.optim.Adam + CosineAnnealingLR(opt, steps) exactly."""
    ring = diff.ring_mixture(4, 1.5, 0.2)

    def pairs(b, g):
        return torch.randn(b, 2, generator=g, dtype=torch.float64), ring.sample(b, g)

    steps, batch, lr = 30, 64, 2e-3
    net = diff.train_velocity_field(pairs, 2, steps=steps, batch=batch, lr=lr, hidden=16, seed=3)
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)  # what the trainer does first (its batches come from a generator seeded alike)
    ref = diff.make_mlp(3, 2, hidden=16, depth=2)
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x0, x1 = pairs(batch, gen)
        t = torch.rand((batch, 1), generator=gen, dtype=torch.float64)
        loss = ((ref(torch.cat([(1 - t) * x0 + t * x1, t], 1)) - (x1 - x0)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_sid_descent_follows_the_closed_form_gradients_step_by_step():
    """The descent's plain-float loop equals a step-by-step loop over linear_gaussian_sid_grads (numpy), to rounding,
    including where the path diverges; a0 = 1e100 overflows the float path (P**2), so numpy's fallback steps: finite l2
    gradients go on, the sid ones are nan and end the path at step 1, as in the numpy loop."""
    for a0, b0, loss, lam in ((1.5, -1.0, "sid", 1.2), (1.5, -1.0, "sid", 2.0), (0.2, 2.0, "l1", 0.0), (3.0, 1.0, "true", 0.0),
                              (1e100, -1.0, "l2", 0.0), (1e100, -1.0, "sid", 1.2)):
        a_path, b_path = diff.linear_gaussian_sid_descent(a0, b0, 1.0, 0.5, loss, lam=lam, steps=300, seed=4)
        ts = np.random.default_rng(4).uniform(0.1, 0.9, size=300)
        log_a, b, ref_a, ref_b = math.log(a0), b0, [a0], [b0]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for t in ts:
                a = math.exp(log_a)
                g = diff.linear_gaussian_sid_grads(a, b, 1.0, 0.5, math.cos(math.pi * t / 2), math.sin(math.pi * t / 2))
                ga, gb = (g["l2"][0] - lam * g["l1"][0], g["l2"][1] - lam * g["l1"][1]) if loss == "sid" else g[loss]
                log_a, b = log_a - 0.05 * a * float(ga), b - 0.05 * float(gb)
                if not (math.isfinite(log_a) and log_a < 700 and math.isfinite(b)):
                    break
                ref_a.append(math.exp(log_a))
                ref_b.append(b)
        ref_a += [math.nan] * (301 - len(ref_a))
        ref_b += [math.nan] * (301 - len(ref_b))
        np.testing.assert_allclose(a_path, ref_a, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(b_path, ref_b, rtol=1e-10, atol=1e-12, equal_nan=True)
