"""Tests of kexue_lite.training.lesion (pre-norm-vs-post-norm, 9009): lesion and merge profiles, effective depth.

Reference values come from toy stacks whose profiles have closed forms (blocks x -> (1 + a_t) x and x -> x + c_t),
and from independent re-implementations on the shared TinyTransformer (its own ``skip_layers``, and a merge written
out by hand from ``return_hidden``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from kexue_lite import training
from kexue_lite.training.lesion import effective_depth, lesion_profile, merge_profile, relative_change

PRE = SimpleNamespace(norm_position="pre", alpha=1.0, branch_scale=1.0)


class Scale(nn.Module):
    """x -> (1 + a) x: a residual block with the linear branch F(x) = a x."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a

    def forward(self, x, mask=None, positions=None):
        return (1 + self.a) * x


class Shift(nn.Module):
    """x -> x + c: a residual block whose branch does not depend on its input."""

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.register_buffer("c", c)

    def forward(self, x, mask=None, positions=None):
        return x + self.c


class Stack(nn.Module):
    def __init__(self, blocks, cfg=PRE):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.cfg = cfg

    def forward(self, x, mask=None, positions=None):
        for b in self.blocks:
            x = b(x, mask=mask, positions=positions)
        return x


A = [0.5, -0.25, 2.0, 0.1, -0.6]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lesion_of_scalar_blocks_has_the_closed_form(dtype):
    # skipping block t divides the output by (1 + a_t): relative change |a_t| / |1 + a_t|
    x = torch.randn(3, 4, 5, dtype=dtype, generator=torch.Generator().manual_seed(0))
    got = lesion_profile(Stack([Scale(a) for a in A]), x)
    want = np.array([abs(a) / abs(1 + a) for a in A])
    assert got.dtype == np.float64 and got.shape == (len(A),)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merge_of_scalar_blocks_has_the_closed_form(dtype):
    # (1 + a_t)(1 + a_t+1) becomes 1 + a_t + a_t+1: relative change |a_t a_t+1| / |(1 + a_t)(1 + a_t+1)|
    x = torch.randn(2, 3, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))
    got = merge_profile(Stack([Scale(a) for a in A]), x)
    want = np.array([abs(a * b) / abs((1 + a) * (1 + b)) for a, b in zip(A, A[1:])])
    assert got.shape == (len(A) - 1,)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == torch.float32 else 1e-12)


def test_blocks_held_in_a_plain_list_give_the_same_profiles():
    class ListStack(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.layers = nn.ModuleList(blocks)
            self.cfg = PRE

        @property
        def blocks(self):  # a plain list: the profiles must not rely on swapping ModuleList entries
            return list(self.layers)

        def forward(self, x, mask=None, positions=None):
            for b in self.layers:
                x = b(x)
            return x

    x = torch.randn(3, 4, dtype=torch.float64)
    listed = ListStack([Scale(a) for a in A])
    np.testing.assert_allclose(lesion_profile(listed, x), [abs(a) / abs(1 + a) for a in A], rtol=1e-12)
    np.testing.assert_allclose(merge_profile(listed, x), [abs(a * b) / abs((1 + a) * (1 + b)) for a, b in zip(A, A[1:])],
                               rtol=1e-12)


def test_input_independent_branches_merge_exactly_and_lesion_by_their_size():
    gen = torch.Generator().manual_seed(2)
    cs = [torch.randn(6, dtype=torch.float64, generator=gen) for _ in range(4)]
    x = torch.randn(5, 6, dtype=torch.float64, generator=gen)
    model = Stack([Shift(c) for c in cs])
    np.testing.assert_allclose(merge_profile(model, x), 0.0, atol=1e-15)
    y = x + sum(cs)
    want = [float(c.expand_as(x).norm() / y.norm()) for c in cs]
    np.testing.assert_allclose(lesion_profile(model, x), want, rtol=1e-12)


def test_profiles_leave_the_model_as_they_found_it():
    model = Stack([Scale(a) for a in A]).train()
    x = torch.randn(2, 3, dtype=torch.float64)
    before = model(x)
    blocks_before = list(model.blocks)
    lesion_profile(model, x)
    merge_profile(model, x)
    assert model.training
    assert all(a is b for a, b in zip(model.blocks, blocks_before)) and len(model.blocks) == len(blocks_before)
    assert all(not b._forward_hooks for b in model.blocks)
    torch.testing.assert_close(model(x), before)


def test_merge_needs_a_plain_pre_norm_stack():
    x = torch.randn(2, 3)
    for cfg in (SimpleNamespace(norm_position="post", alpha=1.0, branch_scale=1.0),
                SimpleNamespace(norm_position="none", alpha=1.0, branch_scale=1.0),
                SimpleNamespace(norm_position="pre", alpha=2.0, branch_scale=1.0),
                SimpleNamespace(norm_position="pre", alpha=1.0, branch_scale=0.5)):
        with pytest.raises(ValueError, match="norm_position|alpha"):
            merge_profile(Stack([Scale(0.1), Scale(0.2)], cfg), x)
    with pytest.raises(ValueError, match="at least 2 blocks"):
        merge_profile(Stack([Scale(0.1)]), x)
    with pytest.raises(TypeError, match="cfg"):
        merge_profile(Stack([Scale(0.1), Scale(0.2)], cfg=None), x)


def test_bad_inputs_are_named():
    model = Stack([Scale(0.1), Scale(0.2)])
    with pytest.raises(TypeError, match="x must be"):
        lesion_profile(model, np.ones((2, 3)))
    with pytest.raises(ValueError, match="x is empty"):
        lesion_profile(model, torch.ones(0, 3))
    with pytest.raises(ValueError, match="x contains NaN"):
        lesion_profile(model, torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(TypeError, match="x must hold"):
        merge_profile(model, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="model"):
        lesion_profile(object(), torch.ones(2, 3))
    with pytest.raises(ValueError, match="no blocks"):
        lesion_profile(Stack([]), torch.ones(2, 3))
    with pytest.raises(ValueError, match="ref"):
        lesion_profile(model, torch.zeros(2, 3))  # a zero output has no relative change


def test_relative_change():
    a = torch.tensor([3.0, 4.0])
    assert relative_change(a, a) == 0.0
    assert relative_change(torch.zeros(2), a) == pytest.approx(1.0)
    assert relative_change(a + torch.tensor([0.0, 0.5]), a) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same shape"):
        relative_change(torch.ones(3), a)
    with pytest.raises(TypeError, match="floating"):
        relative_change(torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long))


def test_effective_depth():
    assert effective_depth(np.array([0.2, 0.5, 3.0, 1.0])) == pytest.approx(2.7)
    assert effective_depth(np.array([0.2, 0.5, 3.0]), cap=0.4) == pytest.approx(1.0)
    assert effective_depth(np.ones(7, dtype=np.float32) * 2) == 7.0
    rng = np.random.default_rng(0)
    lesion = rng.exponential(size=30)
    d = effective_depth(lesion)
    assert 0 < d <= 30 and d <= lesion.sum()
    assert effective_depth(lesion, cap=0.5) <= d <= effective_depth(lesion, cap=2.0)
    with pytest.raises(TypeError, match="lesion"):
        effective_depth(np.array([1, 2]))
    with pytest.raises(ValueError, match="1-D"):
        effective_depth(np.ones((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        effective_depth(np.array([], dtype=float))
    with pytest.raises(ValueError, match="NaN"):
        effective_depth(np.array([0.1, np.inf]))
    with pytest.raises(ValueError, match="non-negative"):
        effective_depth(np.array([0.1, -0.2]))
    with pytest.raises(ValueError, match="cap"):
        effective_depth(np.array([0.1]), cap=0.0)


# --- on the shared TinyTransformer (skipped until it is built) ----------------------------------------------------

needs_model = pytest.mark.skipif(not hasattr(training, "TinyTransformer"), reason="shared TinyTransformer not built yet")


def _model(position: str, dtype=torch.float64, n_layers: int = 5, **cfg):
    torch.manual_seed(0)
    model = training.TinyTransformer(training.BlockConfig(d_model=16, n_heads=2, norm_position=position, **cfg),
                                     n_layers)
    return model.to(dtype)


@needs_model
@pytest.mark.parametrize("position", ["pre", "post"])
def test_lesion_matches_the_models_own_skip_layers(position):
    model = _model(position)
    x = torch.randn(2, 6, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = model(x)
        want = [float((model(x, skip_layers={t}) - base).norm() / base.norm()) for t in range(5)]
    np.testing.assert_allclose(lesion_profile(model, x), want, rtol=1e-12)


@needs_model
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merge_matches_a_hand_written_merge(dtype):
    model = _model("pre", dtype)
    x = torch.randn(2, 6, 16, dtype=dtype, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        base, hidden = model(x, return_hidden=True)
        want = []
        for t in range(4):
            h = hidden[t]
            h = model.blocks[t](h) + model.blocks[t + 1](h) - h
            for b in model.blocks[t + 2:]:
                h = b(h)
            out = model.final_norm(h)
            want.append(float((out.double() - base.double()).norm() / base.double().norm()))
    got = merge_profile(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == torch.float32 else 1e-10)
    assert np.all(got > 0)


@needs_model
def test_merge_refuses_post_norm_and_deepnorm_models():
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="norm_position"):
        merge_profile(_model("post"), x)
    with pytest.raises(ValueError, match="alpha"):
        merge_profile(_model("pre", alpha=2.0), x)
