"""Unit and property tests of kexue_lite.probability (softmax and its alternatives, their losses).

References are independent: the article's own numpy snippets, a generic projection onto the simplex
(scipy), bisection written out here, finite differences, closed forms of the binary cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kexue_lite import probability as pr

torch.set_num_threads(1)
PROPS = settings(max_examples=60, deadline=None, derandomize=True)
RNG = np.random.default_rng(7)
MAPS = {
    "softmax": pr.softmax,
    "sparsemax": pr.sparsemax,
    "entmax15": pr.entmax15,
    "entmax_bisect_1.3": lambda x: pr.entmax_bisect(x, 1.3),
    "entmax_bisect_2.5": lambda x: pr.entmax_bisect(x, 2.5),
    "sparse_softmax_3": lambda x: pr.sparse_softmax(x, min(3, np.shape(x)[-1])),
    "perturb_normal": lambda x: pr.perturb_max(x, "normal", 80),
}
logit_rows = arrays(np.float64, st.integers(2, 9), elements=st.floats(-6, 6, allow_nan=False).map(lambda v: round(v, 1)))


def article_sparsemax(x):
    """The article's reference code, verbatim in substance."""
    x_sort = np.sort(x)[::-1]
    x_lamb = (np.cumsum(x_sort) - 1) / np.arange(1, len(x) + 1)
    lamb = x_lamb[(x_sort >= x_lamb).argmin() - 1]
    return np.maximum(x - lamb, 0)


def article_entmax(x):
    x_sort = np.sort(x / 2)[::-1]
    k = np.arange(1, len(x) + 1)
    x_mu = np.cumsum(x_sort) / k
    x_sigma2 = np.cumsum(x_sort**2) / k - x_mu**2
    x_lamb = x_mu - np.sqrt(np.maximum(1.0 / k - x_sigma2, 0))
    x_sort_shift = np.pad(x_sort[1:], (0, 1), constant_values=-np.inf)
    lamb = x_lamb[(x_sort > x_lamb) & (x_lamb > x_sort_shift)]
    return np.maximum(x / 2 - lamb, 0) ** 2


def bisect_entmax(x, alpha):
    """Plain bisection on the threshold of relu((alpha-1) x - tau)^(1/(alpha-1))."""
    z = (alpha - 1) * x
    lo, hi = z.max() - 1, z.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if (np.maximum(z - mid, 0) ** (1 / (alpha - 1))).sum() >= 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - lo, 0) ** (1 / (alpha - 1))


def simplex_projection(x):
    res = scipy.optimize.minimize(lambda p: 0.5 * np.sum((p - x) ** 2), np.full(len(x), 1 / len(x)), jac=lambda p: p - x,
                                  bounds=[(0, 1)] * len(x), constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                                  method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    return res.x


# ------------------------------------------------------------------- maps: properties
@given(logit_rows, st.sampled_from(sorted(MAPS)))
@PROPS
def test_maps_land_on_the_simplex_are_monotone_and_shift_invariant(x, name):
    f = MAPS[name]
    p = f(x)
    assert p.min() >= 0 and abs(p.sum() - 1) < 1e-12
    order = np.argsort(x)
    if name != "sparse_softmax_3":  # top-k keeps order too, but ties at the k-th value are broken arbitrarily
        assert np.all(np.diff(p[order]) >= -1e-12), (x, p)
    np.testing.assert_allclose(f(x + 3.7), p, atol=1e-10)


def test_taylor_softmax_is_neither_monotone_nor_shift_invariant():
    x = np.array([3.0, 1, 0, -1, -2])
    p = pr.taylor_softmax(x, 2)
    np.testing.assert_allclose(p, [0.630, 0.185, 0.074, 0.037, 0.074], atol=1e-3)  # spec's measured values
    assert p[4] > p[3]  # logit -2 beats -1
    assert np.abs(pr.taylor_softmax(x + 5, 2) - p).max() > 0.1
    f2 = 1 + x + x**2 / 2
    np.testing.assert_allclose(p, f2 / f2.sum(), atol=1e-15)
    with pytest.raises(ValueError, match="k"):
        pr.taylor_softmax(x, 3)


@given(logit_rows)
@PROPS
def test_sparsemax_matches_the_article_code_and_a_qp(x):
    p = pr.sparsemax(x)
    np.testing.assert_allclose(p, article_sparsemax(x), atol=1e-12)
    np.testing.assert_allclose(p, simplex_projection(x), atol=1e-6)


@given(logit_rows, st.sampled_from([1.3, 1.5, 2.0, 3.0]))
@PROPS
def test_entmax_matches_plain_bisection(x, alpha):
    want = bisect_entmax(x, alpha)
    exact = {1.5: pr.entmax15, 2.0: pr.sparsemax}.get(alpha)
    if exact is not None:
        np.testing.assert_allclose(exact(x), want, atol=1e-12)
    np.testing.assert_allclose(pr.entmax_bisect(x, alpha), want, atol=1e-12)
    tau = pr.entmax_threshold(x, alpha)
    np.testing.assert_allclose(np.maximum((alpha - 1) * x - tau, 0) ** (1 / (alpha - 1)), want, atol=1e-9)


def test_ties_are_exact_and_the_article_entmax_snippet_crashes_on_them():
    np.testing.assert_allclose(pr.sparsemax(np.array([1.0, 1, 1])), [1 / 3] * 3, atol=1e-15)
    np.testing.assert_allclose(pr.sparsemax(np.array([2.0, 0])), [1, 0], atol=1e-15)
    np.testing.assert_allclose(pr.sparsemax(np.array([0.5, 0.5, -3])), [0.5, 0.5, 0], atol=1e-15)
    for x in (np.array([2.0, 0]), np.array([3.0, 1, -1])):
        np.testing.assert_allclose(pr.entmax15(x), bisect_entmax(x, 1.5), atol=1e-12)
        with pytest.raises(ValueError):
            article_entmax(x)


def test_large_vocab_row_needs_a_growing_support():
    x = torch.linspace(0, 0.01, 5000, dtype=torch.float64)  # nearly flat: the support is most of the row
    for f, alpha in ((pr.sparsemax, 2.0), (pr.entmax15, 1.5), (lambda v: pr.entmax_bisect(v, 1.7), 1.7)):
        p = f(x)
        assert (p > 0).sum() >= 1000  # beyond the first guesses of k (64, 256)
        np.testing.assert_allclose(p.numpy(), bisect_entmax(x.numpy(), alpha), atol=1e-12)


# --------------------------------------------------------- numerics: big, -inf, dtypes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["softmax", "sparsemax", "entmax15", "entmax_bisect_1.3"])
def test_huge_logits_and_minus_inf(dtype, name):
    f = MAPS[name]
    x = torch.tensor([[1e3, -1e3, 999.5, -math.inf, 0.0]], dtype=dtype, requires_grad=True)
    p = f(x)
    assert p.dtype == dtype and torch.isfinite(p).all()
    assert p[0, 3] == 0 and p[0, 1] == 0
    assert abs(float(p.detach().sum()) - 1) < 1e-6
    (p * torch.arange(5, dtype=dtype)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0, 3] == 0
    loss_x = torch.tensor([[1e3, -math.inf, 999.0]], dtype=dtype, requires_grad=True)
    for loss in (pr.cross_entropy(loss_x, [0]), pr.sparsemax_loss(loss_x, [0]), pr.entmax_loss(loss_x, [2], 1.5)):
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(loss_x.grad).all() and loss_x.grad[0, 1] == 0
        loss_x.grad = None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_perturb_normal_with_minus_inf_is_the_finite_problem(dtype):
    # Gave all-NaN probabilities for two -inf logits and NaN gradients for one: a -inf entry never wins, and
    # every finite entry beats it surely, so the answer is the finite entries' answer padded with zeros.
    finite = pr.perturb_max(torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64), "normal")
    for x in ([1.0, 0.0, -0.5, -math.inf], [-math.inf, 1.0, -math.inf, 0.0, -0.5, -math.inf]):
        t = torch.tensor(x, dtype=dtype, requires_grad=True)
        p = pr.perturb_max(t, "normal")
        keep = torch.isfinite(t)
        assert torch.all(p[~keep] == 0)
        np.testing.assert_allclose(p[keep].detach().double().numpy(), finite.numpy(), atol=1e-6 if dtype == torch.float32 else 1e-12)
        (p * torch.arange(len(x), dtype=dtype)).sum().backward()
        assert torch.isfinite(t.grad).all() and torch.all(t.grad[~keep] == 0)


def test_all_minus_inf_row_and_nan_raise():
    bad = np.array([[0.0, 1.0], [-np.inf, -np.inf]])
    for f in (pr.softmax, pr.sparsemax, pr.entmax15, pr.log_softmax):
        with pytest.raises(ValueError, match="all -inf"):
            f(bad)
    with pytest.raises(ValueError, match="NaN"):
        pr.softmax(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"\+inf"):
        pr.sparsemax(np.array([0.0, np.inf]))


def test_numpy_in_numpy_out_and_torch_keeps_dtype_device():
    x = RNG.normal(size=(3, 5))
    assert isinstance(pr.entmax15(x), np.ndarray) and pr.entmax15(x).dtype == np.float64
    t = torch.tensor(x, dtype=torch.float32)
    assert pr.entmax15(t).dtype == torch.float32 and pr.entmax15(t).device == t.device
    np.testing.assert_allclose(pr.entmax15(t).numpy(), pr.entmax15(x), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(4, 1000, dtype=torch.float64)
    for f in (pr.sparsemax, pr.entmax15, lambda v: pr.entmax_bisect(v, 1.3)):
        np.testing.assert_allclose(f(x.cuda()).cpu().numpy(), f(x).numpy(), atol=1e-12)


# ------------------------------------------------------------- Jacobians and gradients
def _fd_jacobian(f, x, h=1e-6):
    return np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))], axis=1)


def test_jacobians_against_finite_differences_and_autograd():
    x = np.array([1.2, 0.9, 0.3, -0.5, 0.8])
    p = pr.softmax(x)
    J = pr.softmax_jacobian(p)
    np.testing.assert_allclose(J, _fd_jacobian(pr.softmax, x), atol=1e-9)
    assert 0.5 * np.abs(J).sum() == pytest.approx(1 - np.sum(p**2), abs=1e-15)
    for f, alpha in ((pr.sparsemax, 2.0), (pr.entmax15, 1.5), (lambda v: pr.entmax_bisect(v, 1.3), 1.3)):
        p = f(x)
        np.testing.assert_allclose(pr.entmax_jacobian(p, alpha), _fd_jacobian(f, x), atol=1e-7)
        xt = torch.tensor(x, requires_grad=True)
        auto = torch.autograd.functional.jacobian(f, xt)
        np.testing.assert_allclose(auto.numpy(), pr.entmax_jacobian(p, alpha), atol=1e-12)
    np.testing.assert_allclose(pr.sparsemax_jacobian(pr.sparsemax(x)), pr.entmax_jacobian(pr.sparsemax(x), 2.0))
    assert set(np.flatnonzero(pr.sparsemax(x))) == {0, 1, 4}


@pytest.mark.parametrize("alpha", [1.0, 1.3, 1.5, 2.0])
def test_fenchel_young_losses_have_gradient_p_minus_y(alpha):
    x = torch.tensor(RNG.normal(size=(4, 6)) * 2, requires_grad=True)
    target = torch.tensor([0, 3, 5, 1])
    loss = pr.entmax_loss(x, target, alpha)
    loss.sum().backward()
    p = pr.entmax_bisect(x.detach(), alpha) if alpha != 1 else torch.softmax(x.detach(), -1)
    np.testing.assert_allclose(x.grad.numpy(), (p - torch.nn.functional.one_hot(target, 6)).numpy(), atol=1e-10)
    assert (loss >= -1e-12).all()
    # value against finite differences of the value (the gradient is not just declared)
    xv = x.detach().numpy()[1]
    fd = _fd_jacobian(lambda v: np.atleast_1d(pr.entmax_loss(v[None], [3], alpha)), xv)[0]
    np.testing.assert_allclose(fd, x.grad.numpy()[1], atol=1e-6)
    if alpha == 1:
        np.testing.assert_allclose(loss.detach().numpy(), pr.cross_entropy(x.detach(), target).numpy(), atol=1e-12)


def test_sparsemax_loss_closed_forms():
    x = np.array([1.2, 0.9, 0.3, -0.5, 0.8])
    for t in (1, 2):  # t = 2 is outside the support
        tau = float(pr.sparsemax_threshold(x)[0])
        S = pr.sparsemax(x) > 0
        article = 0.5 - x[t] + 0.5 * np.sum(x[S] ** 2 - tau**2)
        assert float(pr.sparsemax_loss(x, t)) == pytest.approx(article, abs=1e-14)
    assert float(pr.sparsemax_loss(np.array([3.0, 2, 1]), 0)) == pytest.approx(0, abs=1e-15)
    assert float(pr.sparsemax_loss(np.array([2.9, 2, 1]), 0)) == pytest.approx(0.0025, abs=1e-12)
    for u in np.linspace(-3, 3, 25):  # binary case: the modified Huber loss
        huber = 0.0 if u >= 1 else (-u if u <= -1 else (u - 1) ** 2 / 4)
        assert float(pr.sparsemax_loss(np.array([u, 0.0]), 0)) == pytest.approx(huber, abs=1e-14)
        assert pr.sparsemax(np.array([u, 0.0]))[0] == pytest.approx(np.clip((u + 1) / 2, 0, 1), abs=1e-15)
    assert float(pr.entmax_loss(x, 1, 2.0)) == pytest.approx(float(pr.sparsemax_loss(x, 1)), abs=1e-14)


def test_gradient_surrogate_corrected_vs_article():
    x = torch.tensor([1.2, 0.9, 0.3, -0.5, 0.8], dtype=torch.float64, requires_grad=True)
    p = pr.sparsemax(x)
    pr.gradient_surrogate_loss(p, 1, x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5667, -0.7333, 0, 0, 0.1667], atol=1e-4)
    x.grad = None
    literal = ((pr.sparsemax(x) - torch.nn.functional.one_hot(torch.tensor(1), 5)) * x.detach()).sum()
    literal.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2333, -0.0667, 0, 0, -0.1667], atol=1e-4)


def test_softmax_family_identities():
    x = RNG.normal(size=10) * 3
    for tau, gap in ((1.0, None), (0.01, 1e-12)):
        lse = pr.logsumexp(x, tau)
        assert x.max() <= lse <= x.max() + tau * math.log(10)
        if gap:
            assert lse - x.max() < 1e-6
    np.testing.assert_allclose(pr.log_softmax(x), np.log(pr.softmax(x)), atol=1e-13)
    np.testing.assert_allclose(pr.softmax(x, 0.5), scipy_softmax(2 * x), atol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    pr.cross_entropy(xt, 4).backward()
    np.testing.assert_allclose(xt.grad.numpy(), pr.softmax(x) - np.eye(10)[4], atol=1e-14)
    soft = RNG.dirichlet(np.ones(10))
    assert float(pr.cross_entropy(x, soft)) == pytest.approx(-np.sum(soft * np.log(pr.softmax(x))), abs=1e-12)


def scipy_softmax(x):
    import scipy.special

    return scipy.special.softmax(x)


def test_perturb_max():
    x = np.array([1.0, 0.5, 0.0, -1.0])
    np.testing.assert_allclose(pr.perturb_max(x, "gumbel"), pr.softmax(x))
    g = torch.Generator().manual_seed(1)
    np.testing.assert_allclose(pr.perturb_max_mc(x, "gumbel", 200_000, g), pr.softmax(x), atol=5e-3)  # ~4 sigma
    quad = pr.perturb_max(x, "normal")
    np.testing.assert_allclose(quad, [0.5369, 0.2927, 0.1451, 0.0253], atol=1e-4)  # spec's quadrature values
    np.testing.assert_allclose(pr.perturb_max_mc(x, "normal", 200_000, g), quad, atol=5e-3)
    for u in (-2.0, 0.3, 1.7):  # two classes: the probit
        assert pr.perturb_max(np.array([u, 0.0]), "normal")[0] == pytest.approx(scipy.stats.norm.cdf(u / math.sqrt(2)), abs=1e-14)


def test_sparse_softmax_and_its_loss():
    x = np.array([2.0, 1.0, 0.5, -1.0])
    p = pr.sparse_softmax(x, 2)
    np.testing.assert_allclose(p, np.r_[scipy_softmax(x[:2]), 0, 0], atol=1e-15)
    assert float(pr.sparse_softmax_loss(x, 0, 2)) == pytest.approx(-math.log(p[0]), abs=1e-14)
    outside = float(pr.sparse_softmax_loss(x, 3, 2))
    assert math.isfinite(outside) and outside > 0
    np.testing.assert_allclose(pr.sparse_softmax(x, 4), pr.softmax(x), atol=1e-15)


def test_am_softmax_loss_against_a_direct_formula():
    z = RNG.normal(size=(2, 3))
    c = RNG.normal(size=(4, 3))
    cos = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
    logits = 30 * cos
    logits[0, 2] -= 30 * 0.35
    logits[1, 0] -= 30 * 0.35
    want = [-np.log(scipy_softmax(logits[0]))[2], -np.log(scipy_softmax(logits[1]))[0]]
    np.testing.assert_allclose(pr.am_softmax_loss(z, c, np.array([2, 0])), want, atol=1e-12)


def test_tsallis_entropy_limits():
    p = RNG.dirichlet(np.ones(6))
    shannon = -np.sum(p * np.log(p))
    assert float(pr.tsallis_entropy(p, 1.0)) == pytest.approx(shannon, abs=1e-15)
    assert float(pr.tsallis_entropy(p, 1.0 + 1e-7)) == pytest.approx(shannon, abs=1e-6)
    assert float(pr.tsallis_entropy(p, 2.0)) == pytest.approx((1 - np.sum(p**2)) / 2, abs=1e-15)
    assert float(pr.tsallis_entropy(np.array([1.0, 0, 0]), 1.0)) == 0


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: pr.softmax(np.ones(3), tau=0), ValueError, "tau"),
        (lambda: pr.softmax(np.ones((2, 0))), ValueError, "class"),
        (lambda: pr.softmax("abc"), TypeError, "x"),
        (lambda: pr.softmax(torch.ones(3, dtype=torch.long)), TypeError, "floating"),
        (lambda: pr.sparse_softmax(np.ones(3), 4), ValueError, "k"),
        (lambda: pr.perturb_max(np.ones(3), "cauchy"), ValueError, "noise"),
        (lambda: pr.perturb_max(np.ones(3), "normal", 1), ValueError, "n_nodes"),
        (lambda: pr.perturb_max_mc(np.ones(3), "normal", 0), ValueError, "n_samples"),
        (lambda: pr.entmax_bisect(np.ones(3), 0.5), ValueError, "alpha"),
        (lambda: pr.entmax_bisect(np.ones(3), 1.5, 0), ValueError, "n_iter"),
        (lambda: pr.entmax_threshold(np.ones(3), 1.0), ValueError, "alpha"),
        (lambda: pr.cross_entropy(np.ones((2, 3)), np.array([0, 3])), ValueError, "target"),
        (lambda: pr.cross_entropy(np.ones((2, 3)), np.ones((2, 2))), ValueError, "target"),
        (lambda: pr.cross_entropy(np.ones(3), "a"), TypeError, "target"),
        (lambda: pr.am_softmax_loss(np.ones(3), np.ones((2, 3)), 0, scale=0), ValueError, "scale"),
        (lambda: pr.am_softmax_loss(np.ones(3), np.ones((2, 4)), 0), ValueError, "centers"),
        (lambda: pr.entmax_loss(np.array([0.0, -np.inf]), 1), ValueError, "target"),
        (lambda: pr.gradient_surrogate_loss(np.ones(2), 0, np.ones(2)), TypeError, "torch"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


# ------------------------------------------------------------------------------- EMO
def test_transport_lp_against_closed_forms():
    E, _ = pr.synonym_vocab(V=6, clusters=3, d=4, seed=1)
    C = pr.cosine_cost_matrix(E)
    np.testing.assert_allclose(np.diag(C), 0, atol=1e-15)
    for _ in range(20):
        p = RNG.dirichlet(np.ones(6))
        t = int(RNG.integers(6))
        q = np.eye(6)[t]
        cost, plan = pr.transport_cost_lp(p, q, C)
        assert cost == pytest.approx(float(p @ C[:, t]), abs=1e-12)  # one-hot: everything moves to t
        np.testing.assert_allclose(plan[:, t], p, atol=1e-12)
        assert float(pr.emo_loss(np.log(p), t, E)) == pytest.approx(cost, abs=1e-12)
        soft = RNG.dirichlet(np.ones(6) * 0.5)
        lp, plan = pr.transport_cost_lp(p, soft, C)
        np.testing.assert_allclose(plan.sum(1), p, atol=1e-9)
        np.testing.assert_allclose(plan.sum(0), soft, atol=1e-9)
        assert lp <= pr.transport_upper_bound(p, soft, C) + 1e-12
    zero_one = 1 - np.eye(6)
    p = RNG.dirichlet(np.ones(6))
    assert pr.transport_cost_lp(p, np.eye(6)[2], zero_one)[0] == pytest.approx(1 - p[2], abs=1e-12)


def test_emo_gradient_formula_and_mix():
    E, _ = pr.synonym_vocab(V=12, clusters=3, d=5)
    C = pr.cosine_cost_matrix(E)
    x = torch.tensor(RNG.normal(size=(3, 12)), requires_grad=True)
    t = torch.tensor([0, 5, 11])
    pr.emo_loss(x, t, E).sum().backward()
    p = torch.softmax(x.detach(), -1).numpy()
    for b, tb in enumerate(t.tolist()):
        cbar = p[b] @ C[:, tb]
        np.testing.assert_allclose(x.grad[b].numpy(), p[b] * (C[:, tb] - cbar), atol=1e-12)
    mix = pr.emo_mle_mix(x.detach(), t, E)
    ce, emo = pr.cross_entropy(x.detach(), t), pr.emo_loss(x.detach(), t, E)
    np.testing.assert_allclose(mix.numpy(), ce.numpy(), atol=1e-8)  # the value: (ce + ce/emo * emo)/2 = ce


def test_synonym_vocab_and_task():
    E, cid = pr.synonym_vocab()
    assert E.shape == (60, 16) and np.allclose(np.linalg.norm(E, axis=1), 1)
    cos = E @ E.T
    same = (cid[:, None] == cid[None, :]) & ~np.eye(60, dtype=bool)
    assert cos[same].mean() > 0.85 and abs(cos[cid[:, None] != cid[None, :]].mean()) < 0.1
    codes = torch.randn(12, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, y = pr.synonym_task(500, codes, cid, torch.Generator().manual_seed(1))
    assert u.shape == (500, 32) and y.min() >= 0 and y.max() < 60
    nearest = torch.cdist(u, codes).argmin(1)
    assert float((nearest == torch.as_tensor(cid)[y]).double().mean()) > 0.9  # the input identifies the cluster


# --------------------------------------------------------------------------- n x m
def _l1_loops(s, t):
    n, m = s.shape
    return sum(math.log(1 + sum(t[i, j] * math.exp(s[i, k] - s[i, j]) for i in range(n) for k in range(m) if k != j)) for j in range(m))


def _l3_loops(s, t):
    n, m = s.shape
    return sum(math.log(1 + sum(t[i, j] * math.exp(s[i].mean() - s[i, j]) for i in range(n))) for j in range(m))


def test_nm_losses_against_loops_and_reductions():
    for _ in range(10):
        s = RNG.normal(size=(4, 3)) * 2
        t = RNG.dirichlet(np.ones(3), size=4)
        assert float(pr.nm_loss_truncated(s, t)) == pytest.approx(_l1_loops(s, t), abs=1e-12)
        assert float(pr.nm_loss_centered(s, t)) == pytest.approx(_l3_loops(s, t), abs=1e-12)
        assert float(pr.nm_cross_entropy(s, t)) == pytest.approx(float(pr.cross_entropy(s, t).sum()), abs=1e-12)
    s2 = RNG.normal(size=(5, 2))
    T = RNG.uniform(size=5)
    t2 = np.stack([T, 1 - T], 1)
    d = s2[:, 0] - s2[:, 1]
    assert float(pr.nm_loss_truncated(s2, t2)) == pytest.approx(float(pr.multilabel_ce(d, T)), abs=1e-12)
    assert float(pr.nm_loss_centered(s2, t2)) == pytest.approx(float(pr.multilabel_ce(d / 2, T)), abs=1e-12)
    assert float(pr.multilabel_ce(np.array([30.0, -800]), np.array([1.0, 0]))) == pytest.approx(math.log1p(math.exp(-30)) , abs=1e-15)


def test_nm_optima_and_hard_labels():
    t = RNG.dirichlet(np.ones(4), size=6)
    for loss, close in ((pr.nm_cross_entropy, True), (pr.nm_loss_centered, True), (pr.nm_loss_truncated, False)):
        dev = np.abs(pr.softmax(pr.fit_free_logits(loss, t)) - t).max()
        assert (dev < 1e-6) if close else (dev > 0.05), (loss.__name__, dev)
    s = np.array([[10.0, 20.0, -100.0]])
    onehot = np.array([[1.0, 0.0, 0.0]])
    assert float(pr.nm_loss_centered(s, onehot)) < 1e-14 and float(pr.nm_cross_entropy(s, onehot)) > 9.99
    for _ in range(200):  # hard labels: l1 <= sum of cross entropies
        s = RNG.normal(size=(3, 4)) * 3
        hard = np.eye(4)[RNG.integers(0, 4, 3)]
        assert float(pr.nm_loss_truncated(s, hard)) <= float(pr.nm_cross_entropy(s, hard)) + 1e-12


def test_nm_and_emo_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        pr.nm_loss_truncated(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        pr.nm_loss_centered(np.ones((2, 3)), -np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pr.multilabel_ce(np.ones(3), np.full(3, 2.0))
    with pytest.raises(ValueError, match="equal mass"):
        pr.transport_cost_lp(np.array([0.5, 0.5]), np.array([1.0, 0.5]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="must match"):
        pr.transport_cost_lp(np.ones(2) / 2, np.ones(3) / 3, np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-zero"):
        pr.cosine_cost_matrix(np.zeros((2, 3)))
    E, _ = pr.synonym_vocab(V=6, clusters=3, d=4)
    with pytest.raises(ValueError, match="unit-norm"):
        pr.emo_loss(np.zeros(6), 0, 2 * E)
    with pytest.raises(ValueError, match="one-hot"):
        pr.emo_loss(np.zeros(6), np.full(6, 1 / 6), E)
    with pytest.raises(ValueError, match="multiple"):
        pr.synonym_vocab(V=10, clusters=3)
    with pytest.raises(TypeError, match="loss_fn"):
        pr.fit_free_logits(None, np.ones((2, 2)) / 2)
