"""Tests of kexue_lite.training.widening (lossless-widening, 8444).

The reference for every exactness test is independent of the widening code: the original model's own output.
"""

from __future__ import annotations

import math

import pytest
import torch

from kexue_lite import training
from kexue_lite.training import copy_divergence, widen_index, widen_model, widen_vector


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random, norm weights around 1, so that biases, gammas and betas all matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if p.ndim == 1:
                p.copy_(0.5 * noise + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return model.eval()


def _bert(norm: str = "post", rope: bool = False, eps: float = 1e-5, dtype=torch.float64, seed: int = 0,
          n_heads: int = 2, **cfg_kw):
    cfg = training.BlockConfig(d_model=8, n_heads=n_heads, d_ff=16, norm_position=norm, rope=rope, norm_eps=eps, **cfg_kw)
    model = training.TinyTransformer(cfg, 2, vocab_size=20, max_len=7, head="mlm", embed_norm=True)
    return _randomise(model.to(dtype), seed)


IDS = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(1))


def _err(model, wide, ids=IDS) -> float:
    with torch.no_grad():
        return (wide(ids) - model(ids)).abs().max().item()


# ------------------------------------------------------------------ widen_vector / widen_index
def test_widen_index_reference_layouts():
    assert widen_index(3, 2).tolist() == [0, 0, 1, 1, 2, 2]
    assert widen_index(3, 2, "tile").tolist() == [0, 1, 2, 0, 1, 2]
    assert widen_index(4, 2, "pairwise").tolist() == [0, 1, 0, 1, 2, 3, 2, 3]
    assert widen_index(2, 3, "pairwise").tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_widen_vector_preserves_norm_and_repeats(dtype, k):
    x = torch.randn(4, 6, dtype=dtype)
    y = widen_vector(x, k)
    assert y.dtype == dtype and y.shape == (4, 6 * k)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y.reshape(4, 6, k) * math.sqrt(k), x[..., None].expand(4, 6, k))
    # the mean and the variance shrink by sqrt(k) and k, which is what LayerNorm cancels
    torch.testing.assert_close(y.mean(-1), x.mean(-1) / math.sqrt(k))
    torch.testing.assert_close(y.var(-1, unbiased=False), x.var(-1, unbiased=False) / k)


def test_widen_vector_pairwise_and_unscaled():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert widen_vector(x, 2, pairwise=True, scale=False).tolist() == [1, 2, 1, 2, 3, 4, 3, 4]
    torch.testing.assert_close(widen_vector(x, 2, tile=True), torch.tensor([1.0, 2, 3, 4, 1, 2, 3, 4]) / math.sqrt(2))


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(x=torch.ones(3), k=0), ValueError, "k"),
        (dict(x=torch.ones(3), k=2.0), ValueError, "k"),
        (dict(x=torch.ones(3, dtype=torch.long)), TypeError, "x"),
        (dict(x=torch.tensor([1.0, float("nan")])), ValueError, "x"),
        (dict(x=torch.ones(0)), ValueError, "x"),
        (dict(x=torch.ones(3), pairwise=True), ValueError, "pairwise"),
        (dict(x=[1.0, 2.0]), TypeError, "x"),
    ],
)
def test_widen_vector_bad_input(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        widen_vector(**kwargs)


# ------------------------------------------------------------------ widen_model: exactness
@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("k", [2, 3])
def test_widening_is_exact_in_float64(norm, rope, k):
    model = _bert(norm, rope)
    wide = widen_model(model, k)
    assert wide.cfg.d_model == 8 * k and wide.cfg.n_heads == 2
    assert _err(model, wide) <= 1e-9
    assert copy_divergence(wide, k) == 0.0


def test_widening_relu_t5_style_and_untouched_original():
    model = _bert("pre", activation="relu", attn_scale=False, norm_type="rmsnorm")
    before = {n: p.clone() for n, p in model.named_parameters()}
    wide = widen_model(model, 2)
    assert _err(model, wide) <= 1e-9
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_widening_lm_head_tied_causal():
    cfg = training.BlockConfig(d_model=8, n_heads=2, d_ff=16, causal=True, rope=True)
    model = _randomise(training.TinyTransformer(cfg, 2, vocab_size=20, max_len=7, head="lm").double(), 3)
    assert _err(model, widen_model(model, 2)) <= 1e-9


def test_widening_float32_bert_eps():
    model = _bert(eps=1e-12, dtype=torch.float32)
    wide = widen_model(model, 2)
    assert next(wide.parameters()).dtype == torch.float32
    assert _err(model, wide) <= 1e-4


# ------------------------------------------------------------------ ablations: each shows its failure
@pytest.mark.parametrize(
    "kwargs", [dict(ffn2_bias_divisor=2.0, k=3), dict(tile=True), dict(qk_factor=False), dict(scale_eps=False)]
)
def test_each_ablation_breaks_exactness(kwargs):
    model = _bert(eps=1e-3)
    kwargs = dict(kwargs)
    k = kwargs.pop("k", 2)
    assert _err(model, widen_model(model, k)) <= 1e-9
    assert _err(model, widen_model(model, k, **kwargs)) > 1e-3


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize(
    "kwargs", [dict(ffn2_bias_divisor=2.0), dict(qk_factor=False), dict(scale_eps=False), dict(tile=True)]
)
def test_each_ablation_breaks_pre_and_post_with_and_without_rope(norm, rope, kwargs):
    if rope and "tile" in kwargs:
        kwargs = dict(rope_pairwise=False)  # with RoPE the layout ablation is the interleaved q/k repetition
    model = _bert(norm, rope, eps=1e-3, seed=2)
    assert _err(model, widen_model(model, 2)) <= 1e-9
    assert _err(model, widen_model(model, 2, **kwargs)) > 1e-3


def _zero_fc2_bias(model):
    with torch.no_grad():
        for block in model.blocks:
            block.ffn.fc2.bias.zero_()
    return model


@pytest.mark.parametrize(
    "make, kwargs",
    [
        # tiling only breaks the reshape into heads: with one head it is another exact layout
        (lambda: _bert(n_heads=1), dict(tile=True)),
        # the k^(1/4) exists only because of the 1/sqrt(d_head) scale: without it the keyword changes nothing
        (lambda: _bert(attn_scale=False), dict(qk_factor=False)),
        # the b/2 error is the fc2 bias's alone
        (lambda: _zero_fc2_bias(_bert()), dict(ffn2_bias_divisor=2.0)),
        # the eps rule matters only through eps: at eps -> 0 leaving it alone is exact to 1e-9
        (lambda: _bert(eps=1e-14), dict(scale_eps=False)),
        # the frequencies matter only with RoPE
        (lambda: _bert(), dict(rope_freqs="standard")),
    ],
)
def test_each_ablation_fails_only_through_its_mechanism(make, kwargs):
    model = make()
    assert _err(model, widen_model(model, 2, **kwargs)) <= 1e-9


def test_article_ffn2_bias_half_is_wrong_for_k2():
    model = _bert()
    assert _err(model, widen_model(model, 2, ffn2_bias_divisor=2.0)) > 1e-3


def test_rope_ordering_interleaved_pairwise_repeated_freqs():
    model = _bert(rope=True)
    with torch.no_grad():
        y = model(IDS)

    def rel(**kw):
        with torch.no_grad():
            return ((widen_model(model, 2, **kw)(IDS) - y).norm() / y.norm()).item()

    inter = rel(rope_pairwise=False, rope_freqs="standard")
    pair = rel(rope_freqs="standard")
    exact = rel()
    assert exact < 1e-12 < 1e-3 < pair and 1e-3 < inter
    assert rel(rope_pairwise=False) > 1e-3  # reusing the frequencies does not rescue the interleaved layout


# ------------------------------------------------------------------ symmetry
def test_copies_get_identical_gradients_and_noise_breaks_them():
    model = _bert()
    wide = widen_model(model, 2)
    loss = wide(IDS).logsumexp(-1).sum()
    loss.backward()
    assert copy_divergence(wide, 2, grads=True) == 0.0
    with torch.no_grad():
        wide.blocks[0].ffn.fc1.weight.add_(1e-3 * torch.randn_like(wide.blocks[0].ffn.fc1.weight))
    assert copy_divergence(wide, 2) > 1e-5
    with torch.no_grad():
        wide.blocks[0].ffn.fc1.weight[0, 0] = float("nan")
    assert math.isnan(copy_divergence(wide, 2))  # a NaN is reported, never a false 0.0


# ------------------------------------------------------------------ errors
def test_widen_model_errors():
    model = _bert()
    with pytest.raises(ValueError, match="k"):
        widen_model(model, 0)
    with pytest.raises(ValueError, match="rope_freqs"):
        widen_model(model, 2, rope_freqs="scaled")
    with pytest.raises(ValueError, match="ffn2_bias_divisor"):
        widen_model(model, 2, ffn2_bias_divisor=-1.0)
    gau = training.TinyTransformer(training.BlockConfig(d_model=8, mixer="gau"), 1, vocab_size=5, max_len=4)
    with pytest.raises(NotImplementedError, match="gau"):
        widen_model(gau, 2)
    with pytest.raises(ValueError, match="k"):
        copy_divergence(widen_model(model, 2), 3)
    with pytest.raises(ValueError, match="grad"):
        copy_divergence(widen_model(model, 2), 2, grads=True)
