"""Tests of kexue_lite.attention.mixers (non-transformer-roundup, 8431)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kexue_lite.attention.mixers import (ExternalAttention, FNetMixing, SpatialGatingUnit, SynthesizerRandom,
                                         TokenMixingMLP, conv_receptive_field, dft_as_attention, fnet_mixing,
                                         fnet_operator, fnet_rank, pairwise_jacobian_norms)

F64 = torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fnet_matches_numpy_fft2(dtype):
    x = torch.randn(2, 7, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    out = fnet_mixing(x)
    assert out.dtype == dtype and out.shape == x.shape
    ref = np.fft.fft2(x.double().numpy()).real  # numpy's FFT: an independent implementation
    np.testing.assert_allclose(out.double().numpy(), ref, atol=1e-4 if dtype == torch.float32 else 1e-12)
    assert torch.equal(FNetMixing()(x), out)


def test_fnet_operator_is_cos_cos_minus_sin_sin():
    n, d = 5, 4
    jn, jd = np.arange(n), np.arange(d)
    C = lambda k, j: np.cos(2 * np.pi * np.outer(j, j) / k)  # noqa: E731
    S = lambda k, j: np.sin(2 * np.pi * np.outer(j, j) / k)  # noqa: E731
    expected = np.kron(C(n, jn), C(d, jd)) - np.kron(S(n, jn), S(d, jd))
    np.testing.assert_allclose(fnet_operator(n, d).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("n, d, rank", [(8, 8, 34), (6, 4, 14), (7, 5, 18), (16, 12, 98), (5, 5, 13), (4, 3, 7), (1, 1, 1)])
def test_fnet_rank_formula_and_numeric_rank(n, d, rank):
    assert fnet_rank(n, d) == rank
    assert int(torch.linalg.matrix_rank(fnet_operator(n, d))) == rank


def test_fnet_rank_fnet_base_is_half():
    assert fnet_rank(512, 768) == 196_610 and abs(fnet_rank(512, 768) / (512 * 768) - 0.5) < 1e-3


def test_dft_as_attention_gives_the_dft_matrix():
    q, k = dft_as_attention(6)
    assert q.shape == (6, 1)
    dft = torch.exp(-1j * (q @ k.T))
    ref = np.fft.fft(np.eye(6))
    np.testing.assert_allclose(dft.numpy(), ref, atol=1e-12)


def test_token_mixing_linearised_is_fixed_matrix_and_param_count():
    mlp = TokenMixingMLP(6, 3, activation="identity", dtype=F64)
    x = torch.randn(6, 4, dtype=F64)
    expected = mlp.mixing_matrix() @ x + (mlp.fc2.weight @ mlp.fc1.bias + mlp.fc2.bias)[:, None]
    torch.testing.assert_close(mlp(x), expected)
    assert int(torch.linalg.matrix_rank(mlp.mixing_matrix())) <= 3
    assert sum(p.numel() for p in mlp.parameters()) == 2 * 6 * 3 + 6 + 3


def test_synthesizer_is_row_stochastic_and_linear():
    syn = SynthesizerRandom(5, 3, dtype=F64)
    a = syn.mixing_matrix()
    torch.testing.assert_close(a.sum(-1), torch.ones(5, dtype=F64))
    x, y = torch.randn(5, 3, dtype=F64), torch.randn(5, 3, dtype=F64)
    b = syn.v_proj.bias
    # affine in x: f(x) + f(y) - f(0) = f(x + y)
    torch.testing.assert_close(syn(x) + syn(y) - syn(torch.zeros_like(x)), syn(x + y))
    torch.testing.assert_close(syn(torch.zeros_like(x)), a @ b.expand(5, 3))


def test_sgu_starts_as_identity_and_causal_mask():
    sgu = SpatialGatingUnit(6, 8, init_eps=0.0, dtype=F64)
    z = torch.randn(6, 8, dtype=F64)
    torch.testing.assert_close(sgu(z), z[:, :4])
    causal = SpatialGatingUnit(6, 8, causal=True, init_eps=0.5, dtype=F64)
    jac = pairwise_jacobian_norms(causal, z)
    assert torch.all(torch.triu(jac, diagonal=1) == 0) and torch.tril(jac, -1).abs().max() > 1e-3


def test_external_attention_normalisations():
    x = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    single = ExternalAttention(4, 3, "single", dtype=F64)
    jac = pairwise_jacobian_norms(single, x)
    assert torch.all(jac - torch.diag(torch.diag(jac)) == 0)
    double = ExternalAttention(4, 3, "double", dtype=F64)
    a = double.attention(x)
    torch.testing.assert_close(a.sum(-1), torch.ones(6, dtype=F64))
    jac2 = pairwise_jacobian_norms(double, x)
    assert (jac2 - torch.diag(torch.diag(jac2))).max() > 1e-3
    one_slot = ExternalAttention(4, 1, "double", dtype=F64)
    torch.testing.assert_close(one_slot(x), one_slot.mv.weight.T.expand(6, 4))  # a constant output


@pytest.mark.parametrize("norm", ["single", "double"])
def test_external_attention_is_permutation_equivariant(norm):
    ea = ExternalAttention(4, 5, norm)
    x = torch.randn(7, 4)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ea(x[perm]), ea(x)[perm], atol=1e-6, rtol=0)


def test_fixed_length_mixers_reject_other_lengths_and_others_accept():
    x = torch.randn(7, 4)
    for layer in (TokenMixingMLP(6, 3), SynthesizerRandom(6, 4), SpatialGatingUnit(6, 4)):
        with pytest.raises(ValueError, match="n_tokens"):
            layer(x)
    assert ExternalAttention(4, 3)(x).shape == (7, 4)
    assert fnet_mixing(x).shape == (7, 4)


def test_errors():
    with pytest.raises(ValueError, match="n"):
        fnet_rank(0, 3)
    with pytest.raises(TypeError, match="d"):
        fnet_rank(3, 2.0)
    with pytest.raises(TypeError, match="x"):
        fnet_mixing(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="x"):
        fnet_mixing(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="x"):
        fnet_mixing(torch.ones(4))
    with pytest.raises(ValueError, match="normalization"):
        ExternalAttention(4, 2, "triple")
    with pytest.raises(ValueError, match="activation"):
        TokenMixingMLP(4, 2, activation="tanhh")
    with pytest.raises(ValueError, match="d_model"):
        SpatialGatingUnit(4, 5)
    with pytest.raises(ValueError, match="n_memory"):
        ExternalAttention(4, 0)
    with pytest.raises(TypeError, match="f"):
        pairwise_jacobian_norms(3, torch.ones(2, 2))


@pytest.mark.parametrize("kernel, dilations", [(3, [1]), (3, [1, 2, 4, 8]), (5, [1, 1, 1]), (2, [3, 1]), (1, [7])])
def test_conv_receptive_field_matches_a_real_conv_stack(kernel, dilations):
    # brute force: which input tokens move the gradient of one output token of an actual torch Conv1d stack
    n = 80
    torch.manual_seed(0)
    convs = [torch.nn.Conv1d(2, 2, kernel, dilation=dl, dtype=F64) for dl in dilations]  # 'valid' convolutions
    x = torch.randn(1, 2, n, dtype=F64, requires_grad=True)
    h = x
    for conv in convs:
        h = conv(h)
    h[0, :, h.shape[-1] // 2].sum().backward()
    hit = torch.nonzero(x.grad[0].abs().sum(0) > 0).flatten()
    span = int(hit.max() - hit.min()) + 1  # first to last input token reached (a dilated stack may skip some)
    assert span == conv_receptive_field(kernel, dilations)
    spans = [conv_receptive_field(kernel, dilations[:l]) if l else 1 for l in range(len(dilations))]
    if kernel >= 2 and all(dl <= sp for dl, sp in zip(dilations, spans)):
        assert len(hit) == span  # each dilation within the span so far (1, 2, 4, 8, ...): no holes
    elif (kernel, dilations) == (2, [3, 1]):
        assert len(hit) == span - 1  # {0, 3} + {0, 1} = {0, 1, 3, 4}: token 2 is skipped


def test_conv_receptive_field_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        conv_receptive_field(0, [1])
    with pytest.raises(ValueError, match="dilations"):
        conv_receptive_field(3, [])
    with pytest.raises(ValueError, match="dilations"):
        conv_receptive_field(3, [1, 0])


def test_gelu_mixer_mixing_depends_on_the_input_linearised_does_not():
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(6, 4, dtype=F64, generator=gen) for _ in range(2)]
    gelu = TokenMixingMLP(6, 3, dtype=F64)
    lin = TokenMixingMLP(6, 3, activation="identity", dtype=F64)
    jg = [pairwise_jacobian_norms(gelu, x) for x in xs]
    jl = [pairwise_jacobian_norms(lin, x) for x in xs]
    assert (jg[0] - jg[1]).abs().max() > 1e-3
    torch.testing.assert_close(jl[0], jl[1], atol=1e-12, rtol=0)
    # the linearised layer's Jacobian block (i, j) is (W2 W1)_ij times the identity on channels
    torch.testing.assert_close(jl[0], lin.mixing_matrix().abs() * 2.0, atol=1e-12, rtol=0)


def test_more_input_errors():
    with pytest.raises(ValueError, match="d_model"):
        SynthesizerRandom(6, 4)(torch.randn(6, 5))
    with pytest.raises(TypeError, match="x"):
        fnet_mixing(torch.ones(4, 4, dtype=torch.float16))
