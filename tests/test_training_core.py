"""Tests of the shared tiny Transformer: BlockConfig, MultiHeadAttention, GatedAttentionUnit, TransformerBlock,
init_weights, TinyTransformer, ActivationRecorder, train and make_batch (kexue_lite.training, kexue_lite.attention.modules).

Reference values come from independent computations: torch's scaled_dot_product_attention, the formulas written out
here with einsum, closed-form standard deviations and the definitions of the tasks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from kexue_lite import attention as A
from kexue_lite import training as T


def _x(B=2, n=6, d=32, seed=0, dtype=torch.float64):
    return torch.randn(B, n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("n_kv", [4, 2, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_sdpa(n_kv, causal):
    cfg = T.BlockConfig(n_kv_heads=n_kv, causal=causal)
    mha = T.init_weights(A.MultiHeadAttention(cfg), cfg, torch.Generator().manual_seed(1)).double()
    x = _x()
    B, n, _ = x.shape
    q = mha.q_proj(x).view(B, n, 4, 8).transpose(1, 2)
    k = mha.k_proj(x).view(B, n, n_kv, 8).transpose(1, 2).repeat_interleave(4 // n_kv, 1)
    v = mha.v_proj(x).view(B, n, n_kv, 8).transpose(1, 2).repeat_interleave(4 // n_kv, 1)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(B, n, 32)
    torch.testing.assert_close(mha(x), mha.o_proj(ref), rtol=0, atol=1e-12)


def test_mha_attn_scale_and_mask():
    x = _x()
    for scale, want in ((True, 8 ** -0.5), (False, 1.0), (0.3, 0.3)):
        assert T.BlockConfig(attn_scale=scale).scale == pytest.approx(want)
    cfg = T.BlockConfig()
    mha = A.MultiHeadAttention(cfg).double()
    mask = torch.rand(6, 6, generator=torch.Generator().manual_seed(3)) < 0.5
    mask |= torch.eye(6, dtype=torch.bool)
    w = mha.weights(x, mask=mask)
    assert torch.all(w[..., ~mask] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one key"):
        mha(x, mask=torch.zeros(6, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        mha(x, mask=torch.ones(6, 6))
    with pytest.raises(ValueError, match="mask"):
        mha(x, mask=torch.ones(5, 5, dtype=torch.bool))


def test_mha_rope_is_relative():
    """With RoPE and no other position signal, shifting every position by a constant leaves the output unchanged."""
    cfg = T.BlockConfig(rope=True)
    mha = A.MultiHeadAttention(cfg).double()
    x = _x()
    base = mha(x, positions=torch.arange(6))
    torch.testing.assert_close(mha(x, positions=torch.arange(6) + 17), base, rtol=0, atol=1e-11)
    assert not torch.allclose(mha(x, positions=torch.arange(6) * 2), base)
    with pytest.raises(ValueError, match="positions"):
        mha(x, positions=torch.arange(5))


def test_gau_matches_the_formula():
    for causal in (False, True):
        cfg = T.BlockConfig(mixer="gau", gau_s=8, causal=causal)
        gau = T.init_weights(A.GatedAttentionUnit(cfg), cfg, torch.Generator().manual_seed(2)).double()
        with torch.no_grad():
            gau.qk_scale.normal_()
            gau.qk_offset.normal_()
        x = _x()
        n, e = 6, 64
        uv = F.silu(x @ gau.uv_proj.weight.T + gau.uv_proj.bias)
        u, v = uv[..., :e], uv[..., e:]
        z = F.silu(x @ gau.z_proj.weight.T + gau.z_proj.bias)
        q = z * gau.qk_scale[0] + gau.qk_offset[0]
        k = z * gau.qk_scale[1] + gau.qk_offset[1]
        a = torch.einsum("bis,bjs->bij", q, k) / math.sqrt(8)
        a = torch.where(a > 0, a, torch.zeros_like(a)) ** 2 / n
        if causal:
            a = a * torch.ones(n, n, dtype=torch.float64).tril()
        want = (u * torch.einsum("bij,bje->bie", a, v)) @ gau.o_proj.weight.T + gau.o_proj.bias
        torch.testing.assert_close(gau(x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("position", ["pre", "post", "none"])
def test_block_sublayer_formulas(position):
    cfg = T.BlockConfig(norm_position=position, alpha=1.7, branch_scale=0.3)
    blk = T.init_weights(T.TransformerBlock(cfg), cfg, torch.Generator().manual_seed(4)).double()
    x = _x()
    ln = lambda t, norm: F.layer_norm(t, (32,), norm.weight, norm.bias, 1e-5)  # noqa: E731
    if position == "pre":
        h = 1.7 * x + 0.3 * blk.mixer(ln(x, blk.norm1))
        want = 1.7 * h + 0.3 * blk.ffn(ln(h, blk.norm2))
    elif position == "post":
        h = ln(1.7 * x + 0.3 * blk.mixer(x), blk.norm1)
        want = ln(1.7 * h + 0.3 * blk.ffn(h), blk.norm2)
    else:
        h = 1.7 * x + 0.3 * blk.mixer(x)
        want = 1.7 * h + 0.3 * blk.ffn(h)
        assert isinstance(blk.norm1, torch.nn.Identity)
    torch.testing.assert_close(blk(x), want, rtol=0, atol=1e-12)


def test_rmsnorm_and_gau_block_has_no_ffn():
    cfg = T.BlockConfig(norm_type="rmsnorm", mixer="gau")
    blk = T.TransformerBlock(cfg).double()
    assert blk.ffn is None and isinstance(blk.norm2, torch.nn.Identity)
    x = _x()
    y = blk.norm1(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, 6, dtype=torch.float64), rtol=1e-4, atol=0)


@pytest.mark.parametrize("init,fn", [("xavier", lambda i, o: math.sqrt(2 / (i + o))), ("lecun", lambda i, o: math.sqrt(1 / i)),
                                     ("he", lambda i, o: math.sqrt(2 / i)), ("normal", lambda i, o: 0.05)])
def test_init_std_and_gain(init, fn):
    cfg = T.BlockConfig(d_model=128, n_heads=4, init=init, init_std=0.05, init_gain=0.5)
    blk = T.init_weights(T.TransformerBlock(cfg), cfg, torch.Generator().manual_seed(5))
    for name, gain in (("q_proj", 1.0), ("v_proj", 0.5), ("o_proj", 0.5)):
        w = getattr(blk.mixer, name).weight
        assert w.std().item() == pytest.approx(gain * fn(128, 128), rel=0.03)
        assert torch.all(getattr(blk.mixer, name).bias == 0)
    assert blk.ffn.fc1.weight.std().item() == pytest.approx(0.5 * fn(128, 512), rel=0.03)
    cfg_gau = T.BlockConfig(mixer="gau", gau_qk_init="normal")
    gau = T.init_weights(T.TransformerBlock(cfg_gau), cfg_gau).mixer
    assert 0.005 < gau.qk_scale.std().item() < 0.05 and torch.all(gau.qk_offset == 0)


def test_tiny_transformer_heads_hidden_and_skip():
    cfg = T.BlockConfig()
    m = T.TinyTransformer(cfg, 3, vocab_size=11, head="lm", seed=0).double()
    assert m.head.weight is m.embed.weight and isinstance(m.final_norm, torch.nn.LayerNorm)
    ids = torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(0))
    out, hidden = m(ids, return_hidden=True)
    assert out.shape == (2, 7, 11) and len(hidden) == 4
    torch.testing.assert_close(out, m.final_norm(hidden[-1]) @ m.embed.weight.T + m.head.bias)
    _, skipped = m(ids, skip_layers=(1,), return_hidden=True)
    torch.testing.assert_close(skipped[2], skipped[1])
    torch.testing.assert_close(skipped[1], hidden[1])
    mlm = T.TinyTransformer(T.BlockConfig(norm_position="post"), 2, vocab_size=11, head="mlm", embed_norm=True)
    assert mlm.head.decoder.weight is mlm.embed.weight and isinstance(mlm.final_norm, torch.nn.Identity)
    cls = T.TinyTransformer(cfg, 2, head="cls", n_classes=3)
    assert cls(torch.randn(4, 5, 32)).shape == (4, 3)
    a, b = T.TinyTransformer(cfg, 2, vocab_size=5, seed=3), T.TinyTransformer(cfg, 2, vocab_size=5, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="skip_layers"):
        m(ids, skip_layers=(3,))
    with pytest.raises(TypeError, match="inputs"):
        m(ids.double())
    with pytest.raises(ValueError, match="head"):
        T.TinyTransformer(cfg, 2, head="seq")
    with pytest.raises(ValueError, match="max_len"):
        T.TinyTransformer(cfg, 1, vocab_size=5, max_len=4)(torch.zeros(1, 5, dtype=torch.long))


def test_recorder_statistics_hooks_and_grads():
    cfg = T.BlockConfig(norm_position="post", branch_scale=0.5)
    m = T.TinyTransformer(cfg, 3, vocab_size=9, head="lm", seed=1).double()
    ids = torch.randint(0, 9, (3, 5), generator=torch.Generator().manual_seed(1))
    with T.ActivationRecorder(m, grads=True) as rec:
        m(ids)  # an earlier call is forgotten
        out, hidden = m(ids, return_hidden=True)
        out.square().mean().backward()
    assert rec.n_calls == 2
    s = rec.stats()
    for l in range(3):
        x, y = hidden[l].detach(), hidden[l + 1].detach()
        assert s["rel_increment"][l] == pytest.approx(((y - x).norm() / x.norm()).item())
        assert s["cos"][l] == pytest.approx(F.cosine_similarity(x, y, dim=-1).mean().item())
        assert s["branch_ratio_mixer"][l] == pytest.approx(
            (rec.branches[l]["mixer"].pow(2).mean().sqrt() / x.pow(2).mean().sqrt()).item())
    g = torch.autograd.grad(m(ids, return_hidden=True)[1][2].sum(), m.embed.weight)[0]  # outside: not recorded
    assert g.shape == m.embed.weight.shape and rec.n_calls == 2
    assert not any(b._forward_hooks for b in m.blocks) and not m._forward_pre_hooks
    assert np.all(rec.param_grad_norms() > 0) and np.all(s["grad_rms"] > 0)
    with pytest.raises(RuntimeError):
        with T.ActivationRecorder(m):
            raise RuntimeError("boom")
    assert not any(b._forward_hooks for b in m.blocks)
    with pytest.raises(TypeError, match="blocks"):
        T.ActivationRecorder(torch.nn.Linear(2, 2))


def test_train_warmup_learns_and_is_reproducible():
    torch.set_num_threads(1)
    cfg = T.BlockConfig(d_model=16, n_heads=2)
    batch = lambda g: T.make_batch("reverse", 16, 6, 6, g)  # noqa: E731
    runs = []
    for _ in range(2):
        m = T.TinyTransformer(cfg, 2, vocab_size=6, head="token", seed=0, embed_std=0.5)
        runs.append(T.train(m, batch, steps=300, lr=1e-2, warmup=20, seed=7))
    np.testing.assert_array_equal(runs[0]["loss"], runs[1]["loss"])
    np.testing.assert_allclose(runs[0]["lr"][:3], 1e-2 * np.array([1, 2, 3]) / 20)
    assert runs[0]["lr"][-1] == 1e-2 and not runs[0]["diverged"]
    assert runs[0]["loss"][-10:].mean() < 0.1 * math.log(6)  # reversing is learnt (chance = log 6)
    with pytest.raises(ValueError, match="steps"):
        T.train(m, batch, steps=0, lr=1e-3)
    with pytest.raises(ValueError, match="optimizer"):
        T.train(m, batch, steps=1, lr=1e-3, optimizer="lion")


def test_train_reports_divergence():
    m = T.TinyTransformer(T.BlockConfig(d_model=8, n_heads=2, norm_position="none"), 2, vocab_size=4, head="token", seed=0)
    res = T.train(m, lambda g: T.make_batch("copy", 8, 4, 4, g), steps=50, lr=1e6, optimizer="sgd")
    assert res["diverged"] and np.isnan(res["loss"][-1])


def test_make_batch_tasks():
    g = torch.Generator().manual_seed(0)
    x, y = T.make_batch("sort", 5, 9, 7, g)
    assert torch.equal(y, torch.sort(x, 1).values) and torch.all(y[:, 1:] >= y[:, :-1])
    x, y = T.make_batch("sort_desc", 5, 9, 7, g)
    assert torch.all(y[:, 1:] <= y[:, :-1])
    x, y = T.make_batch("reverse", 5, 9, 7, g)
    assert torch.equal(y[:, 0], x[:, -1])
    x, y = T.make_batch("assoc_recall", 50, 9, 10, g)  # P = 4 keys from {0..4}, values from {5..9}
    keys, values = x[:, 0:8:2], x[:, 1:8:2]
    assert torch.all(keys < 5) and torch.all(values >= 5)
    assert all(len(set(r.tolist())) == 4 for r in keys)
    for b in range(50):
        (pos,) = torch.nonzero(keys[b] == x[b, -1], as_tuple=True)
        assert y[b] == values[b, pos.item()]
    (ids, seg), s = T.make_batch("uniae_copy", 3, 4, 8, g)
    assert ids.shape == (3, 10) and torch.all(ids[:, 0] == 8) and torch.all(ids[:, 5] == 9)
    assert torch.equal(ids[:, 1:5], s) and torch.equal(ids[:, 6:], s)
    assert seg[0].tolist() == [0] * 5 + [1] * 5
    for bad, err in ((dict(task="parity"), ValueError), (dict(vocab=1), ValueError), (dict(seq_len=2.0), TypeError)):
        kw = dict(task="copy", batch_size=2, seq_len=4, vocab=5) | bad
        with pytest.raises(err, match=list(bad)[0]):
            T.make_batch(**kw)
    with pytest.raises(ValueError, match="seq_len"):
        T.make_batch("assoc_recall", 2, 8, 10)


@pytest.mark.parametrize("kw,err,name", [
    (dict(d_model=30, n_heads=4), ValueError, "divisible"), (dict(n_kv_heads=3), ValueError, "n_kv_heads"),
    (dict(mixer="rnn"), ValueError, "mixer"), (dict(activation="tanh"), ValueError, "activation"),
    (dict(norm_position="sandwich"), ValueError, "norm_position"), (dict(init="orthogonal"), ValueError, "init"),
    (dict(norm_eps=0.0), ValueError, "norm_eps"), (dict(d_model=0), ValueError, "d_model"),
    (dict(d_model=32.0), TypeError, "d_model"), (dict(alpha=float("nan")), ValueError, "alpha"),
    (dict(rope=True, d_head=7, d_model=28), ValueError, "d_head"), (dict(dropout=1.0), ValueError, "dropout"),
    (dict(mixer="none", ffn=False), ValueError, "sublayer"), (dict(rope=True, rope_freqs=torch.ones(3)), ValueError, "rope_freqs"),
])
def test_block_config_rejects_bad_values(kw, err, name):
    with pytest.raises(err, match=name):
        T.BlockConfig(**kw)


def test_defaults_are_filled():
    cfg = T.BlockConfig(d_model=48, n_heads=6, mixer="gau")
    assert (cfg.d_head, cfg.n_kv_heads, cfg.d_ff, cfg.ffn) == (8, 6, 192, False)
    assert T.BlockConfig().ffn is True


def test_float32_forward_is_finite():
    m = T.TinyTransformer(T.BlockConfig(rope=True, causal=True), 2, vocab_size=7, head="lm", positional="none", seed=0)
    out = m(torch.randint(0, 7, (2, 9)))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
