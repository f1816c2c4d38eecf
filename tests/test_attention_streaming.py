"""Tests of kexue_lite.attention.streaming (attention-as-quadratic-rnn, 10017)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kexue_lite.attention.streaming import RecomputeAttentionLM, recompute_cost, state_size, streaming_softmax_attention


def _reference(q, K, V, scale):
    s = (K @ q) * scale
    w = np.exp(s - s.max())
    return (w / w.sum()) @ V


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_streaming_matches_batch_softmax(dtype, tol):
    rng = np.random.default_rng(0)
    q, K, V = rng.normal(size=5), rng.normal(size=(9, 5)), rng.normal(size=(9, 3))
    out = streaming_softmax_attention(q.astype(dtype), iter(K.astype(dtype)), iter(V.astype(dtype)), scale=0.7)
    assert out.dtype == dtype and out.shape == (3,)
    np.testing.assert_allclose(out, _reference(q, K, V, 0.7), atol=tol)


def test_streaming_single_key_returns_its_value_and_trace():
    v = np.array([1.5, -2.0])
    out, tr = streaming_softmax_attention(np.ones(3), [np.full(3, 4.0)], [v], return_trace=True)
    np.testing.assert_allclose(out, v)
    assert tr["m"].tolist() == [12.0] and tr["z"].tolist() == [1.0]


def test_streaming_trace_is_running_max_and_consistent():
    rng = np.random.default_rng(1)
    q, K, V = rng.normal(size=4), rng.normal(size=(7, 4)) * 3, rng.normal(size=(7, 2))
    out, tr = streaming_softmax_attention(q, list(K), list(V), return_trace=True)
    s = K @ q
    np.testing.assert_allclose(tr["s"], s)
    np.testing.assert_allclose(tr["m"], np.maximum.accumulate(s))
    # y_t e^{m_t} and z_t e^{m_t} are the unnormalised prefix sums, whatever the max
    for t in range(7):
        np.testing.assert_allclose(tr["z"][t] * np.exp(tr["m"][t]), np.exp(s[: t + 1]).sum(), rtol=1e-12)
        np.testing.assert_allclose(tr["y"][t] / tr["z"][t], _reference(q, K[: t + 1], V[: t + 1], 1.0), atol=1e-13)
    np.testing.assert_allclose(out, tr["y"][-1] / tr["z"][-1])


def test_streaming_is_order_invariant_and_survives_large_logits():
    rng = np.random.default_rng(2)
    q, K, V = rng.normal(size=4) * 30, rng.normal(size=(6, 4)) * 30, rng.normal(size=(6, 2))
    assert (K @ q).max() > 710  # exp would overflow in float64 without the running max
    a = streaming_softmax_attention(q, K, V)
    b = streaming_softmax_attention(q, K[::-1], V[::-1])
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, _reference(q, K, V, 1.0), atol=1e-12)


def test_streaming_consumes_generators_once():
    calls = []

    def gen(rows):
        for r in rows:
            calls.append(1)
            yield r

    K, V = np.eye(3), np.arange(6.0).reshape(3, 2)
    streaming_softmax_attention(np.zeros(3), gen(K), gen(V))
    assert len(calls) == 6


def test_streaming_errors():
    q = np.ones(2)
    with pytest.raises(ValueError, match="empty"):
        streaming_softmax_attention(q, [], [])
    with pytest.raises(ValueError, match="same length"):
        streaming_softmax_attention(q, [q, q], [q])
    with pytest.raises(TypeError, match="q"):
        streaming_softmax_attention(np.ones(2, dtype=int), [q], [q])
    with pytest.raises(ValueError, match="keys"):
        streaming_softmax_attention(q, [np.ones(3)], [q])
    with pytest.raises(ValueError, match=r"values\[0\]"):
        streaming_softmax_attention(q, [q], [np.array([np.nan])])
    with pytest.raises(ValueError, match="q"):
        streaming_softmax_attention(np.array([np.inf, 0.0]), [q], [q])
    with pytest.raises(ValueError, match="scale"):
        streaming_softmax_attention(q, [q], [q], scale=float("nan"))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_recompute_equals_masked_attention(dtype, tol):
    model = RecomputeAttentionLM(vocab_size=11, d=8, n_layers=3, seed=0, dtype=dtype)
    tokens = np.random.default_rng(1).integers(0, 11, 10)
    full = model.forward_full(tokens, return_all=True)
    assert full.dtype == dtype
    for layer in range(4):
        rec = np.stack([model.hidden(layer, t, tokens) for t in range(10)])
        np.testing.assert_allclose(rec, full[layer], atol=tol)


def test_masked_attention_is_causal():
    model = RecomputeAttentionLM(n_layers=2, seed=3)
    a = model.forward_full([1, 2, 3, 4, 5])
    b = model.forward_full([1, 2, 3, 9, 0])
    np.testing.assert_allclose(a[:3], b[:3], atol=1e-14)
    assert np.abs(a[3:] - b[3:]).max() > 1e-3


# closed forms T_1 = L(L+3)/2, T_2 = L(L+2)(L+7)/6, T_3 = L(L+5)(L^2+13L+18)/24 (derived independently by sympy)
CLOSED = {1: lambda L: L * (L + 3) // 2, 2: lambda L: L * (L + 2) * (L + 7) // 6,
          3: lambda L: L * (L + 5) * (L * L + 13 * L + 18) // 24}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_recompute_cost_closed_forms(n):
    for L in range(0, 40):
        assert recompute_cost(n, L) == CLOSED[n](L)


def test_recompute_cost_small_cases_by_hand():
    assert recompute_cost(0, 7) == 7  # embeddings only
    assert recompute_cost(1, 1) == 2  # query path + one key
    assert recompute_cost(4, 1) == 16  # C_N(0) = 2^N
    assert recompute_cost(5, 0) == 0
    assert recompute_cost(4, 16) == 36_464
    # leading term L^{N+1}/(N+1)!
    assert abs(recompute_cost(4, 4000) / (4000**5 / math.factorial(5)) - 1) < 0.01


@pytest.mark.parametrize("n", [1, 2, 3])
def test_counters_match_cost_and_memory_is_flat(n):
    model = RecomputeAttentionLM(n_layers=n, d=4, seed=0)
    tokens = np.random.default_rng(0).integers(0, 11, 9)
    peaks = []
    for L in (3, 6, 9):
        model.reset_counters()
        for t in range(L):
            model.hidden(n, t, tokens[:L])
        assert model.embedding_calls == recompute_cost(n, L)
        assert model.calls[0].sum() == recompute_cost(n, L) and np.all(model.calls[n] == 1)
        assert model.peak_frames == n + 1
        peaks.append(model.peak_live_floats)
    assert peaks[0] == peaks[1] == peaks[2] == n * (3 * 4 + 2) + 4
    assert model.kv_cache_floats(9) == 2 * n * 9 * 4


def test_model_errors():
    model = RecomputeAttentionLM(n_layers=2)
    with pytest.raises(ValueError, match="t must"):
        model.hidden(1, 5, [1, 2, 3])
    with pytest.raises(ValueError, match="layer"):
        model.hidden(3, 0, [1, 2, 3])
    with pytest.raises(ValueError, match="tokens"):
        model.hidden(1, 0, [1, 11])
    with pytest.raises(TypeError, match="tokens"):
        model.forward_full([0.5, 1.0])
    with pytest.raises(ValueError, match="tokens"):
        model.forward_full([])
    with pytest.raises(ValueError, match="n_layers"):
        RecomputeAttentionLM(n_layers=0)
    with pytest.raises(TypeError, match="dtype"):
        RecomputeAttentionLM(dtype=np.int64)


def test_state_size_and_errors():
    assert state_size(8192, 80) == 1_310_720  # LLaMA2-70B, the article's "about 1M"
    assert state_size(4096, 32) == 262_144
    with pytest.raises(ValueError, match="hidden"):
        state_size(0, 3)
    with pytest.raises(TypeError, match="layers"):
        state_size(8, 2.5)
    with pytest.raises(ValueError, match="L"):
        recompute_cost(2, -1)
    with pytest.raises(ValueError, match="n_layers"):
        recompute_cost(-1, 3)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_reuse_input_matches_binomial_and_same_output(n):
    # independent closed form: C_N(t) = binom(t+N, N), T_N(L) = binom(L+N, N+1) (hockey-stick identity)
    for L in range(0, 30):
        assert recompute_cost(n, L, reuse_input=True) == math.comb(L + n, n + 1)
    model = RecomputeAttentionLM(n_layers=n, d=4, seed=1)
    tokens = np.random.default_rng(5).integers(0, 11, 7)
    plain = np.stack([model.hidden(n, t, tokens) for t in range(7)])
    model.reset_counters()
    reused = np.stack([model.hidden(n, t, tokens, reuse_input=True) for t in range(7)])
    np.testing.assert_allclose(reused, plain, atol=1e-13)
    assert model.embedding_calls == math.comb(7 + n, n + 1) < recompute_cost(n, 7)
    assert model.peak_frames == n + 1 and model.peak_live_floats == n * (3 * 4 + 2) + 4
    with pytest.raises(TypeError, match="reuse_input"):
        model.hidden(n, 0, tokens, reuse_input=1)
    with pytest.raises(TypeError, match="reuse_input"):
        recompute_cost(n, 3, reuse_input="yes")
