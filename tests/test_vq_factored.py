"""Tests of kexue_lite.vq.factored (notebook simvq-linear-codebook, article 10519)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kexue_lite.vq import sgd_step_factored


def _factors(K: int = 6, d_q: int = 3, d: int = 4, dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(K, d_q, generator=g, dtype=dtype), torch.randn(d_q, d, generator=g, dtype=dtype),
            torch.randn(K, d, generator=g, dtype=dtype))


@pytest.mark.parametrize("freeze_Q", [False, True])
def test_matches_torch_sgd_on_autograd_gradients(freeze_Q: bool) -> None:
    """Independent reference: torch.optim.SGD on the parameters of the loss <G, Q W> (whose dL/dE is G)."""
    Q, W, G = _factors()
    eta = 0.037
    Qp, Wp = torch.nn.Parameter(Q.clone()), torch.nn.Parameter(W.clone())
    params = [Wp] if freeze_Q else [Qp, Wp]
    opt = torch.optim.SGD(params, lr=eta)
    (G * (Qp @ Wp)).sum().backward()
    opt.step()
    Q_new, W_new = sgd_step_factored(Q, W, G, eta, freeze_Q=freeze_Q)
    torch.testing.assert_close(Q_new, Qp.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(W_new, Wp.detach(), rtol=0, atol=1e-14)


def test_exact_second_order_expansion_and_article_first_order() -> None:
    """Q+ W+ = E - eta (G W^T W + Q Q^T G) + eta^2 G W^T Q^T G; the article's first-order error is O(eta^2)."""
    Q, W, G = _factors(K=8, d_q=4, d=4, seed=1)
    E = Q @ W
    errors = []
    for eta in (1e-1, 1e-2, 1e-3):
        Q_new, W_new = sgd_step_factored(Q, W, G, eta)
        first = E - eta * (G @ W.T @ W + Q @ Q.T @ G)
        exact = first + eta**2 * (G @ W.T @ Q.T @ G)
        assert float((Q_new @ W_new - exact).abs().max()) < 1e-13
        errors.append(float((Q_new @ W_new - first).abs().max()))
    slopes = np.diff(np.log10(errors)) / np.diff(np.log10([1e-1, 1e-2, 1e-3]))
    assert np.allclose(slopes, 2.0, atol=1e-9)


def test_frozen_Q_moves_every_code_by_the_kernel() -> None:
    """Frozen Q: E+ - E = -eta Q Q^T G exactly, so codes whose gradient row is zero move too."""
    Q, W, G = _factors(K=8, d_q=4, d=4, seed=2)
    G[2:] = 0.0  # only codes 0 and 1 selected
    eta = 0.05
    Q_new, W_new = sgd_step_factored(Q, W, G, eta, freeze_Q=True)
    assert torch.equal(Q_new, Q)
    delta = Q_new @ W_new - Q @ W
    torch.testing.assert_close(delta, -eta * Q @ Q.T @ G, rtol=0, atol=1e-15)
    assert bool((delta.norm(dim=1) > 1e-3).all())  # all 8 codes move, 2 were selected
    # plain VQ (the codebook itself is the parameter) moves only the selected rows
    assert int(((-eta * G).norm(dim=1) > 0).sum()) == 2


def test_identity_W_reduces_to_two_copies_of_plain_sgd_for_orthonormal_Q() -> None:
    """W = I and Q with orthonormal columns, K = d_q: G W^T W = G and Q Q^T G = G, so the first-order step is -2 eta G."""
    Q = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[0]
    W = torch.eye(5, dtype=torch.float64)
    G = torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    eta = 1e-3
    Q_new, W_new = sgd_step_factored(Q, W, G, eta)
    step = Q_new @ W_new - Q @ W
    torch.testing.assert_close(step, -2 * eta * G + eta**2 * G @ Q.T @ G, rtol=0, atol=1e-14)


def test_zero_eta_and_inputs_untouched() -> None:
    Q, W, G = _factors(seed=5)
    Q0, W0 = Q.clone(), W.clone()
    Q_new, W_new = sgd_step_factored(Q, W, G, 0.0)
    assert torch.equal(Q_new, Q0) and torch.equal(W_new, W0)
    sgd_step_factored(Q, W, G, 0.5)
    assert torch.equal(Q, Q0) and torch.equal(W, W0)
    Q_f, _ = sgd_step_factored(Q, W, G, 0.5, freeze_Q=True)
    Q_f += 1.0  # the frozen Q returned is a copy
    assert torch.equal(Q, Q0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_float64_and_numpy(dtype: torch.dtype) -> None:
    Q, W, G = _factors(dtype=dtype, seed=6)
    Q_new, W_new = sgd_step_factored(Q, W, G, 0.1)
    assert Q_new.dtype == dtype and W_new.dtype == dtype
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    Qn, Wn = sgd_step_factored(Q.numpy(), W.numpy(), G.numpy(), 0.1)
    assert isinstance(Qn, np.ndarray) and Qn.dtype == np_dtype and Wn.dtype == np_dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(Qn, Q_new.numpy(), atol=tol)
    np.testing.assert_allclose(Wn, W_new.numpy(), atol=tol)
    # against the hand-written rule, in float64
    Q64, W64, G64 = Q.double(), W.double(), G.double()
    np.testing.assert_allclose(Qn, (Q64 - 0.1 * G64 @ W64.T).numpy(), atol=tol)
    np.testing.assert_allclose(Wn, (W64 - 0.1 * Q64.T @ G64).numpy(), atol=tol)


def test_errors_name_the_argument() -> None:
    Q, W, G = _factors()
    with pytest.raises(ValueError, match="W"):
        sgd_step_factored(Q, W[:2], G, 0.1)
    with pytest.raises(ValueError, match="G"):
        sgd_step_factored(Q, W, G[:, :3], 0.1)
    with pytest.raises(ValueError, match="Q"):
        sgd_step_factored(Q[0], W, G, 0.1)
    with pytest.raises(ValueError, match="Q"):
        sgd_step_factored(Q[:0], W, G[:0], 0.1)
    with pytest.raises(TypeError, match="Q"):
        sgd_step_factored(Q.long(), W, G, 0.1)
    with pytest.raises(TypeError, match="W"):
        sgd_step_factored(Q, np.arange(12).reshape(3, 4), G, 0.1)
    with pytest.raises(TypeError, match="Q"):
        sgd_step_factored(Q.tolist(), W, G, 0.1)
    with pytest.raises(TypeError, match="dtype"):
        sgd_step_factored(Q.float(), W, G, 0.1)
    with pytest.raises(TypeError, match="numpy"):
        sgd_step_factored(Q.numpy(), W, G, 0.1)
    bad = G.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="G"):
        sgd_step_factored(Q, W, bad, 0.1)
    bad[0, 0] = float("-inf")
    with pytest.raises(ValueError, match="G"):
        sgd_step_factored(Q, W, bad, 0.1)
    for eta in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eta"):
            sgd_step_factored(Q, W, G, eta)
    with pytest.raises(TypeError, match="eta"):
        sgd_step_factored(Q, W, G, torch.tensor(0.1))
    with pytest.raises(TypeError, match="freeze_Q"):
        sgd_step_factored(Q, W, G, 0.1, freeze_Q="yes")
