"""Softmax attention, linear attention, Performer random features and attention spectra (8338)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue_lite import attention

RNG = np.random.default_rng(8338)


def _naive_softmax(q, k, v, allowed, scale):
    """Independent reference: explicit double loop over (i, j) with Python floats."""
    n, n_k = q.shape[0], k.shape[0]
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        logits = [scale * float(q[i] @ k[j]) for j in range(n_k)]
        m = max(logits[j] for j in range(n_k) if allowed[i, j])
        w = [math.exp(logits[j] - m) if allowed[i, j] else 0.0 for j in range(n_k)]
        s = sum(w)
        out[i] = sum(w[j] / s * v[j] for j in range(n_k))
    return out


# ---------------------------------------------------------------- softmax attention
def test_softmax_attention_matches_a_double_loop_and_torch_sdpa():
    q, k, v = RNG.normal(size=(5, 4)), RNG.normal(size=(7, 4)), RNG.normal(size=(7, 3))
    allowed = np.ones((5, 7), dtype=bool)
    np.testing.assert_allclose(attention.softmax_attention(q, k, v), _naive_softmax(q, k, v, allowed, 0.5), atol=1e-12)
    np.testing.assert_allclose(attention.softmax_attention(q, k, v, scale=1.0), _naive_softmax(q, k, v, allowed, 1.0), atol=1e-12)
    # causal with n < n_k: the queries are the last 5 of 7 positions
    tri = np.arange(7)[None, :] <= np.arange(2, 7)[:, None]
    np.testing.assert_allclose(attention.softmax_attention(q, k, v, causal=True), _naive_softmax(q, k, v, tri, 0.5), atol=1e-12)
    # torch's own scaled_dot_product_attention (an independent implementation)
    qt, kt, vt = (torch.from_numpy(a) for a in (q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(qt[None], kt[None], vt[None])[0]
    np.testing.assert_allclose(attention.softmax_attention(qt, kt, vt).numpy(), ref.numpy(), atol=1e-12)
    q2, k2, v2 = (torch.from_numpy(RNG.normal(size=(2, 3, 6, 4))) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q2, k2, v2, is_causal=True)
    np.testing.assert_allclose(attention.softmax_attention(q2, k2, v2, causal=True).numpy(), ref.numpy(), atol=1e-12)


def test_softmax_attention_old_positional_mask_and_weights():
    q, k, v = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4)), RNG.normal(size=(6, 2))
    mask = attention.causal_mask(6, window=3)
    out, w = attention.softmax_attention(q, k, v, mask, return_weights=True)
    np.testing.assert_allclose(out, _naive_softmax(q, k, v, mask, 0.5), atol=1e-12)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-14)
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    # mask and causal combine: the window mask is already causal, so adding causal changes nothing
    np.testing.assert_allclose(attention.softmax_attention(q, k, v, mask, causal=True), out, atol=0)
    # logits of size 1e3 do not overflow (the row maximum is subtracted)
    big = attention.softmax_attention(q * 1e3, k, v, mask)
    assert np.isfinite(big).all()


def test_softmax_attention_dtypes_and_autograd():
    q, k, v = (RNG.normal(size=(2, 5, 4)).astype(np.float32) for _ in range(3))
    out = attention.softmax_attention(q, k, v, causal=True)
    assert out.dtype == np.float32
    ref = attention.softmax_attention(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    qt = torch.from_numpy(q.astype(np.float64)).requires_grad_(True)
    o = attention.softmax_attention(qt, torch.from_numpy(k.astype(np.float64)), torch.from_numpy(v.astype(np.float64)), causal=True)
    o.sum().backward()
    assert torch.isfinite(qt.grad).all()
    # the first query sees only key 0, so its output does not depend on q_0
    assert qt.grad[:, 0].abs().max().item() < 1e-12


# ---------------------------------------------------------------- feature maps and linear attention
def test_feature_map_closed_forms():
    x = np.array([-2.0, -0.5, 0.0, 0.7, 3.0])
    np.testing.assert_allclose(attention.feature_map(x, "elu1"), [math.exp(-2), math.exp(-0.5), 1.0, 1.7, 4.0], atol=1e-15)
    np.testing.assert_allclose(attention.feature_map(x, "exp"), np.exp(x))
    np.testing.assert_allclose(attention.feature_map(x, "relu"), [0, 0, 0, 0.7, 3.0])
    sm = attention.feature_map(x, "softmax")
    np.testing.assert_allclose(sm, np.exp(x) / np.exp(x).sum(), atol=1e-15)
    xt = torch.from_numpy(x).float()
    for kind in attention.FEATURE_MAPS:
        got = attention.feature_map(xt, kind)
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), attention.feature_map(x, kind), rtol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("phi", ["elu1", "exp", "softmax"])
def test_linear_attention_equals_the_quadratic_form(phi, causal):
    n, d, dv = 9, 4, 3
    q, k, v = RNG.normal(size=(2, n, d)), RNG.normal(size=(2, n, d)), RNG.normal(size=(2, n, dv))
    out, a = attention.linear_attention(q, k, v, phi=phi, causal=causal, return_weights=True)
    fq, fk = attention.feature_map(q, phi), attention.feature_map(k, phi)
    for b in range(2):  # explicit loops, the definition (eq. (1) of the article)
        for i in range(n):
            js = range(i + 1) if causal else range(n)
            s = [float(fq[b, i] @ fk[b, j]) for j in js]
            want = sum(s[t] * v[b, j] for t, j in enumerate(js)) / sum(s)
            np.testing.assert_allclose(out[b, i], want, atol=1e-12)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-13)
    np.testing.assert_allclose(a @ v, out, atol=1e-12)
    got = attention.linear_attention(*(torch.from_numpy(t) for t in (q, k, v)), phi=phi, causal=causal)
    np.testing.assert_allclose(got.numpy(), out, atol=1e-12)


def test_linear_attention_options():
    q, k, v = RNG.normal(size=(6, 4)), RNG.normal(size=(8, 4)), RNG.normal(size=(8, 2))
    # different n_q and n_k (non-causal); varphi differs from phi; eps shrinks the output towards 0
    out = attention.linear_attention(q, k, v, phi="exp", varphi="elu1")
    fq, fk = np.exp(q), np.where(k > 0, k + 1, np.exp(k))
    np.testing.assert_allclose(out, (fq @ fk.T) @ v / (fq @ fk.T).sum(1, keepdims=True), atol=1e-12)
    out_eps = attention.linear_attention(q, k, v, phi="exp", varphi="elu1", eps=1.0)
    np.testing.assert_allclose(out_eps, (fq @ fk.T) @ v / ((fq @ fk.T).sum(1, keepdims=True) + 1.0), atol=1e-12)
    sq = np.ascontiguousarray(q[:, :4])
    o_c = attention.linear_attention(sq[:6], k[:6], v[:6], causal=True, eps=0.5)
    a = np.tril(attention.feature_map(sq[:6]) @ attention.feature_map(k[:6]).T)
    np.testing.assert_allclose(o_c, a @ v[:6] / (a.sum(1, keepdims=True) + 0.5), atol=1e-12)
    # a callable feature map, and float32 kept
    o32 = attention.linear_attention(*(t.astype(np.float32) for t in (q, k, v)), phi=lambda x: x * x)
    assert o32.dtype == np.float32
    want = ((q**2) @ (k**2).T) @ v / ((q**2) @ (k**2).T).sum(1, keepdims=True)
    np.testing.assert_allclose(o32, want, rtol=1e-4, atol=1e-5)


def test_linear_attention_is_average_pooling_for_constant_features():
    # phi = 1 for every input: every weight is 1/n (causal: 1/(i+1)), i.e. (cumulative) average pooling
    q, k, v = RNG.normal(size=(7, 3)), RNG.normal(size=(7, 3)), RNG.normal(size=(7, 2))
    ones = lambda x: np.ones_like(x)  # noqa: E731
    np.testing.assert_allclose(attention.linear_attention(q, k, v, phi=ones), np.broadcast_to(v.mean(0), v.shape), atol=1e-14)
    np.testing.assert_allclose(attention.linear_attention(q, k, v, phi=ones, causal=True),
                               np.cumsum(v, 0) / np.arange(1, 8)[:, None], atol=1e-14)


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: attention.softmax_attention(np.ones((3, 2), dtype=int), np.ones((3, 2)), np.ones((3, 1))), TypeError, "q"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 3)), np.ones((3, 1))), ValueError, "d_k"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((4, 1))), ValueError, "n_k"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.full((3, 1), np.nan)), ValueError, "v"),
        (lambda: attention.softmax_attention(np.ones((0, 2)), np.ones((3, 2)), np.ones((3, 1))), ValueError, "q"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), np.eye(3, dtype=bool) & False), ValueError, "mask"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), np.eye(3)), TypeError, "mask"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), np.ones((2, 2), bool)), ValueError, "mask"),
        (lambda: attention.softmax_attention(np.ones((4, 2)), np.ones((3, 2)), np.ones((3, 1)), causal=True), ValueError, "n_k"),
        (lambda: attention.softmax_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), scale=float("inf")), ValueError, "scale"),
        (lambda: attention.softmax_attention(torch.ones(3, 2), np.ones((3, 2)), np.ones((3, 1))), TypeError, "torch"),
        (lambda: attention.feature_map(np.ones(3), "gelu"), ValueError, "kind"),
        (lambda: attention.feature_map(np.ones(3, dtype=int)), TypeError, "x"),
        (lambda: attention.linear_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), phi="tanh"), ValueError, "phi"),
        (lambda: attention.linear_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), phi=lambda x: x - 2), ValueError, "negative"),
        (lambda: attention.linear_attention(-np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), phi="relu"), ValueError, "eps"),
        (lambda: attention.linear_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), eps=-1.0), ValueError, "eps"),
        (lambda: attention.linear_attention(np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 1)), causal=True), ValueError, "causal"),
        (lambda: attention.linear_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((4, 1))), ValueError, "n_k"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


# ---------------------------------------------------------------- Performer random features
def test_random_features_are_standard_normal_rows():
    w = attention.random_features(4000, 8, generator=0)
    assert w.shape == (4000, 8) and w.dtype == torch.float64
    assert w.mean(0).abs().max().item() < 4 / math.sqrt(4000)  # 4 standard errors
    np.testing.assert_allclose(np.cov(w.numpy().T), np.eye(8), atol=0.1)
    assert torch.equal(w, attention.random_features(4000, 8, generator=0))  # seeded
    assert attention.random_features(5, 3, dtype=torch.float32, generator=1).dtype == torch.float32


def test_orthogonal_random_features():
    d = 6
    w = attention.random_features(15, d, orthogonal=True, generator=torch.Generator().manual_seed(3)).numpy()
    assert w.shape == (15, d)
    for start in (0, 6):  # full blocks of d rows are mutually orthogonal
        g = w[start:start + d] @ w[start:start + d].T
        np.testing.assert_allclose(g - np.diag(np.diag(g)), 0, atol=1e-12)
    # norms follow chi_d: E|omega| = sqrt(2) Gamma((d+1)/2) / Gamma(d/2) (closed form), checked on many rows
    big = attention.random_features(6000, d, orthogonal=True, generator=5).numpy()
    mean_norm = math.sqrt(2) * math.gamma((d + 1) / 2) / math.gamma(d / 2)
    norms = np.linalg.norm(big, axis=1)
    assert abs(norms.mean() - mean_norm) < 4 * norms.std() / math.sqrt(6000)
    np.testing.assert_allclose(np.cov(big.T), np.eye(d), atol=0.1)


def test_performer_features_closed_form_and_gauss_hermite_unbiasedness():
    x = np.array([[1.0, 0.0]])
    om = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(attention.performer_features(x, om), [[math.exp(0.5) / math.sqrt(2), math.exp(-0.5) / math.sqrt(2)]])
    np.testing.assert_allclose(attention.performer_features(x, om, drop_norm=True), [[math.exp(1) / math.sqrt(2), 1 / math.sqrt(2)]])
    # E_omega[f(a) f(b)] = e^{ab} in 1-D: Gauss-Hermite quadrature in place of the expectation (independent of Monte Carlo)
    nodes, weights = np.polynomial.hermite.hermgauss(60)
    om = (math.sqrt(2) * nodes)[:, None]
    for a, b in [(0.3, -0.8), (1.2, 0.7), (-1.5, -0.4)]:
        fa = attention.performer_features(np.array([[a]]), om)[0]
        fb = attention.performer_features(np.array([[b]]), om)[0]
        est = float((weights / math.sqrt(math.pi) * len(nodes) * fa * fb).sum())
        assert est == pytest.approx(math.exp(a * b), rel=1e-10)


def test_performer_features_monte_carlo_and_query_norm_cancels():
    d, m = 4, 200000
    x, y = RNG.normal(0, 0.3, size=d), RNG.normal(0, 0.3, size=d)
    w = attention.random_features(m, d, generator=11)
    fx, fy = attention.performer_features(torch.from_numpy(x), w), attention.performer_features(torch.from_numpy(y), w)
    prod = (fx * fy * m).numpy()
    assert abs(prod.mean() - math.exp(x @ y)) < 4 * prod.std() / math.sqrt(m)
    # the -|q|^2/2 factor is one constant per query row: it cancels in the row normalisation
    q, k = RNG.normal(size=(5, d)), RNG.normal(size=(7, d))
    w = attention.random_features(32, d, generator=2).numpy()
    fk = attention.performer_features(k, w)
    a1 = attention.performer_features(q, w) @ fk.T
    a2 = attention.performer_features(q, w, drop_norm=True) @ fk.T
    np.testing.assert_allclose(a1 / a1.sum(1, keepdims=True), a2 / a2.sum(1, keepdims=True), atol=1e-13)
    assert attention.performer_features(q.astype(np.float32), w).dtype == np.float32


# ---------------------------------------------------------------- spectra
def test_ranks_against_closed_forms_and_numpy():
    assert attention.numerical_rank(np.diag([1.0, 1e-3, 1e-9])) == 2
    assert attention.numerical_rank(np.diag([1.0, 1e-3, 1e-9]), rtol=1e-2) == 1
    assert attention.numerical_rank(np.zeros((3, 3))) == 0
    low = RNG.normal(size=(40, 5)) @ RNG.normal(size=(5, 30))
    assert attention.numerical_rank(low) == np.linalg.matrix_rank(low) == 5
    assert attention.numerical_rank(torch.from_numpy(low).float(), rtol=1e-4) == 5
    assert attention.stable_rank(np.diag([3.0, 4.0])) == pytest.approx(25 / 16)
    assert attention.stable_rank(np.eye(7)) == pytest.approx(7)
    assert attention.stable_rank(np.ones((4, 6))) == pytest.approx(1)
    s = attention.singular_values(np.array([[3.0, 0.0], [0.0, -5.0]]))
    np.testing.assert_allclose(s, [5.0, 3.0])


def test_row_entropy_closed_forms():
    from scipy.stats import entropy

    A = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    h = attention.row_entropy(A, normalized=False)
    np.testing.assert_allclose(h, [1.5 * math.log(2), 0.0, math.log(3)], atol=1e-14)
    np.testing.assert_allclose(h, entropy(A, axis=1), atol=1e-14)
    np.testing.assert_allclose(attention.row_entropy(A), [1.5 * math.log(2) / math.log(3), 0.0, 1.0], atol=1e-14)
    ht = attention.row_entropy(torch.from_numpy(A).float())
    assert ht.dtype == torch.float32


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: attention.random_features(0, 4), ValueError, "m"),
        (lambda: attention.random_features(4, -1), ValueError, "d"),
        (lambda: attention.random_features(4.0, 4), TypeError, "m"),
        (lambda: attention.random_features(4, 4, generator="x"), TypeError, "generator"),
        (lambda: attention.performer_features(np.ones((3, 2)), np.ones((4, 3))), ValueError, "omega"),
        (lambda: attention.performer_features(np.ones((3, 2), dtype=int), np.ones((4, 2))), TypeError, "x"),
        (lambda: attention.numerical_rank(np.ones((3, 3)), rtol=0), ValueError, "rtol"),
        (lambda: attention.numerical_rank(np.ones(3)), ValueError, "2-D"),
        (lambda: attention.numerical_rank(np.full((2, 2), np.inf)), ValueError, "A"),
        (lambda: attention.stable_rank(np.zeros((2, 2))), ValueError, "zero"),
        (lambda: attention.row_entropy(np.array([[0.5, 0.6]])), ValueError, "sum to 1"),
        (lambda: attention.row_entropy(np.array([[1.5, -0.5]])), ValueError, "non-negative"),
        (lambda: attention.row_entropy(np.array([[1.0]])), ValueError, "keys"),
    ],
)
def test_bad_input_raises_naming_the_argument_2(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_linear_attention_weight_on_distinct_keys_is_capped_by_m():
    """Derivation 6 of performer-to-linear-attention: A = D^{-1} Phi Psi^T = U V (both row-stochastic), so
    sum_i a_{i, pi(i)} <= m for distinct keys pi(i); softmax has no such cap. Checked by an exact assignment solver."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(11)
    n = 60
    for m, phi in ((3, "exp"), (5, "elu1"), (8, "softmax")):
        q, k = 3 * rng.normal(size=(n, m)), 3 * rng.normal(size=(n, m))
        a = attention.linear_attention(q, k, np.zeros((n, 1)), phi=phi, return_weights=True)[1]
        r, c = linear_sum_assignment(a, maximize=True)
        assert a[r, c].sum() <= m + 1e-9
    eye = np.eye(n)  # one-hot features: the identity matrix, the cap m = n attained
    a = attention.linear_attention(eye, eye, np.zeros((n, 1)), phi=lambda x: x, return_weights=True)[1]
    np.testing.assert_allclose(a, eye, atol=0)
    w = attention.softmax_attention(3 * rng.normal(size=(n, 3)), 3 * rng.normal(size=(n, 3)), np.zeros((n, 1)), return_weights=True)[1]
    r, c = linear_sum_assignment(w, maximize=True)
    assert w[r, c].sum() > 3  # softmax with key size 3 is not capped at 3
