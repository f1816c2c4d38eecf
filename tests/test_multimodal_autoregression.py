"""Unit and property tests of kexue_lite.multimodal.autoregression (notebook multimodal-autoregression, article 10197)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_lite import diffusion
from kexue_lite import multimodal as mm

PROPS = settings(max_examples=30, deadline=None, derandomize=True)


def _gauss(z, m, var):
    return np.exp(-(z - m) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)


# ------------------------------------------------------------------------------ DDPM posterior, target noise
def test_ddpm_posterior_is_reexported_not_reimplemented():
    assert mm.ddpm_posterior is diffusion.ddpm_posterior
    assert "ddpm_posterior" in mm.autoregression.__all__


def test_target_noise_ratio_hand_values():
    # R = (1 - abar_prev) / (abar_prev beta): 0.5 / (0.5 * 0.1) = 10; abar_prev = 1 gives 0 (x_{t-1} = x_0)
    assert mm.target_noise_ratio(0.5, 0.1) == pytest.approx(10.0, rel=1e-12)
    assert mm.target_noise_ratio(1.0, 0.3) == 0.0
    assert mm.target_noise_ratio(0.25, 0.5) == pytest.approx(0.75 / 0.125, rel=1e-12)


@PROPS
@given(st.floats(1e-3, 1.0), st.floats(1e-3, 0.999))
def test_target_noise_ratio_matches_posterior_variances(abar_prev, beta):
    """R_t = beta_tilde / (a^2 Var(x_0 | x_t)) with Var(x_0 | x_t) = 1 - abar_t for x_0 ~ N(0, 1)."""
    a, b, bt = diffusion.ddpm_posterior(abar_prev, beta)
    abar_t = abar_prev * (1 - beta)
    direct = bt / (a**2 * (1 - abar_t))
    assert mm.target_noise_ratio(abar_prev, beta) == pytest.approx(direct, rel=1e-9, abs=1e-12)


def test_target_noise_ratio_monte_carlo():
    """Var of the x_{t-1}-target estimator over the x_0-target one is 1 + R_t (an independent simulation)."""
    rng = np.random.default_rng(0)
    abar_prev, beta = 0.6, 0.05
    a, b, bt = diffusion.ddpm_posterior(abar_prev, beta)
    abar_t = abar_prev * (1 - beta)
    reps, n = 4000, 100
    x0 = rng.standard_normal((reps, n))
    xt = np.sqrt(abar_t) * x0 + np.sqrt(1 - abar_t) * rng.standard_normal((reps, n))
    xp = a * x0 + b * xt + np.sqrt(bt) * rng.standard_normal((reps, n))
    ss = (xt * xt).sum(1)
    ratio = ((xt * xp).sum(1) / ss).var() / ((a * (xt * x0).sum(1) / ss + b).var())
    assert ratio == pytest.approx(1 + mm.target_noise_ratio(abar_prev, beta), rel=0.08)


def test_target_noise_ratio_dtypes_and_broadcasting():
    r32 = mm.target_noise_ratio(np.float32([0.9, 0.5]), np.float32(0.02))
    r64 = mm.target_noise_ratio(np.array([0.9, 0.5]), 0.02)
    assert r32.shape == (2,) and np.allclose(r32, r64, rtol=1e-6)


@pytest.mark.parametrize("abar_prev, beta, err", [
    (0.5, 0.0, ValueError), (0.5, 1.0, ValueError), (0.0, 0.1, ValueError), (1.5, 0.1, ValueError),
    (np.nan, 0.1, ValueError), (0.5, np.inf, ValueError), ("a", 0.1, TypeError), (0.5, True, TypeError),
])
def test_target_noise_ratio_errors(abar_prev, beta, err):
    with pytest.raises(err):
        mm.target_noise_ratio(abar_prev, beta)


# ------------------------------------------------------------------------------ the cosine schedule
def test_cosine_abar():
    assert np.allclose(mm.cosine_abar(1), [1.0, 1e-5], rtol=1e-12, atol=1e-18)
    ab = mm.cosine_abar(2)
    assert ab[0] == 1.0 and ab[1] == pytest.approx(0.5, abs=1e-5) and ab[2] == pytest.approx(1e-5, rel=1e-9)
    for T in (50, 1024, 4096):  # strictly decreasing: every beta_t in (0, 1), even where cos^2 < clip
        ab = mm.cosine_abar(T)
        beta = 1 - ab[1:] / ab[:-1]
        assert np.all(np.diff(ab) < 0) and np.all((beta > 0) & (beta < 1))
        assert np.abs(ab - np.clip(np.cos(np.pi * np.arange(T + 1) / (2 * T)) ** 2, 1e-5, 1)).max() <= 1e-5
    # the hard clip the rescaling replaces: its last step vanishes (beta_T = 0) from T = 497 on, not before
    # (sin^2(pi / 2T) < 1e-5 <=> T > pi / (2 asin(sqrt(1e-5))) = 496.7)
    assert 496 < np.pi / (2 * np.arcsin(np.sqrt(1e-5))) < 497
    for T, vanishes in ((496, False), (497, True), (512, True)):
        hard = np.clip(np.cos(np.pi * np.arange(T + 1) / (2 * T)) ** 2, 1e-5, 1)
        assert (1 - hard[-1] / hard[-2] == 0) == vanishes
        assert 1 - mm.cosine_abar(T)[-1] / mm.cosine_abar(T)[-2] > 0.4  # ~ 1 - 1 / (1 + 1e5 sin^2) ~ 0.5
    for bad, err in ((0, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(err):
            mm.cosine_abar(bad)
    with pytest.raises(ValueError):
        mm.cosine_abar(4, clip=0.0)


# ------------------------------------------------------------------------------ the reverse conditional
@pytest.mark.parametrize("T, t, x", [(4, 1, 0.3), (4, 3, -1.1), (16, 7, 0.0), (2, 2, 2.0)])
def test_reverse_conditional_matches_bayes_on_a_grid(T, t, x):
    """Independent route: prior(x_{t-1}) * N(x_t; sqrt(alpha) x_{t-1}, beta), normalised numerically."""
    abar = 1e-5 + (1 - 1e-5) * np.cos(np.pi * np.arange(T + 1) / (2 * T)) ** 2
    alpha = abar[t] / abar[t - 1]
    y = np.linspace(-6, 6, 120_001)
    v = abar[t - 1] * 0.01 + 1 - abar[t - 1]
    post = (0.3 * _gauss(y, -np.sqrt(abar[t - 1]) * 1.0, v) + 0.7 * _gauss(y, np.sqrt(abar[t - 1]) * 0.5, v)) \
        * _gauss(x, np.sqrt(alpha) * y, 1 - alpha)
    post /= np.trapezoid(post, y)
    w, m, var = mm.reverse_conditional(T, t, x, s0=0.1, modes=(-1.0, 0.5), weights=(0.3, 0.7))
    mine = (w[:, None] * _gauss(y[None, :], m[:, None], var)).sum(0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(mine - post).max() < 1e-6 * post.max() + 1e-9


def test_reverse_conditional_shapes_and_first_step():
    w, m, var = mm.reverse_conditional(8, 3, np.zeros((4, 5)))
    assert w.shape == m.shape == (4, 5, 2) and isinstance(var, float)
    # T = 1: abar_1 = 1e-5, so x_1 carries almost nothing and the reverse step is (almost) the data
    w, m, var = mm.reverse_conditional(1, 1, 0.7)
    assert np.allclose(w, 0.5, atol=3e-3) and np.allclose(m, [-1, 1], atol=1e-4) and var == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("kwargs, err", [
    (dict(T=0, t=1), ValueError), (dict(T=4, t=0), ValueError), (dict(T=4, t=5), ValueError), (dict(T=4.0, t=1), TypeError),
    (dict(T=4, t=1, s0=0.0), ValueError), (dict(T=4, t=1, s0=np.nan), ValueError),
    (dict(T=4, t=1, weights=(0.5, 0.6)), ValueError), (dict(T=4, t=1, weights=(1.0,)), ValueError),
    (dict(T=4, t=1, modes=()), ValueError), (dict(T=4, t=1, schedule="linear"), ValueError),
    (dict(T=4, t=1, x_t=np.nan), ValueError), (dict(T=4, t=1, x_t="a"), TypeError),
])
def test_reverse_conditional_errors(kwargs, err):
    kwargs = {"x_t": 0.0, **kwargs}
    with pytest.raises(err):
        mm.reverse_conditional(**kwargs)


# ------------------------------------------------------------------------------ the reverse-step KL
def test_reverse_step_kl_single_step_closed_form():
    """T = 1: the reverse step is the data; KL(mixture of separated modes || N(0, 1 + s0^2)) in closed form."""
    closed = 0.5 * math.log((1 + 0.01) / 0.01) - math.log(2)
    assert mm.reverse_step_kl(1)[0] == pytest.approx(closed, abs=2e-3)


def test_reverse_step_kl_gaussian_data_is_zero():
    """One Gaussian mode: every reverse step is exactly Gaussian."""
    kl = mm.reverse_step_kl(8, s0=0.7, modes=(0.3,), weights=(1.0,))
    assert kl.shape == (8,) and np.all(np.abs(kl) < 1e-10)


def test_reverse_step_kl_against_a_two_dimensional_grid():
    """Independent brute force on a fixed (x_{t-1}, x_t) grid, no mixture algebra."""
    T = 2
    abar = mm.cosine_abar(T)
    y, x = np.linspace(-6, 6, 2001), np.linspace(-6, 6, 601)
    dy, dx = y[1] - y[0], x[1] - x[0]
    lib = mm.reverse_step_kl(T)
    for t in (1, 2):
        alpha = abar[t] / abar[t - 1]
        v = abar[t - 1] * 0.01 + 1 - abar[t - 1]
        prior = 0.5 * _gauss(y, -np.sqrt(abar[t - 1]), v) + 0.5 * _gauss(y, np.sqrt(abar[t - 1]), v)
        joint = prior[None, :] * _gauss(x[:, None], np.sqrt(alpha) * y[None, :], 1 - alpha)
        qx = joint.sum(1) * dy
        cond = joint / qx[:, None]
        mean = (cond * y).sum(1) * dy
        var = (cond * y**2).sum(1) * dy - mean**2
        ent = -(cond * np.log(np.maximum(cond, 1e-300))).sum(1) * dy
        brute = float((qx * (0.5 * np.log(2 * np.pi * np.e * var) - ent)).sum() * dx)
        assert lib[t - 1] == pytest.approx(brute, abs=1e-7)


def test_reverse_step_kl_decreases_with_T_and_is_nonnegative():
    maxes = [mm.reverse_step_kl(T, nx=101, ng=401).max() for T in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(maxes, maxes[1:]))
    assert np.all(mm.reverse_step_kl(16) >= 0)


@pytest.mark.parametrize("kwargs, err", [
    (dict(T=0), ValueError), (dict(T=1.5), TypeError), (dict(T=2, nx=2), ValueError), (dict(T=2, ng=1), ValueError),
    (dict(T=2, s0=-1.0), ValueError), (dict(T=2, modes=(0.0, 1.0), weights=(1.0,)), ValueError),
    (dict(T=2, schedule="cos"), ValueError), (dict(T=2, modes=(np.inf, 1.0)), ValueError),
])
def test_reverse_step_kl_errors(kwargs, err):
    with pytest.raises(err):
        mm.reverse_step_kl(**kwargs)


# ------------------------------------------------------------------------------ the mask
@pytest.mark.parametrize("P, T, n_text", [(1, 1, 0), (4, 3, 0), (4, 3, 2), (7, 5, 3), (3, 1, 4)])
def test_noisy_patch_mask_structure(P, T, n_text):
    mask = mm.noisy_patch_mask(P, T, n_text)
    n = P * T + n_text
    assert mask.shape == (n, n) and mask.dtype == bool
    assert np.all(np.tril(np.ones((n, n), dtype=bool))[mask])  # causal
    assert int(mask.sum()) == T * P * (P + 1) // 2 + n_text * P + n_text * (n_text + 1) // 2
    for i, j in itertools.product(range(P * T), range(P * T)):
        pi, pj, clean_j = i // T, j // T, j % T == T - 1
        assert mask[i, j] == (i == j or (clean_j and pj < pi))
    for i in range(P * T, n):
        assert all(mask[i, j] == (j % T == T - 1) for j in range(P * T))


def test_noisy_patch_mask_density_ratio():
    for P, T in ((16, 2), (16, 10), (64, 10)):
        m = mm.noisy_patch_mask(P, T)
        assert m.sum() / (P * T * (P * T + 1) / 2) == pytest.approx((P + 1) / (P * T + 1), rel=1e-12)


@pytest.mark.parametrize("args, err", [((0, 3), ValueError), ((2, 0), ValueError), ((2, 3, -1), ValueError),
                                       ((2.0, 3), TypeError), ((2, 3, True), TypeError)])
def test_noisy_patch_mask_errors(args, err):
    with pytest.raises(err):
        mm.noisy_patch_mask(*args)


# ------------------------------------------------------------------------------ scan orders
def _cells(order, n):
    return np.array([divmod(i, n) for i in order])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_scan_orders_are_permutations_with_their_steps(n):
    for kind in mm.SCAN_KINDS:
        assert sorted(mm.scan_order(n, kind)) == list(range(n * n))
    assert mm.scan_order(n, "raster") == list(range(n * n))
    assert mm.scan_order(n, "column") == list(np.arange(n * n).reshape(n, n).T.ravel())
    for kind in ("snake", "spiral"):  # every step goes to a 4-neighbour
        rc = _cells(mm.scan_order(n, kind), n)
        assert np.all(np.abs(np.diff(rc, axis=0)).sum(1) == 1)
    rc = _cells(mm.scan_order(n, "zigzag"), n)  # every step goes to an 8-neighbour
    assert np.all(np.abs(np.diff(rc, axis=0)).max(1) == 1)


def test_zigzag_is_the_standard_4x4_scan():
    """H.264's 4x4 frame zigzag scan (the JPEG pattern on a 4x4 block)."""
    assert mm.scan_order(4, "zigzag") == [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]


def test_spiral_starts_in_the_centre():
    assert mm.scan_order(5, "spiral")[0] == 12 and mm.scan_order(3, "spiral")[0] == 4
    assert mm.scan_order(4, "spiral")[0] in (5, 6, 9, 10) and mm.scan_order(4, "spiral")[-1] == 0


def test_scan_order_random_and_errors():
    assert mm.scan_order(4, "random", seed=3) == mm.scan_order(4, "random", seed=3) != mm.scan_order(4, "random", seed=4)
    with pytest.raises(ValueError):
        mm.scan_order(4, "hilbert")
    with pytest.raises(ValueError):
        mm.scan_order(0, "raster")
    with pytest.raises(TypeError):
        mm.scan_order(4.0, "raster")
    with pytest.raises(ValueError):
        mm.scan_order(4, "random", seed=-1)


# ------------------------------------------------------------------------------ the Ising image and the chain rule
def test_ising_joint_against_direct_enumeration():
    n, Jh, Jv = 3, 0.7, -0.4
    X, p = mm.ising_joint(n, Jh, Jv)
    assert X.shape == (512, 9) and X.dtype == np.uint8 and p.sum() == pytest.approx(1.0, abs=1e-12)
    weights = {}
    for bits in itertools.product((0, 1), repeat=9):
        s = 2 * np.array(bits).reshape(3, 3) - 1
        weights[bits] = math.exp(Jh * (s[:, :-1] * s[:, 1:]).sum() + Jv * (s[:-1, :] * s[1:, :]).sum())
    Z = sum(weights.values())
    for row, pr in zip(X, p):
        assert pr == pytest.approx(weights[tuple(int(b) for b in row)] / Z, rel=1e-12)


def test_ising_joint_symmetries_and_errors():
    X, p = mm.ising_joint(2, 0.0, 0.0)
    assert np.allclose(p, 1 / 16)
    X, p = mm.ising_joint(4)
    flip = {tuple(r): pr for r, pr in zip(X, p)}
    assert all(flip[tuple(1 - r)] == pytest.approx(pr, rel=1e-12) for r, pr in zip(X[:200], p[:200]))
    for args, err in (((5,), ValueError), ((0,), ValueError), ((4, np.nan), ValueError), ((4, "a"), TypeError)):
        with pytest.raises(err):
            mm.ising_joint(*args)


def test_chain_rule_reference_values():
    """The spec author's prototype (an independent implementation): H(X) and the bigram code lengths."""
    X, p = mm.ising_joint(4, 0.9, 0.3)
    H = float(-(p * np.log2(p)).sum())
    assert H == pytest.approx(8.456797, abs=1e-6)
    reference = {"snake": 9.1026, "raster": 9.2963, "spiral": 9.9797, "zigzag": 11.3991, "column": 12.7798, "random": 13.2906}
    for kind, bits in reference.items():
        assert mm.chain_rule_nll_bits(X, p, mm.scan_order(4, kind), "previous") == pytest.approx(bits, abs=1e-4)


@PROPS
@given(st.permutations(list(range(9))), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_full_context_is_order_invariant_and_bigram_is_an_upper_bound(order, Jh, Jv):
    X, p = mm.ising_joint(3, Jh, Jv)
    H = float(-(p * np.log2(p)).sum())
    assert mm.chain_rule_nll_bits(X, p, order, "full") == pytest.approx(H, abs=1e-9)
    assert mm.chain_rule_nll_bits(X, p, order, "previous") >= H - 1e-9
    # reversing the order keeps the consecutive pairs, hence the bigram code length
    assert mm.chain_rule_nll_bits(X, p, order[::-1], "previous") == pytest.approx(
        mm.chain_rule_nll_bits(X, p, order, "previous"), abs=1e-9)


def test_bigram_is_exact_when_the_scan_follows_the_only_dependencies():
    """Jv = 0: rows are independent Markov chains, so the raster bigram model is exact; independent pixels: n^2 bits."""
    X, p = mm.ising_joint(3, 0.8, 0.0)
    H = float(-(p * np.log2(p)).sum())
    assert mm.chain_rule_nll_bits(X, p, mm.scan_order(3, "raster"), "previous") == pytest.approx(H, abs=1e-9)
    assert mm.chain_rule_nll_bits(X, p, mm.scan_order(3, "column"), "previous") > H + 0.1
    X, p = mm.ising_joint(3, 0.0, 0.0)
    assert mm.chain_rule_nll_bits(X, p, mm.scan_order(3, "random"), "previous") == pytest.approx(9.0, abs=1e-12)


def test_raster_equals_column_for_isotropic_couplings():
    X, p = mm.ising_joint(4, 0.6, 0.6)
    assert mm.chain_rule_nll_bits(X, p, mm.scan_order(4, "raster"), "previous") == pytest.approx(
        mm.chain_rule_nll_bits(X, p, mm.scan_order(4, "column"), "previous"), abs=1e-12)


def test_chain_rule_errors():
    X, p = mm.ising_joint(2)
    order = list(range(4))
    cases = [
        ((X.astype(float), p, order), TypeError), ((X * 2, p, order), ValueError), ((X, (p * 1e6).astype(int), order), TypeError),
        ((X, p * 2, order), ValueError), ((X, p[:-1], order), ValueError), ((X, p, [0, 1, 2]), ValueError),
        ((X, p, [0, 0, 1, 2]), ValueError), ((X[:, :0], p, []), ValueError),
    ]
    for args, err in cases:
        with pytest.raises(err):
            mm.chain_rule_nll_bits(*args)
    with pytest.raises(ValueError):
        mm.chain_rule_nll_bits(X, p, order, context="next")
    p_nan = p.copy()
    p_nan[0] = np.nan
    with pytest.raises(ValueError):
        mm.chain_rule_nll_bits(X, p_nan, order)
    assert mm.chain_rule_nll_bits(X, p.astype(np.float32) / p.astype(np.float32).sum(dtype=np.float64), order) == \
        pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-5)
