"""Tests of kexue_lite.training.extrapolation (length-extrapolation-review, kexue.fm/archives/9948)."""

import math

import numpy as np
import pytest
import torch

from kexue_lite import positional as pos
from kexue_lite import training
from kexue_lite.training import extrapolation as ex


def _model(seed=0, dtype=torch.float32):
    cfg = training.BlockConfig(d_model=16, n_heads=2, rope=True, causal=True)
    m = training.TinyTransformer(cfg, 2, vocab_size=20, head="lm", positional="none", seed=seed).to(dtype)
    return m.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_direct_equals_the_model(dtype):
    model = _model(dtype=dtype)
    x = torch.randint(0, 20, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    out = ex.scheme_forward(model, x, ex.make_scheme("direct", 8, 1e4, 24, 24))
    assert out.dtype == dtype
    assert torch.allclose(out, ref, atol=1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("name", ["pi", "ntk", "yarn", "yarn_logn", "logn", "rerope", "leaky_rerope"])
def test_every_scheme_at_scale_one_is_plain_rope(name):
    """s = 1 (L_test = L_train), window >= n: the scheme is the model itself."""
    model = _model()
    x = torch.randint(0, 20, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
    out = ex.scheme_forward(model, x, ex.make_scheme(name, 8, 1e4, 16, 16, window=16))
    assert torch.allclose(out, ref, atol=1e-5)


def test_rerope_equals_the_definition():
    rng = np.random.default_rng(0)
    n, d, w = 40, 16, 7
    q, k = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    theta = pos.rope_freqs(d)
    causal = np.tril(np.ones((n, n), dtype=bool))
    for name, kl in (("rerope", math.inf), ("leaky_rerope", 4.0)):
        P = pos.relative_positions(n, name, window=w, k_leak=None if math.isinf(kl) else kl)
        ref = pos.scores_from_relative(q, k, P, theta)
        out = ex.scheme_logits(torch.as_tensor(q), torch.as_tensor(k), theta, window=w, k_leak=kl).numpy()
        assert np.abs(out - ref)[causal].max() < 1e-10


def test_pi_and_logn_against_direct_definitions():
    rng = np.random.default_rng(1)
    n, d = 30, 8
    q, k = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    theta = pos.rope_freqs(d)
    P = np.subtract.outer(np.arange(n), np.arange(n)).astype(float)
    pi = ex.scheme_logits(torch.as_tensor(q), torch.as_tensor(k), theta, pos_scale=3.0).numpy()
    assert np.allclose(pi, pos.scores_from_relative(q, k, P / 3.0, theta), atol=1e-10)
    ln = ex.scheme_logits(torch.as_tensor(q), torch.as_tensor(k), theta, logn_L_train=10).numpy()
    lam = np.maximum(1.0, np.log(np.arange(1, n + 1)) / np.log(10))  # queries 10..n get ln(m+1)/ln 10 > 1
    assert np.allclose(ln, lam[:, None] * pos.scores_from_relative(q, k, P, theta), atol=1e-10)
    assert lam[9] == 1.0 and lam[10] > 1.0


def test_yarn_and_ntk_logits_against_closed_forms():
    """YaRN at d = 16, base 1e4, L_train = 64, s = 4: theta_i = 10^(-i/2), r_i = 64 theta_i / (2 pi) turns,
    gamma_i = clip((r_i - 1)/31, 0, 1), factor gamma + (1 - gamma)/4, logits times (1 + 0.1 ln 4)^2; NTK: base
    1e4 * 4^(16/14). Written from the definitions, not from kexue_lite.positional."""
    rng = np.random.default_rng(3)
    n, d = 20, 16
    q, k = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    theta = 10.0 ** (-np.arange(d // 2) / 2)
    gamma = np.clip((64 * theta / (2 * math.pi) - 1) / 31, 0, 1)
    assert 0 < gamma[0] < 1 and gamma[1:].max() < 0.1  # the fastest is ramped, not kept: 10.2 turns < 32
    yarn_theta = (gamma + (1 - gamma) / 4) * theta
    ntk_theta = (1e4 * 4 ** (16 / 14)) ** (-np.arange(d // 2) * 2 / d)
    P = np.subtract.outer(np.arange(n), np.arange(n)).astype(float)

    def scores(th):  # sum over pairs of |q_i||k_i| cos(angle difference - P theta_i), interleaved pairs
        qc, kc = q[:, 0::2] + 1j * q[:, 1::2], k[:, 0::2] + 1j * k[:, 1::2]
        return np.real(np.einsum("mi,ji,mji->mj", qc, np.conj(kc), np.exp(1j * P[:, :, None] * th[None, None, :])))

    for name, th, factor in (("yarn", yarn_theta, (1 + 0.1 * math.log(4)) ** 2), ("ntk", ntk_theta, 1.0)):
        sc = ex.make_scheme(name, 16, 1e4, 64, 256)
        assert np.allclose(sc["theta"], th, rtol=1e-12)
        out = ex.scheme_logits(torch.as_tensor(q), torch.as_tensor(k), sc["theta"], logit_scale=sc["logit_scale"]).numpy()
        assert np.allclose(out, factor * scores(th), atol=1e-10)
    yl = ex.make_scheme("yarn_logn", 16, 1e4, 64, 256)
    assert np.allclose(yl["theta"], yarn_theta, rtol=1e-12) and yl["logit_scale"] == 1.0 and yl["logn_L_train"] == 64


def test_scheme_of_another_base_is_refused():
    model = _model()
    x = torch.randint(0, 20, (1, 8), generator=torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match="base"):
        ex.scheme_forward(model, x, ex.make_scheme("direct", 8, 500.0, 8, 8))


def test_make_scheme_values():
    sc = ex.make_scheme("yarn", 16, 1e4, 64, 256)
    assert abs(sc["logit_scale"] - (1 + 0.1 * math.log(4)) ** 2) < 1e-12
    ntk = ex.make_scheme("ntk", 16, 1e4, 64, 256)["theta"]
    assert abs(ntk[-1] / pos.rope_freqs(16)[-1] - 0.25) < 1e-12  # the lowest frequency divided by s
    assert ex.make_scheme("pi", 16, 1e4, 64, 256)["pos_scale"] == 4.0
    assert ex.make_scheme("rerope", 16, 1e4, 64, 256)["window"] == 32


def test_induction_batch():
    x, y = ex.induction_batch(5, 20, 30, torch.Generator().manual_seed(0), period=6)
    assert x.shape == y.shape == (5, 20)
    assert torch.equal(x[:, 6:], x[:, :-6]) and torch.equal(y[:, :-1], x[:, 1:])
    assert all(len(set(row[:6].tolist())) == 6 for row in x)
    ce, acc = ex.induction_loss(torch.nn.functional.one_hot(y, 30).float() * 50, y, 6)
    assert np.isnan(ce[:6]).all() and np.isnan(ce[-1]) and np.nanmax(ce) < 1e-6 and np.nanmin(acc) == 1.0


@pytest.mark.parametrize("call, word", [
    (lambda: ex.make_scheme("bogus", 8, 1e4, 8, 8), "name"),
    (lambda: ex.make_scheme("pi", 7, 1e4, 8, 8), "d"),
    (lambda: ex.make_scheme("pi", 8, float("nan"), 8, 8), "base"),
    (lambda: ex.make_scheme("rerope", 8, 1e4, 8, 16, window=0), "window"),
    (lambda: ex.make_scheme("leaky_rerope", 8, 1e4, 8, 16, k_leak=1.0), "k_leak"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(4, 8), pos.rope_freqs(8), pos_scale=0.0), "pos_scale"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(4, 8), pos.rope_freqs(8), scale=float("nan")), "scale"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(3, 8), pos.rope_freqs(8)), "q and k"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(4, 8), pos.rope_freqs(8), logit_scale=float("inf")), "logit_scale"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(4, 8), pos.rope_freqs(8), k_leak=0.5), "k_leak"),
    (lambda: ex.scheme_logits(torch.full((4, 8), float("inf")), torch.zeros(4, 8), pos.rope_freqs(8)), "q and k"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8, dtype=torch.long), torch.zeros(4, 8, dtype=torch.long), pos.rope_freqs(8)), "q must"),
    (lambda: ex.scheme_logits(torch.zeros(4, 8), torch.zeros(4, 8), pos.rope_freqs(8), logn_L_train=1), "logn_L_train"),
    (lambda: ex.induction_batch(2, 10, 3, period=4), "vocab"),
    (lambda: ex.induction_batch(2, 10, 30, period=9), "period"),
    (lambda: ex.induction_batch(0, 10, 30), "batch_size"),
])
def test_bad_input_names_the_argument(call, word):
    with pytest.raises(ValueError, match=word):
        call()
