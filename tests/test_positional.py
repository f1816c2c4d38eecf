"""Unit and property tests of kexue_lite.positional and kexue_lite.attention (sinusoidal encodings, RoPE)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.integrate
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_lite import attention
from kexue_lite import positional as pos

PROPS = settings(max_examples=30, deadline=None, derandomize=True)
RNG = np.random.default_rng(3)


def test_rope_freqs_and_sinusoidal_layouts():
    theta = pos.rope_freqs(8, base=100.0)
    np.testing.assert_allclose(theta, [1, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75])
    P = pos.sinusoidal_pe(5, 8, base=100.0)
    assert P[3, 2] == pytest.approx(math.sin(3 * theta[1])) and P[3, 3] == pytest.approx(math.cos(3 * theta[1]))
    Q = pos.sinusoidal_pe(5, 8, base=100.0, layout="paired")
    assert Q[3, 2] == pytest.approx(math.cos(3 * theta[1])) and Q[3, 3] == pytest.approx(math.sin(3 * theta[1]))
    np.testing.assert_allclose(P @ P.T, Q @ Q.T, atol=1e-13)


@pytest.mark.parametrize("layout", ["vaswani", "paired"])
def test_gram_matrix_is_toeplitz_and_equals_the_cosine_sum(layout):
    P = pos.sinusoidal_pe(64, 128, layout=layout)
    G = P @ P.T
    assert np.abs(G[1:, 1:] - G[:-1, :-1]).max() < 1e-12
    m = np.subtract.outer(np.arange(64), np.arange(64))
    np.testing.assert_allclose(G, pos.cos_sum(m, pos.rope_freqs(128)), atol=1e-12)


def test_cos_sum_chunks_agree_with_one_shot(monkeypatch):
    theta = pos.rope_freqs(64)
    m = RNG.uniform(0, 1e4, size=(30, 7))
    want = np.cos(m[..., None] * theta).sum(-1)
    monkeypatch.setattr(pos, "_CHUNK", 100)  # force many chunks
    np.testing.assert_allclose(pos.cos_sum(m, theta), want, atol=1e-10)


def test_oscillatory_integral_against_quadrature_and_mpmath():
    for x in (0.0, 0.3, 5.0, 50.0, 300.0):
        quad = scipy.integrate.quad(lambda t: math.cos(x * 1e4 ** -t), 0, 1, limit=400)[0]
        assert float(pos.oscillatory_integral(x, 1e4)) == pytest.approx(quad, abs=1e-8)
    exact = (mpmath.ci(50) - mpmath.ci(50 / mpmath.mpf(1e4))) / mpmath.log(1e4)
    assert float(pos.oscillatory_integral(-50.0, 1e4)) == pytest.approx(float(exact), abs=1e-14)


@given(st.integers(1, 16).map(lambda h: 2 * h), st.floats(-500, 500), st.floats(-500, 500), st.sampled_from(["interleaved", "half"]))
@PROPS
def test_rope_relative_property_and_norms(d, m, n, layout):
    theta = pos.rope_freqs(d)
    q, k = RNG.normal(size=d), RNG.normal(size=d)
    qm = pos.rope_rotate(q[None], [m], theta, layout)[0]
    kn = pos.rope_rotate(k[None], [n], theta, layout)[0]
    assert qm @ kn == pytest.approx(q @ pos.rope_matrix(n - m, theta, layout) @ k, abs=1e-9)
    assert np.linalg.norm(qm) == pytest.approx(np.linalg.norm(q), rel=1e-13)
    np.testing.assert_allclose(qm, pos.rope_matrix(m, theta, layout) @ q, atol=1e-12)


def test_layouts_differ_by_a_fixed_permutation_and_match_the_llama_rotate_half():
    d = 16
    theta = pos.rope_freqs(d)
    X = RNG.normal(size=(2, 5, d))
    p = np.arange(5) * 3.0
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    np.testing.assert_allclose(pos.rope_rotate(X[..., perm], p, theta, "half"), pos.rope_rotate(X, p, theta)[..., perm], atol=1e-14)
    # LLaMA-style code: cos/sin repeated over both halves, x * cos + rotate_half(x) * sin
    ang = np.outer(p, theta)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rotate_half = np.concatenate([-X[..., d // 2 :], X[..., : d // 2]], -1)
    np.testing.assert_allclose(pos.rope_rotate(X, p, theta, "half"), X * cos + rotate_half * sin, atol=1e-14)
    # RoFormer: rot(q) = (-q1, q0, -q3, q2, ...)
    rot = np.empty_like(X)
    rot[..., 0::2], rot[..., 1::2] = -X[..., 1::2], X[..., 0::2]
    rep = lambda a: np.repeat(a, 2, axis=-1)  # noqa: E731
    np.testing.assert_allclose(pos.rope_rotate(X, p, theta), X * rep(np.cos(ang)) + rot * rep(np.sin(ang)), atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rope_torch_keeps_type_and_flows_gradients(dtype):
    theta = pos.rope_freqs(8)
    x = torch.randn(3, 4, 8, dtype=dtype, requires_grad=True)
    y = pos.rope_rotate(x, torch.arange(4), theta)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype
    np.testing.assert_allclose(y.detach().double().numpy(), pos.rope_rotate(x.detach().double().numpy(), np.arange(4), theta), atol=1e-6)
    (y**2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy(), rtol=1e-5, atol=1e-5)  # rotations keep norms


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_rope_on_cuda():
    x = torch.randn(2, 5, 8, device="cuda")
    y = pos.rope_rotate(x, np.arange(5), pos.rope_freqs(8))
    assert y.device.type == "cuda"


def test_float32_large_positions_use_float64_angles():
    theta = pos.rope_freqs(8)
    x = np.ones((1, 8), dtype=np.float32)
    y = pos.rope_rotate(x, [1e5 + 0.3], theta)
    want = pos.rope_rotate(x.astype(np.float64), [1e5 + 0.3], theta)
    assert np.abs(y - want).max() < 1e-6


def test_decay_curve_values():
    D = pos.rope_decay_curve(np.arange(257))
    assert D[0] == pytest.approx(32.5, abs=1e-12)
    spec = {1: 31.54, 5: 20.85, 10: 17.95, 20: 15.24, 50: 12.63, 100: 10.23, 150: 7.59, 200: 7.25, 256: 6.54}
    for m, value in spec.items():
        assert D[m] == pytest.approx(value, abs=1e-2)
    # direct definition
    theta = pos.rope_freqs(128)
    direct = np.mean([abs(np.sum(np.exp(1j * 37 * theta[:j]))) for j in range(1, 65)])
    assert D[37] == pytest.approx(direct, abs=1e-12)


def test_linear_attention_prefix_sums_equal_the_quadratic_form():
    n, d, dv = 50, 8, 3
    q, k, v = RNG.normal(size=(n, d)), RNG.normal(size=(n, d)), RNG.normal(size=(n, dv))
    fq, fk = np.exp(np.minimum(q, 0)) + np.maximum(q, 0), np.exp(np.minimum(k, 0)) + np.maximum(k, 0)  # elu + 1
    theta = pos.rope_freqs(d)
    nq, nk = pos.rope_rotate(fq, np.arange(n), theta), pos.rope_rotate(fk, np.arange(n), theta)
    mask = np.tril(np.ones((n, n)))
    want = ((nq @ nk.T) * mask) @ v / ((fq @ fk.T) * mask).sum(1, keepdims=True)
    np.testing.assert_allclose(attention.feature_linear_attention(fq, fk, v, num_q=nq, num_k=nk), want, atol=1e-12)
    full = (nq @ nk.T) @ v / (fq @ fk.T).sum(1, keepdims=True)
    np.testing.assert_allclose(attention.feature_linear_attention(fq, fk, v, causal=False, num_q=nq, num_k=nk), full, atol=1e-12)
    got = attention.feature_linear_attention(*(torch.from_numpy(a) for a in (fq, fk, v)))
    np.testing.assert_allclose(got.numpy(), ((fq @ fk.T) * mask) @ v / ((fq @ fk.T) * mask).sum(1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: pos.rope_freqs(7), ValueError, "even"),
        (lambda: pos.rope_freqs(8.0), TypeError, "d"),
        (lambda: pos.rope_freqs(8, base=0), ValueError, "base"),
        (lambda: pos.sinusoidal_pe(0, 8), ValueError, "n_pos"),
        (lambda: pos.sinusoidal_pe(4, 8, layout="cos-sin"), ValueError, "layout"),
        (lambda: pos.oscillatory_integral(1.0, 1.0), ValueError, "base"),
        (lambda: pos.cos_sum(1.0, np.array([])), ValueError, "theta"),
        (lambda: pos.rope_rotate(np.ones((3, 6)), np.arange(3), pos.rope_freqs(8)), ValueError, "d = 2"),
        (lambda: pos.rope_rotate(np.ones((3, 8)), np.arange(4), pos.rope_freqs(8)), ValueError, "pos"),
        (lambda: pos.rope_rotate([[1.0] * 8], [0], pos.rope_freqs(8)), TypeError, "x"),
        (lambda: pos.rope_rotate(np.ones((1, 8)), [0], pos.rope_freqs(8), "pairs"), ValueError, "layout"),
        (lambda: attention.feature_linear_attention(np.ones((3, 2)), np.ones((4, 2)), np.ones((3, 1))), ValueError, "same n"),
        (lambda: attention.feature_linear_attention(-np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1))), ValueError, "non-negative"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


# ----------------------------------------------------------------------- N-D RoPE
def test_split_freqs_modes():
    theta = pos.rope_freqs(16)
    xf, yf = pos.split_freqs(16)
    np.testing.assert_allclose(xf, theta[0::2])
    np.testing.assert_allclose(yf, theta[1::2])
    same = pos.split_freqs(16, mode="same")
    np.testing.assert_allclose(same[0], pos.rope_freqs(8))
    np.testing.assert_allclose(same[1], pos.rope_freqs(8))
    assert len(pos.split_freqs(24, n_axes=3)) == 3


@given(st.tuples(*[st.integers(-50, 50)] * 4))
@PROPS
def test_rope_2d_is_relative_and_matches_its_matrix(p):
    thetas = pos.split_freqs(16)
    x1, y1, x2, y2 = p
    R1, R2 = pos.rope_nd_matrix((x1, y1), thetas), pos.rope_nd_matrix((x2, y2), thetas)
    np.testing.assert_allclose(R1.T @ R2, pos.rope_nd_matrix((x2 - x1, y2 - y1), thetas), atol=1e-12)
    v = RNG.normal(size=16)
    np.testing.assert_allclose(pos.rope_nd_rotate(v[None], [[x1, y1]], thetas)[0], R1 @ v, atol=1e-12)


def test_interleave_permutation_reduces_2d_to_1d():
    for d, axes in ((8, 2), (64, 2), (24, 3)):
        x = RNG.normal(size=(2, 11, d))
        n = np.arange(11.0)
        perm = pos.interleave_permutation(d, axes)
        assert sorted(perm) == list(range(d))
        got = pos.rope_nd_rotate(x[..., perm], np.stack([n] * axes, 1), pos.split_freqs(d, n_axes=axes))
        np.testing.assert_allclose(got, pos.rope_rotate(x, n, pos.rope_freqs(d))[..., perm], atol=1e-14)
    t = torch.randn(5, 8, dtype=torch.float64)
    out = pos.rope_nd_rotate(t, np.zeros((5, 2)), pos.split_freqs(8))
    assert isinstance(out, torch.Tensor) and torch.allclose(out, t)


def test_rope_tie_positions_worked_example():
    px, py = pos.rope_tie_positions([("text", 3), ("image", 2, 4), ("text", 2)])
    assert px.tolist() == [1, 2, 3, 8, 8, 8, 8, 13, 13, 13, 13, 18, 19]
    assert py.tolist() == [1, 2, 3, 6, 9, 12, 15, 6, 9, 12, 15, 18, 19]
    assert (px[3] - px[2], py[3] - py[2]) == (5, 3) and (px[11] - px[10], py[11] - py[10]) == (5, 3)
    rx, ry = pos.rope_tie_positions([("text", 3), ("image", 2, 4), ("text", 2)], integer=False)
    assert rx[11] == ry[11] == 3 + 2 * 4 + 1  # the image counts as h * w tokens
    s, t = rx[3] - rx[2], ry[3] - ry[2]
    assert (rx[11] - rx[10], ry[11] - ry[10]) == pytest.approx((s, t))
    assert pos.flatten_positions([("text", 3), ("image", 2, 4), ("text", 2)]).tolist() == list(range(1, 14))


def test_nd_bad_input():
    with pytest.raises(ValueError, match="multiple"):
        pos.split_freqs(12, n_axes=4)
    with pytest.raises(ValueError, match="mode"):
        pos.split_freqs(16, mode="cross")
    with pytest.raises(ValueError, match="features"):
        pos.rope_nd_rotate(np.ones((2, 12)), np.zeros((2, 2)), pos.split_freqs(16))
    with pytest.raises(ValueError, match="pos"):
        pos.rope_nd_rotate(np.ones((2, 16)), np.zeros((2, 3)), pos.split_freqs(16))
    with pytest.raises(ValueError, match="segment"):
        pos.rope_tie_positions([("audio", 3)])
    with pytest.raises(ValueError, match="positive"):
        pos.rope_tie_positions([("image", 0, 3)])
    with pytest.raises(ValueError, match="multiple"):
        pos.interleave_permutation(10, 2)


# ------------------------------------------------------------------- RoPE base bound
def _direct_min(base, L, d=128):
    m = np.arange(L)
    return float(np.cos(np.outer(m, pos.rope_freqs(d, base))).sum(1).min())


def test_first_violation_matches_direct_cosines():
    for base, L in ((1e4, 4096), (3e3, 2000), (5e5, 20000), (1.5, 50)):
        m = np.arange(L)
        f = np.cos(np.outer(m, pos.rope_freqs(128, base))).sum(1)
        bad = np.flatnonzero(f < -1e-8)
        assert pos.first_violation(base, L) == (int(bad[0]) if bad.size else None)
    assert pos.first_violation(1e4, 1706) is None and pos.first_violation(1e4, 1708) is not None


def test_base_lower_bound_is_the_certified_infimum():
    table, stats = pos.base_lower_bound([2048, 1024], return_stats=True)
    assert f"{table[1024]:.1e}" == "4.3e+03" and f"{table[2048]:.1e}" == "1.2e+04"  # the article's row
    for L, b in table.items():
        assert _direct_min(b * (1 + 1e-9), L) >= -1e-7
        assert _direct_min(b * (1 - 1e-6), L) < 0
    assert stats["full_scans"] >= 2 and stats["steps"] > 0
    assert list(stats["seconds_to"]) == [1024, 2048] and 0 < stats["seconds_to"][1024] <= stats["seconds_to"][2048] <= stats["seconds"]
    grid, evals = pos.base_lower_bound_grid(1024, rounds=3)
    assert grid >= table[1024] and (grid - table[1024]) / table[1024] < 1e-3 and evals > 0
    assert pos.first_violation(grid, 1024) is None


def test_inverse_curve_and_ci_zero():
    M = pos.inverse_curve([1e4, 5e5], 40000)
    assert M.tolist() == [pos.first_violation(1e4, 40000), pos.first_violation(5e5, 40000)]
    assert pos.inverse_curve([1e9], 100).tolist() == [100]
    x0 = pos.ci_first_zero()
    assert abs(scipy_ci(x0)) < 1e-14 and x0 == pytest.approx(0.616505485620716, abs=1e-14)


def scipy_ci(x):
    import scipy.special

    return scipy.special.sici(x)[1]


def test_base_bound_bad_input():
    with pytest.raises(ValueError, match="base"):
        pos.first_violation(1.0, 10)
    with pytest.raises(ValueError, match="L"):
        pos.first_violation(10.0, 0)
    with pytest.raises(ValueError, match="Ls"):
        pos.base_lower_bound([])
    for eps in (0, 0.0, -1e-8, float("inf"), float("nan")):   # eps = 0 used to hang: the certified steps never land on a root
        with pytest.raises(ValueError, match="eps"):
            pos.base_lower_bound([64], d=16, eps=eps)
    with pytest.raises(ValueError, match="L_max"):
        pos.inverse_curve([10.0], 0)


# ------------------------------------------------------------ length extrapolation
def test_relative_position_schemes():
    P = pos.relative_positions(6, "leaky_rerope", window=2, k_leak=4)
    assert P[5, 0] == 2 + (5 - 2) / 4 and P[3, 2] == 1 and P[1, 3] == -2
    assert pos.relative_positions(6, "rerope", window=2)[5, 0] == 2
    assert pos.relative_positions(6, "pi", scale=2)[5, 1] == 2
    np.testing.assert_array_equal(pos.relative_positions(4), np.subtract.outer(np.arange(4), np.arange(4)))


@pytest.mark.parametrize("k_leak", [8.0, math.inf])
def test_two_pass_rerope_equals_the_definition(k_leak):
    n, d, w = 120, 16, 20
    q, k = RNG.normal(size=(n, d)), RNG.normal(size=(n, d))
    theta = pos.rope_freqs(d)
    P = pos.relative_positions(n, "rerope", window=w) if math.isinf(k_leak) else pos.relative_positions(n, "leaky_rerope", window=w, k_leak=k_leak)
    mask = np.tril(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(pos.rerope_scores(q, k, theta, w, k_leak)[mask], pos.scores_from_relative(q, k, P, theta)[mask], atol=1e-10)
    plain = pos.rope_rotate(q, np.arange(n), theta) @ pos.rope_rotate(k, np.arange(n), theta).T
    np.testing.assert_allclose(pos.scores_from_relative(q, k, pos.relative_positions(n), theta), plain, atol=1e-10)


def test_frequency_schemes():
    theta = pos.rope_freqs(128)
    r = pos.rotation_turns(theta, 4096)
    assert int((r < 1).sum()) == 18 and int(np.argmax(r < 1)) == 46 and int((r > 32).sum()) == 21
    ntk = pos.ntk_freqs(128, 1e4, 4)
    assert ntk[-1] == pytest.approx(theta[-1] / 4, rel=1e-12) and ntk[0] == theta[0]
    yarn = pos.yarn_freqs(128, 1e4, 4096, 4)
    np.testing.assert_allclose(yarn[r >= 32], theta[r >= 32])
    np.testing.assert_allclose(yarn[r <= 1], theta[r <= 1] / 4)
    np.testing.assert_allclose(pos.pi_freqs(theta, 4), theta / 4)
    assert pos.yarn_logit_scale(4) == pytest.approx((1 + 0.1 * math.log(4)) ** 2)
    np.testing.assert_allclose(pos.logn_scale([1, 4096, 16384], 4096), [1, 1, math.log(16384) / math.log(4096)])
    np.testing.assert_allclose(pos.dynamic_scale([0, 4095, 8191], 4096), [1, 1, 2])


def test_ood_fraction():
    theta = pos.rope_freqs(128)
    for new in (pos.pi_freqs(theta, 4), pos.yarn_freqs(128, 1e4, 4096, 4)):
        assert pos.ood_fraction(new, theta, 4096, 16384).max() == 0
    direct = pos.ood_fraction(theta, theta, 4096, 16384)
    assert (direct[pos.rotation_turns(theta, 4096) >= 1] == 0).all() and direct.max() == pytest.approx(0.75, abs=1e-3)
    # brute force for one frequency: angles mod 2 pi outside the trained arc
    i = 60
    ang = np.mod(np.arange(16384) * theta[i], 2 * math.pi)
    assert direct[i] == pytest.approx(np.mean(ang > 4096 * theta[i]))


def test_masks_and_softmax_attention():
    M = attention.causal_mask(32, window=8, n_sink=2)
    for i in range(32):
        assert set(np.flatnonzero(M[i])) == ({0, 1} & set(range(i + 1))) | set(range(max(0, i - 7), i + 1))
    q, k, v = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=(5, 3))
    mask = attention.causal_mask(5)
    logits = q @ k.T / 2
    w = np.where(mask, np.exp(logits - logits.max(1, keepdims=True)), 0)
    np.testing.assert_allclose(attention.softmax_attention(q, k, v, mask), (w / w.sum(1, keepdims=True)) @ v, atol=1e-12)
    big = attention.softmax_attention(q * 1e3, k, v, mask)
    assert np.isfinite(big).all()
    with pytest.raises(ValueError, match="window"):
        attention.causal_mask(4, window=0)
    with pytest.raises(ValueError, match="n_k"):
        attention.causal_mask(4, 3)
    with pytest.raises(ValueError, match="window"):
        pos.relative_positions(4, "rerope")
    with pytest.raises(ValueError, match="k_leak"):
        pos.relative_positions(4, "leaky_rerope", window=2, k_leak=1)
    with pytest.raises(ValueError, match="scale"):
        pos.pi_freqs(pos.rope_freqs(8), 0.5)


@pytest.mark.parametrize("x", [np.array([[3, 4]]), torch.tensor([[3, 4]])], ids=["numpy", "torch"])
def test_rope_rotate_refuses_integer_input(x):
    # A rotation of integers is not integer: rotating in x's dtype used to return silent zeros.
    with pytest.raises(TypeError, match="floating-point"):
        pos.rope_rotate(x, [1.0], [1.0])
    rotated = pos.rope_rotate(x.astype(float) if isinstance(x, np.ndarray) else x.double(), [1.0], [1.0])
    assert np.allclose(np.asarray(rotated), [[3 * np.cos(1) - 4 * np.sin(1), 3 * np.sin(1) + 4 * np.cos(1)]])


def test_grid_search_never_returns_an_infeasible_upper_bound():
    # From 4 096 000 with d = 16 no grid point of two rounds is feasible, and neither is the start (m = 990 violates):
    # the search used to return the start as its "upper bound".
    assert pos.first_violation(4_096_000.0, 4096, 16) is not None
    with pytest.raises(ValueError, match="start"):
        pos.base_lower_bound_grid(4096, d=16, rounds=2)
