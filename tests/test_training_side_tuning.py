"""Tests of kexue_lite.training.side_tuning (ladder-side-tuning, kexue.fm/archives/9138).

Reference values: BERT-base-Chinese's published parameter count (102,267,648), counts of equivalent models built
from torch's own modules, and the bytes autograd must save for an elementwise product (both factors).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue_lite import training as T


def _backbone(L=4, d=32, seed=0):
    return T.TinyTransformer(T.BlockConfig(d_model=d, n_heads=4), L, vocab_size=11, max_len=16, head="token", seed=seed)


def _ids(B=3, n=7, seed=0):
    return torch.randint(0, 11, (B, n), generator=torch.Generator().manual_seed(seed))


def test_bert_counts_match_published_and_torch_built_models():
    assert T.bert_param_count(21128, 512, 768, 3072, 12) == 102_267_648   # bert-base-chinese, as published
    h, f, L, V, P = 16, 40, 3, 50, 20
    layers = [nn.TransformerEncoderLayer(h, 4, f) for _ in range(L)]
    parts = [nn.Embedding(V, h), nn.Embedding(P, h), nn.Embedding(2, h), nn.LayerNorm(h), *layers, nn.Linear(h, h)]
    assert T.bert_param_count(V, P, h, f, L) == sum(p.numel() for m in parts for p in m.parameters())
    assert T.bert_param_count(V, P, h, f, L, pooler=False) == T.bert_param_count(V, P, h, f, L) - h * h - h
    assert T.bert_layer_params(h, f) == sum(p.numel() for p in layers[0].parameters())


def test_ladder_count_matches_a_torch_built_ladder():
    side = [nn.TransformerEncoderLayer(128, 4, 512) for _ in range(4)] + [nn.Linear(768, 128, bias=False) for _ in range(5)]
    assert T.ladder_param_count(768) == sum(p.numel() for m in side for p in m.parameters()) == 1_284_608
    with pytest.raises(ValueError, match="side_layers"):
        T.ladder_param_count(768, side_layers=0)
    with pytest.raises(ValueError, match="hidden"):
        T.bert_param_count(100, 10, 0, 4, 1)


def test_saved_tensor_meter_counts_both_factors_and_excludes_parameters():
    a, b = torch.randn(10, requires_grad=True), torch.randn(10, requires_grad=True)
    with T.SavedTensorMeter() as m:
        a * b
    assert (m.bytes, m.count, m.param_bytes) == (80, 2, 0)   # mul saves both float32 factors for backward
    with T.SavedTensorMeter(exclude=[a]) as m:
        a * b
        a * b   # a repeated save is counted again
    assert (m.bytes, m.count, m.param_bytes) == (80, 2, 80)
    with T.SavedTensorMeter() as m, torch.no_grad():
        a * b
    assert m.bytes == 0
    c = torch.randn(10, dtype=torch.float64, requires_grad=True)
    with T.SavedTensorMeter() as m:
        c.exp()   # exp saves its output
    assert m.bytes == 80 and m.megabytes == 80 / 2**20


def test_freeze_and_count_params():
    bb = _backbone()
    total = sum(p.numel() for p in bb.parameters())
    assert T.count_params(bb) == total == T.count_params(bb, trainable_only=False)
    T.freeze(bb)
    assert T.count_params(bb) == 0 and not bb.training and T.count_params(bb, trainable_only=False) == total


def test_adapters_start_as_the_identity_and_train_only_themselves():
    bb, ids = _backbone(), _ids()
    want = bb(ids)
    for where, n_adapted in (("all", 4), ("top", 1), ("bottom", 1)):
        model = T.with_adapters(_backbone(), where)
        assert len(model.adapters) == n_adapted
        torch.testing.assert_close(model(ids), want, rtol=0, atol=0)
        assert T.count_params(model) == n_adapted * (32 * 8 + 8 + 8 * 32 + 32)
    model = T.with_adapters(_backbone(), "bottom", n_out=5)
    model(ids).sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.adapters["0"].down.weight.grad is not None and model.new_head.weight.grad is not None
    with pytest.raises(ValueError, match="positions"):
        T.with_adapters(_backbone(), "middle")
    with pytest.raises(TypeError, match="backbone"):
        T.with_adapters(nn.Linear(2, 2))


def test_prompt_tuning_shapes_and_gradient():
    model = T.PromptTuned(_backbone(), n_prompt=3)
    out = model(_ids())
    assert out.shape == (3, 7, 11) and T.count_params(model) == 3 * 32
    out.square().mean().backward()
    assert model.prompt.grad is not None and all(p.grad is None for p in model.backbone.parameters())
    with pytest.raises(ValueError, match="n_prompt"):
        T.PromptTuned(_backbone(), n_prompt=0)


def test_ladder_side_network():
    bb, ids = _backbone(L=4), _ids()
    lst = T.LadderSideNetwork(bb, reduction=4, n_side_layers=2)
    assert lst.taps == [0, 2, 4] and lst.side_cfg.d_model == 8
    _, hidden = bb(ids, return_hidden=True)
    s = lst.proj[0](hidden[0])
    for i, blk in enumerate(lst.side_blocks):
        s = blk(s) + lst.proj[i + 1](hidden[lst.taps[i + 1]])
    out = lst(ids)
    torch.testing.assert_close(out, lst.head(lst.final_norm(s)), rtol=0, atol=1e-6)
    out.square().mean().backward()
    assert all(p.grad is None for p in lst.backbone.parameters())
    n_side = T.count_params(lst)
    assert n_side == sum(p.numel() for n, p in lst.named_parameters() if not n.startswith("backbone."))
    gated = T.LadderSideNetwork(_backbone(L=4), reduction=2, n_side_layers=4, mix="gate", head="cls", n_out=3)
    assert gated(ids).shape == (3, 3) and torch.all(torch.sigmoid(gated.gates) == 0.5)
    with T.SavedTensorMeter(exclude=lst.parameters()) as m_lst:
        lst(ids)
    full = _backbone(L=4)
    with T.SavedTensorMeter(exclude=full.parameters()) as m_full:
        full(ids)
    assert m_lst.bytes < 0.5 * m_full.bytes
    for kw, name in ((dict(reduction=3), "reduction"), (dict(taps=[0, 2, 5]), "taps"), (dict(taps=[0, 1]), "taps"),
                     (dict(mix="concat"), "mix"), (dict(head="lm"), "head"), (dict(n_side_layers=0), "n_side_layers")):
        with pytest.raises(ValueError, match=name):
            T.LadderSideNetwork(_backbone(L=4), **kw)


def test_saved_tensor_meter_unique_bytes_merges_repeated_saves_of_one_storage():
    x = torch.randn(4, 6)
    w1, w2, w3 = (torch.randn(6, 6, requires_grad=True) for _ in range(3))
    with T.SavedTensorMeter(exclude=[w1, w2, w3]) as m:
        (x @ w1 + x @ w2 + x @ w3).sum()   # each matmul saves x (for the weight gradient): one storage, three saves
    assert m.bytes == 3 * 4 * 6 * 4 and m.count == 3
    assert m.unique_bytes == 4 * 6 * 4 and m.unique_megabytes == 96 / 2**20
    a = torch.randn(10, requires_grad=True)
    with T.SavedTensorMeter() as m:
        a.exp()   # saves its output: a new storage of 10 float32
        (a * a)   # saves a twice: one storage
    assert m.bytes == 40 + 80 and m.unique_bytes == 40 + 40
    with pytest.raises(TypeError, match="exclude"):
        T.SavedTensorMeter(exclude=[1.0])
