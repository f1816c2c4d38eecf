"""Tests of kexue_lite.training.uniae (univae-attention-masks, 8475): the exact bottleneck, the loop, decoding,
the loss and the error cases. The reference loop below builds its masks by hand, not with seq2seq_mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kexue_lite import training

VOCAB = 8


def small(dtype=torch.float64, **kw):
    args = dict(d_model=16, n_heads=2, n_layers=4, n_independent=2, d_latent=3, norm_position="post", seed=0)
    args.update(kw)
    return training.UniAE(VOCAB + 2, **args).to(dtype).eval()


def batch(b=3, T=5, seed=0):
    return training.make_batch("uniae_copy", b, T, VOCAB, torch.Generator().manual_seed(seed))


def hand_mask(a, b, kind):
    n = a + b
    m = torch.zeros(n, n, dtype=torch.bool)
    m[:a, :a] = True
    m[a:, a:] = torch.tril(torch.ones(b, b, dtype=torch.bool))
    if kind == "uniae":
        m[a:, 0] = True
    return m


def test_latent_size_matches_the_article():
    assert training.latent_size(12, 0, 768) == 9216  # section 降低维度: 12 x 768
    assert training.latent_size(12, 8, 16) == 64  # the reference code: 4 latent layers of 16
    assert training.latent_size(12, 12, 16) == 0
    assert small().latent_dim == 6


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_forward_equals_a_hand_written_loop(norm):
    model = small(norm_position=norm)
    (ids, seg), _ = batch()
    a = int((seg[0] == 0).sum())
    x = model.embed.weight[ids] + model.pos.weight[: ids.shape[1]][None]
    for layer, block in enumerate(model.blocks):
        if layer >= 2:
            u = x[:, 0] @ model.down[layer - 2].weight.T + model.down[layer - 2].bias
            u = u / u.norm(dim=-1, keepdim=True)
            x = x.clone()
            x[:, 0] = u @ model.up[layer - 2].weight.T + model.up[layer - 2].bias
        x = block(x, mask=hand_mask(a, ids.shape[1] - a, "uniae" if layer >= 2 else "independent"))
    want = model.head(model.final_norm(x))
    got, latents = model(ids, seg)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    assert len(latents) == 2 and torch.allclose(latents[1].norm(dim=-1), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_code_is_an_exact_bottleneck(seed):
    model = small(seed=seed)
    (ids, seg), _ = batch(b=2, T=6, seed=seed)
    ids[1, 7:] = ids[0, 7:]  # same target, different sources
    with torch.no_grad():
        z = model.encode(ids, seg)[:1].expand(2, -1)
        shared = model(ids, seg, z=z)[0][:, 7:]
        own = model(ids, seg)[0][:, 7:]
    assert (shared[0] - shared[1]).abs().max().item() == 0.0
    assert (own[0] - own[1]).abs().max().item() > 1e-6


def test_independent_lower_layers_alone_give_no_path():
    # a UniAE whose latents are all given: the source cannot reach the target at all (gradient exactly 0)
    model = small()
    (ids, seg), _ = batch(b=1, T=4)
    x = model.embed_ids(ids).detach().requires_grad_(True)
    z = [F.normalize(torch.ones(1, 3, dtype=torch.float64), dim=-1)] * 2
    h, _ = model.hidden(x, seg, z=z)
    h[0, 5:].sum().backward()
    assert x.grad[0, :5].abs().max().item() == 0.0 and x.grad[0, 5:].abs().max().item() > 0


def test_first_latent_is_constant_when_k_is_zero():
    model = small(n_independent=0, n_layers=2)
    (ids, seg), _ = batch(b=20, T=5, seed=3)
    with torch.no_grad():
        code = model.encode(ids, seg)
    assert code[:, :3].std(0).max().item() == 0.0 and code[:, 3:].std(0).max().item() > 1e-3


def test_decode_is_greedy_and_self_consistent():
    model = small(dtype=torch.float32)
    (ids, seg), _ = batch(b=4, T=5, seed=5)
    with torch.no_grad():
        z = model.encode(ids, seg)
    out = model.decode(z, 5, VOCAB + 1)
    assert out.shape == (4, 5) and out.dtype == torch.long
    # feeding the decoded string back (teacher forcing, same z) predicts the same tokens at every step
    src = torch.full((4, 6), VOCAB + 1)
    ids2 = torch.cat([src, torch.full((4, 1), VOCAB + 1), out], 1)
    seg2 = torch.cat([torch.zeros(4, 6, dtype=torch.long), torch.ones(4, 6, dtype=torch.long)], 1)
    with torch.no_grad():
        logits = model(ids2, seg2, z=z)[0]
    assert torch.equal(logits[:, 6:-1].argmax(-1), out)


def test_loss_accuracy_and_target_positions():
    model = small()
    (ids, seg), y = batch(b=4, T=5)
    where = training.uniae_target_positions(seg)
    assert where[0].tolist() == [False] * 6 + [True] * 5 + [False]
    with torch.no_grad():
        logits = model(ids, seg)[0]
        loss = training.uniae_loss(model, ((ids, seg), y))
    want = F.cross_entropy(logits[:, 6:11].reshape(-1, VOCAB + 2), y.reshape(-1))
    assert abs(loss.item() - want.item()) < 1e-12
    acc = model.reconstruction_accuracy(ids, seg, y)
    assert acc == pytest.approx((logits[:, 6:11].argmax(-1) == y).double().mean().item(), abs=1e-15)


def test_vae_noise_only_while_training():
    model = small(latent="vae", noise_std=0.3)
    (ids, seg), _ = batch()
    model.train()
    torch.manual_seed(0)
    a, b = model(ids, seg)[0], model(ids, seg)[0]
    assert (a - b).abs().max().item() > 1e-6
    model.eval()
    assert torch.equal(model(ids, seg)[0], model(ids, seg)[0])
    ae = small(latent="ae").train()
    assert torch.equal(ae(ids, seg)[0], ae(ids, seg)[0])


def test_float32_training_lowers_the_loss():
    torch.manual_seed(0)
    model = training.UniAE(VOCAB + 2, d_model=16, n_heads=2, n_layers=2, n_independent=1, d_latent=4, seed=0)
    hist = training.train(model, lambda g: training.make_batch("uniae_copy", 32, 4, VOCAB, g), steps=60, lr=3e-3,
                          loss=training.uniae_loss)
    assert np.isfinite(hist["loss"]).all() and hist["loss"][-10:].mean() < hist["loss"][:10].mean() - 0.1


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="latent"):
        training.UniAE(10, latent="vq")
    with pytest.raises(ValueError, match="n_independent"):
        training.UniAE(10, n_layers=4, n_independent=4)
    with pytest.raises(ValueError, match="d_latent"):
        training.UniAE(10, d_latent=0)
    with pytest.raises(ValueError, match="noise_std"):
        training.UniAE(10, noise_std=-1.0)
    with pytest.raises(ValueError, match="norm_position"):
        training.UniAE(10, norm_position="middle")
    with pytest.raises(ValueError, match="n_independent"):
        training.latent_size(4, 5, 2)
    model = small()
    (ids, seg), y = batch()
    with pytest.raises(ValueError, match="ids"):
        model(ids + 20, seg)
    with pytest.raises(ValueError, match="ids"):
        model(ids.double(), seg)
    with pytest.raises(ValueError, match="segment_ids"):
        model(ids, seg[:, :-1])
    with pytest.raises(ValueError, match="z must"):
        model(ids, seg, z=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="max_len"):
        model.decode(torch.zeros(1, 6), 40, 9)
    with pytest.raises(ValueError, match="targets"):
        model.reconstruction_accuracy(ids, seg, y[:, :-1])
    with pytest.raises(ValueError, match="segment_ids"):
        model(ids, torch.flip(seg, [1]))  # the target before the source


def test_layer_kinds_follow_the_reference_rule():
    # bojone/univae: layer `index` uses the independent mask iff index < num_hidden_layers - num_latent_layers (12 - 4)
    model = training.UniAE(VOCAB + 2, d_model=8, n_heads=2, n_layers=12, n_independent=8, d_latent=16)
    assert model.kinds == ["independent" if index < 12 - 4 else "uniae" for index in range(12)]
    assert model.latent_dim == 64


def test_a_given_code_and_target_fix_the_predictions_whatever_the_source():
    model = small()
    (ids, seg), _ = batch(b=4, T=5, seed=6)
    perm = torch.roll(torch.arange(4), 1)
    with torch.no_grad():
        z = model.encode(ids, seg)
        own = model(ids, seg)[0][:, 6:]
        mixed = torch.cat([ids[:, :6], ids[perm, 6:]], 1)  # own source, neighbour's target
        got = model(mixed, seg, z=z[perm])[0][:, 6:]
    assert torch.equal(got, own[perm])


def test_greedy_decoding_agrees_with_teacher_forcing():
    # by causality: the first greedy symbol is the teacher-forced prediction at BOS, and a string is decoded exactly
    # iff every teacher-forced prediction on it is right (an untrained model: a few strings of 256 are, most are not)
    model = small(dtype=torch.float32, d_latent=8)
    (ids, seg), y = batch(b=256, T=2, seed=7)
    with torch.no_grad():
        out = model.decode(model.encode(ids, seg), 2, VOCAB + 1)
        tf = model(ids, seg)[0][:, 3:5].argmax(-1)  # [CLS s1 s2 BOS s1 s2]: BOS and s1 predict s1 and s2
    assert torch.equal(out[:, 0], tf[:, 0])
    exact_greedy, exact_tf = (out == y).all(1), (tf == y).all(1)
    assert torch.equal(exact_greedy, exact_tf) and 0 < int(exact_tf.sum()) < 256
    assert bool((out[:, 1] != tf[:, 1]).any())  # off the right path the two differ: the check is not vacuous
