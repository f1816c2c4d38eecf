"""Tests of kexue_lite.attention.mla (notebook attention/mha-mqa-gqa-mla, 10091).

References are independent of the module: a per-token, per-head numpy loop of the article's equations with RoPE
written out as explicit 2x2 rotation blocks, and a plain numpy GQA.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue_lite.attention import MultiHeadLatentAttention

SIZES = dict(d_model=64, n_heads=4, d_head=16, d_rope=8, d_c=24, d_cq=32)
# "equal to float64 rounding": a few ulp of the largest output (measured <= 3.5 eps over 40 seeds); 32 eps leaves room
TOL64 = 32 * torch.finfo(torch.float64).eps
TOL32 = 32 * torch.finfo(torch.float32).eps


def _rot_row(theta_pos: np.ndarray) -> np.ndarray:
    """Row-convention RoPE matrix: blocks [[cos, sin], [-sin, cos]] so that x R rotates each pair by +angle."""
    d = 2 * theta_pos.size
    R = np.zeros((d, d))
    for j, a in enumerate(theta_pos):
        R[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = [[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]
    return R


def _reference(m: MultiHeadLatentAttention, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The article's eq. (mla-mha), token by token and head by head, softmax scale 1/sqrt(d_head + d_rope)."""
    W = {k: v.detach().double().numpy() for k, v in m.named_parameters()}
    n = x.shape[0]
    theta = 10000.0 ** (-np.arange(m.d_rope // 2) * 2.0 / m.d_rope)
    R = [_rot_row(p * theta) for p in pos]
    cq = x @ W["W_dq"] if "W_dq" in W else x
    c = x @ W["W_dkv"]
    out = np.zeros_like(x)
    for t in range(n):
        for s in range(m.n_heads):
            q = np.concatenate([cq[t] @ W["W_qc"][s], cq[t] @ W["W_qr"][s] @ R[t]])
            logits, values = [], []
            for i in range(t + 1):
                k = np.concatenate([c[i] @ W["W_kc"][s], x[i] @ W["W_kr"] @ R[i]])
                logits.append(q @ k / math.sqrt(m.d_head + m.d_rope))
                values.append(c[i] @ W["W_v"][s])
            a = np.exp(np.array(logits) - max(logits))
            a /= a.sum()
            out[t] += (a @ np.array(values)) @ W["W_o"][s]
    return out


@pytest.fixture(scope="module")
def setup():
    m = MultiHeadLatentAttention(**SIZES, seed=3)
    x = torch.randn(10, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return m, x


def test_training_form_matches_article_equations(setup):
    m, x = setup
    pos = np.arange(10.0) * 3 + 2
    with torch.no_grad():
        y = m(x, positions=torch.tensor(pos)).numpy()
    ref = _reference(m, x.numpy(), pos)
    assert np.abs(y - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("merged", [False, True])
def test_absorbed_decode_equals_training_form_float64(setup, merged):
    m, x = setup
    with torch.no_grad():
        y = m(x)
        z, cache = m.decode(x, merged=merged)
    assert cache.shape == (10, SIZES["d_c"] + SIZES["d_rope"]) == (10, m.cache_width)
    assert (z - y).abs().max().item() <= TOL64 * y.abs().max().item()


def test_cache_holds_latent_and_shared_rope_key(setup):
    m, x = setup
    with torch.no_grad():
        _, cache = m.decode(x)
        c = x @ m.W_dkv
        k_r = x @ m.W_kr
    assert torch.allclose(cache[:, : m.d_c], c, rtol=0, atol=1e-13)
    theta = 10000.0 ** (-np.arange(4) / 4)   # base^(-2j/d_rope), d_rope = 8
    for i in range(10):
        assert np.allclose(cache[i, m.d_c :].numpy(), k_r[i].numpy() @ _rot_row(i * theta), atol=1e-13)


def test_batch_and_float32(setup):
    m, x = setup
    xb = torch.stack([x, x.flip(0)])
    with torch.no_grad():
        yb, (y0, y1) = m(xb), (m(x), m(x.flip(0)))
        zb, cache = m.decode(xb)
    assert torch.allclose(yb[0], y0, atol=1e-13) and torch.allclose(yb[1], y1, atol=1e-13)
    assert cache.shape == (2, 10, m.cache_width) and (zb - yb).abs().max().item() <= TOL64 * yb.abs().max().item()
    m32 = MultiHeadLatentAttention(**SIZES, seed=3, dtype=torch.float32)
    with torch.no_grad():
        y32, (z32, _) = m32(x.float()), m32.decode(x.float())
    assert y32.dtype == torch.float32 and (z32 - y32).abs().max().item() <= TOL32 * y32.abs().max().item()
    assert (y32.double() - y0).abs().max().item() <= 1e-5 * y0.abs().max().item()


def test_translation_invariance_and_causality(setup):
    m, x = setup
    pos = torch.arange(10, dtype=torch.float64)
    with torch.no_grad():
        y = m(x, positions=pos)
        y_shift = m(x, positions=pos + 5)
        x2 = x.clone()
        x2[-1] += 1.0
        y2 = m(x2)
    assert (y - y_shift).abs().max().item() <= 1e-12 * y.abs().max().item()
    assert torch.allclose(y[:-1], y2[:-1], rtol=0, atol=1e-14) and not torch.allclose(y[-1], y2[-1])


def test_gqa_is_mla_with_selection_matrices():
    d, h, g, dk, n = 32, 4, 2, 8, 7
    rng = np.random.default_rng(0)
    Wq, Wk, Wv, Wo = (rng.normal(size=s) / math.sqrt(s[0]) for s in ((d, h * dk), (d, g * dk), (d, g * dk), (h * dk, d)))
    x = rng.normal(size=(n, d))
    # plain GQA: head s uses kv head s // (h // g)
    q, k, v = (x @ Wq).reshape(n, h, dk), (x @ Wk).reshape(n, g, dk), (x @ Wv).reshape(n, g, dk)
    ref = np.zeros((n, h * dk))
    for s in range(h):
        grp = s // (h // g)
        logits = q[:, s] @ k[:, grp].T / math.sqrt(dk) + np.triu(np.full((n, n), -np.inf), 1)
        a = np.exp(logits - logits.max(1, keepdims=True))
        ref[:, s * dk : (s + 1) * dk] = (a / a.sum(1, keepdims=True)) @ v[:, grp]
    ref = ref @ Wo
    m = MultiHeadLatentAttention(d, h, dk, 0, 2 * g * dk)   # d_c = g (d_k + d_v), no RoPE, queries from x
    eye = np.eye(2 * g * dk)
    with torch.no_grad():
        m.W_dkv.copy_(torch.tensor(np.concatenate([Wk, Wv], axis=1)))
        for s in range(h):
            grp = s // (h // g)
            m.W_qc[s] = torch.tensor(Wq[:, s * dk : (s + 1) * dk])
            m.W_kc[s] = torch.tensor(eye[:, grp * dk : (grp + 1) * dk])
            m.W_v[s] = torch.tensor(eye[:, g * dk + grp * dk : g * dk + (grp + 1) * dk])
            m.W_o[s] = torch.tensor(Wo[s * dk : (s + 1) * dk])
        y = m(torch.tensor(x)).numpy()
        z = m.decode(torch.tensor(x))[0].numpy()
    assert np.abs(y - ref).max() <= 1e-12 and np.abs(z - ref).max() <= 1e-12


def test_cache_width_independent_of_heads_and_query_latent():
    x = torch.randn(5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    shapes = set()
    for h, d_cq in ((1, None), (2, 32), (8, 96)):
        m = MultiHeadLatentAttention(64, h, 16, 8, 24, d_cq=d_cq)
        with torch.no_grad():
            shapes.add(tuple(m.decode(x)[1].shape))
    assert shapes == {(5, 24 + 8)}


def test_absorbed_weights_shapes(setup):
    m, _ = setup
    w = m.absorbed_weights()
    assert w["W_qk"].shape == (4, 32, 24) and w["W_vo"].shape == (4, 24, 64)
    assert torch.allclose(w["W_qk"][1], m.W_qc[1] @ m.W_kc[1].T)


def test_errors(setup):
    m, x = setup
    with pytest.raises(ValueError, match="d_rope"):
        MultiHeadLatentAttention(64, 4, 16, 7, 24)
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadLatentAttention(64, 0, 16, 8, 24)
    with pytest.raises(TypeError, match="d_c"):
        MultiHeadLatentAttention(64, 4, 16, 8, 24.0)
    with pytest.raises(ValueError, match="rope_base"):
        MultiHeadLatentAttention(64, 4, 16, 8, 24, rope_base=float("nan"))
    with pytest.raises(TypeError, match="dtype"):
        MultiHeadLatentAttention(64, 4, 16, 8, 24, dtype=torch.int64)
    with pytest.raises(TypeError, match="x"):
        m(torch.ones(3, 64, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype"):
        m(x.float())
    with pytest.raises(ValueError, match="x"):
        m(x[:, :10])
    with pytest.raises(ValueError, match="x"):
        m(torch.full((2, 64), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="positions"):
        m(x, positions=torch.arange(3))
    with pytest.raises(TypeError, match="merged"):
        m.decode(x, merged=1)
