"""Unit and property tests of kexue_lite.training.residual (why-residuals-deepnet, 8994).

References are independent of the code under test: closed forms for a single linear layer (whose readout loss is
linear in the weights, so one SGD step changes it by exactly -lr ||g||^2), numpy re-implementations of the
forward pass, the exact second moment E f^2 = (1 + eps^2)^N of the expansion factor, a quadrature of
E log|1 + eps z| for d = 1, and the values the curriculum measured independently (median 1.62 at d = 64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch import nn

from kexue_lite.training import residual as R

torch.set_num_threads(1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- residual_mlp
@pytest.mark.parametrize("plain", [False, True])
def test_structure_and_parameter_count(plain):
    m = R.residual_mlp(5, 7, 0.3, plain=plain, generator=gen(0))
    n = sum(p.numel() for p in m.parameters())
    assert n == (1 if plain else 2) * 5 * 7 * 7
    assert all(isinstance(fc, nn.Linear) and fc.bias is None for fc in [*m.fc1, *m.fc2])
    assert m(torch.randn(3, 7, dtype=torch.float64)).shape == (3, 7)


def test_init_stds_are_he_and_lecun():
    d = 256
    m = R.residual_mlp(2, d, generator=gen(1))
    w1 = torch.cat([fc.weight.flatten() for fc in m.fc1])
    w2 = torch.cat([fc.weight.flatten() for fc in m.fc2])
    # 131072 samples each: the sample std is within 1% of the target with overwhelming probability
    assert abs(w1.std().item() / math.sqrt(2 / d) - 1) < 0.01
    assert abs(w2.std().item() / math.sqrt(1 / d) - 1) < 0.01
    assert abs(w1.mean().item()) < 0.01 * math.sqrt(2 / d) * 5


@pytest.mark.parametrize("plain", [False, True])
def test_forward_matches_numpy(plain):
    m = R.residual_mlp(4, 6, 0.7, plain=plain, generator=gen(2))
    x = np.random.default_rng(0).standard_normal((5, 6))
    h = x.copy()
    for l in range(4):
        W1 = m.fc1[l].weight.detach().numpy().T  # row convention y = x W
        if plain:
            h = np.maximum(h @ W1, 0)
        else:
            W2 = m.fc2[l].weight.detach().numpy().T
            h = h + 0.7 * np.maximum(h @ W1, 0) @ W2
    assert np.allclose(m(torch.tensor(x)).detach().numpy(), h, rtol=1e-12, atol=1e-12)


def test_eps_zero_is_identity_and_generator_reproducible():
    x = torch.randn(4, 9, dtype=torch.float64)
    assert torch.equal(R.residual_mlp(3, 9, 0.0, generator=gen(3))(x), x)
    a, b = R.residual_mlp(3, 9, generator=gen(4)), R.residual_mlp(3, 9, generator=gen(4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_float32_works():
    m = R.residual_mlp(3, 8, 0.5, generator=gen(5), dtype=torch.float32)
    x = torch.randn(4, 8)
    assert m(x).dtype == torch.float32
    st = R.depth_stats(m, x, torch.randn(4, 8))
    assert all(math.isfinite(v) for v in st.values())


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"depth": 0}, ValueError, "depth"), ({"width": 0}, ValueError, "width"), ({"depth": 2.0}, TypeError, "depth"),
    ({"eps": float("nan")}, ValueError, "eps"), ({"eps": -0.1}, ValueError, "eps"), ({"eps": "1"}, TypeError, "eps"),
    ({"plain": 1}, TypeError, "plain"), ({"generator": 3}, TypeError, "generator"),
    ({"dtype": torch.int64}, TypeError, "dtype"),
])
def test_residual_mlp_errors(kwargs, exc, word):
    args = {"depth": 2, "width": 4, **kwargs}
    with pytest.raises(exc, match=word):
        R.residual_mlp(**args)


def test_forward_rejects_bad_input():
    m = R.residual_mlp(2, 4)
    with pytest.raises(ValueError, match="width"):
        m(torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="x"):
        m(torch.ones(3, 4, dtype=torch.int64))


# ----------------------------------------------------------------------------- depth_stats
def test_depth_stats_single_linear_layer_closed_form():
    """y = x A^T, L = mean(y r): dL/dA = r^T x / (B d), dL/dx = r A / (B d), dL/dy = r / (B d)."""
    rng = np.random.default_rng(1)
    B, d = 6, 5
    x, r, A = rng.standard_normal((B, d)), rng.standard_normal((B, d)), rng.standard_normal((d, d))
    lin = nn.Linear(d, d, bias=False, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(A))
    st = R.depth_stats(lin, torch.tensor(x), torch.tensor(r))
    y = x @ A.T
    assert st["forward_gain"] == pytest.approx(np.sqrt((y**2).mean() / (x**2).mean()), rel=1e-12)
    assert st["backward_gain"] == pytest.approx(np.linalg.norm(r @ A) / np.linalg.norm(r), rel=1e-12)
    assert st["grad_sq"] == pytest.approx(np.sum((r.T @ x) ** 2) / (B * d) ** 2, rel=1e-12)
    assert st["n_params"] == d * d and st["loss"] == pytest.approx((y * r).mean(), rel=1e-12)
    assert lin.weight.grad is None  # no side effects on .grad


def test_depth_stats_eps_zero_has_no_parameter_gradient():
    m = R.residual_mlp(4, 8, 0.0, generator=gen(6))
    x, r = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    st = R.depth_stats(m, x, r)
    # the article's factor eps in dL/dtheta: it vanishes with eps, and the block is then the identity
    assert st["grad_sq"] == 0.0 and st["forward_gain"] == pytest.approx(1.0) and st["backward_gain"] == pytest.approx(1.0)


def test_depth_stats_mean_field_forward_gain():
    """Wide residual stack: |y|^2 ~ (1 + eps^2)^N |x|^2 (the article's near-orthogonal expansion)."""
    N, eps = 6, 0.5
    gains = []
    for s in range(4):
        m = R.residual_mlp(N, 512, eps, generator=gen(10 + s))
        st = R.depth_stats(m, torch.randn(64, 512, dtype=torch.float64, generator=gen(20 + s)),
                           torch.randn(64, 512, dtype=torch.float64))
        gains.append(st["forward_gain"] ** 2)
    assert np.mean(gains) == pytest.approx((1 + eps**2) ** N, rel=0.1)


def test_depth_stats_errors():
    m = R.residual_mlp(2, 4)
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="readout"):
        R.depth_stats(m, x, torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="readout"):
        R.depth_stats(m, x, torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x"):
        R.depth_stats(m, x * float("nan"), torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x"):
        R.depth_stats(m, x[:0], x[:0])
    with pytest.raises(TypeError, match="x"):
        R.depth_stats(m, x.long(), x)
    with pytest.raises(TypeError, match="model"):
        R.depth_stats(lambda t: t, x, x)


# ----------------------------------------------------------------------------- sgd_loss_change
def test_sgd_step_exact_for_a_linear_model():
    """The readout loss of one linear layer is linear in its weights: Delta L = -lr ||g||^2 exactly."""
    lin = nn.Linear(4, 4, bias=False, dtype=torch.float64)
    x, r = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    before = lin.weight.detach().clone()
    actual, predicted = R.sgd_loss_change(lin, x, r, 0.3)
    g = (r.T @ x) / (7 * 4)
    assert predicted == pytest.approx(-0.3 * float((g**2).sum()), rel=1e-12)
    assert actual == pytest.approx(predicted, rel=1e-10)
    assert torch.equal(lin.weight, before) and lin.weight.grad is None


def test_sgd_step_first_order_error_is_second_order():
    m = R.residual_mlp(6, 16, 0.4, generator=gen(7))
    x, r = torch.randn(8, 16, dtype=torch.float64, generator=gen(8)), torch.randn(8, 16, dtype=torch.float64, generator=gen(9))
    params = [p.detach().clone() for p in m.parameters()]
    errs = []
    for lr in (1e-2, 5e-3):
        actual, predicted = R.sgd_loss_change(m, x, r, lr)
        errs.append(abs(actual / predicted - 1))
    assert errs[1] < 1e-2 and errs[1] < 0.6 * errs[0]  # the relative error vanishes with lr (as lr or faster)
    assert all(torch.equal(p, q) for p, q in zip(params, m.parameters()))


@pytest.mark.parametrize("lr", [0.0, -1.0, float("inf")])
def test_sgd_lr_errors(lr):
    with pytest.raises(ValueError, match="lr"):
        R.sgd_loss_change(R.residual_mlp(1, 3), torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64), lr)


# ----------------------------------------------------------------------------- expansion_factors
@pytest.mark.parametrize("method", ["matrix", "direct", "radial"])
def test_expansion_second_moment_is_exact(method):
    """E ||v (I + eps J)||^2 = (1 + eps^2) ||v||^2 per layer, independently across layers: E f^2 = (1 + eps^2)^N."""
    N, eps, d, T = 10, 0.3, 3, 20000
    f = R.expansion_factors(d, N, eps, T, gen(11), method=method)
    f2 = f**2
    assert abs(f2.mean() - (1 + eps**2) ** N) < 4 * f2.std() / math.sqrt(T)


def test_expansion_one_dimension_log_mean_by_quadrature():
    """d = 1: log f = sum_l log|1 + eps z_l|; its mean is N E log|1 + eps z| (a quadrature)."""
    N, eps, T = 20, 0.5, 20000
    logs = R.expansion_factors(1, N, eps, T, gen(12), method="matrix", log=True)
    pdf = scipy.stats.norm.pdf
    # the integrand has a log singularity at z = -1/eps: split there
    sing = -1 / eps
    parts = [scipy.integrate.quad(lambda z: np.log(abs(1 + eps * z)) * pdf(z), a, b, limit=200)[0]
             for a, b in ((-np.inf, sing), (sing, np.inf))]
    assert abs(logs.mean() - N * sum(parts)) < 4 * logs.std() / math.sqrt(T)


@pytest.mark.parametrize("method", ["direct", "radial"])
def test_expansion_methods_agree_in_distribution(method):
    a = R.expansion_factors(8, 30, 0.2, 3000, gen(13), method="matrix")
    b = R.expansion_factors(8, 30, 0.2, 3000, gen(14), method=method)
    assert scipy.stats.ks_2samp(a, b).pvalue > 1e-3


def test_expansion_radial_one_dimension_is_a_product_of_abs_normals():
    """d = 1: the factor is prod |1 + eps z_l| exactly; compare with a numpy sample of that product."""
    N, eps, T = 25, 0.3, 4000
    ref = np.prod(np.abs(1 + eps * np.random.default_rng(5).standard_normal((T, N))), axis=1)
    f = R.expansion_factors(1, N, eps, T, gen(18), method="radial")
    assert scipy.stats.ks_2samp(f, ref).pvalue > 1e-3
    assert np.array_equal(f, R.expansion_factors(1, N, eps, T, gen(18), method="radial"))  # reproducible


def test_expansion_median_matches_curriculum_measurement():
    """The curriculum measured median 1.62 at d = 64, N = 100, eps = 0.1 (200 trials); the limit is sqrt(e)."""
    f = R.expansion_factors(64, 100, 0.1, 2000, gen(15), method="direct")
    assert abs(np.median(f) - 1.62) < 0.04
    assert np.allclose(R.expansion_factors(5, 7, 0.0, 10, gen(16)), 1.0, rtol=1e-14)


def test_expansion_errors_and_overflow():
    for kwargs, exc, word in [({"d": 0}, ValueError, "d"), ({"depth": -1}, ValueError, "depth"),
                              ({"eps": float("inf")}, ValueError, "eps"), ({"n_trials": 0}, ValueError, "n_trials"),
                              ({"method": "svd"}, ValueError, "method"), ({"generator": np.random.default_rng()}, TypeError, "generator"),
                              ({"log": "yes"}, TypeError, "log")]:
        args = {"d": 2, "depth": 3, "eps": 0.1, "n_trials": 4, **kwargs}
        with pytest.raises(exc, match=word):
            R.expansion_factors(**args)
    with pytest.raises(ValueError, match="log=True"):
        R.expansion_factors(4, 5000, 1.0, 3, gen(17), method="direct")
    assert np.isfinite(R.expansion_factors(4, 5000, 1.0, 3, gen(17), method="direct", log=True)).all()
    with pytest.raises(ValueError, match="log=True"):
        R.expansion_factors(4, 5000, 1.0, 3, gen(17), method="radial")
