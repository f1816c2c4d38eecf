"""kexue_lite.optim against torch.optim (the independent reference): same parameters, bit for bit."""

from __future__ import annotations

import pytest
import torch

from kexue_lite import optim


def _run(make_ours, make_theirs, dtype=torch.float64, complex_=False, steps=6):
    g = torch.Generator().manual_seed(0)
    shape = (5, 3)
    a = [torch.randn(*shape, generator=g, dtype=dtype), torch.randn(3, generator=g, dtype=dtype)]
    if complex_:
        a[0] = torch.complex(a[0], torch.randn(*shape, generator=g, dtype=dtype))
    a = [p.requires_grad_(True) for p in a]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    ours, theirs = make_ours(a), make_theirs(b)
    for _ in range(steps):
        x = torch.randn(4, 5, generator=g, dtype=dtype)
        for params, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            w = params[0].abs() if complex_ else params[0]
            ((x @ w + params[1]).tanh().square().sum()).backward()
            opt.step()
    return a, b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,ours,theirs", [
    ("adam", lambda p: optim.Adam(p, lr=0.03, betas=(0.8, 0.95)), lambda p: torch.optim.Adam(p, lr=0.03, betas=(0.8, 0.95), foreach=False)),
    ("adam-wd", lambda p: optim.Adam(p, lr=0.03, weight_decay=0.1), lambda p: torch.optim.Adam(p, lr=0.03, weight_decay=0.1, foreach=False)),
    ("adamw", lambda p: optim.AdamW(p, lr=0.03, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.03, weight_decay=0.1, foreach=False)),
    ("sgd", lambda p: optim.SGD(p, lr=0.05, weight_decay=0.05), lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.05, foreach=False)),
])
def test_bit_for_bit_equal_to_torch_optim(dtype, name, ours, theirs):
    a, b = _run(ours, theirs, dtype)
    for p, q in zip(a, b):
        assert torch.equal(p, q), name


def test_complex_parameters_are_pairs_of_reals_like_torch():
    a, b = _run(lambda p: optim.Adam(p, lr=0.02), lambda p: torch.optim.Adam(p, lr=0.02, foreach=False), complex_=True)
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_clip_grad_norm_matches_torch():
    g = torch.Generator().manual_seed(1)
    a = [torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    for params in (a, b):
        sum((p**3).sum() for p in params).backward()
    total = optim.clip_grad_norm(a, 0.5)
    want = torch.nn.utils.clip_grad_norm_(b, 0.5)
    assert total == pytest.approx(want.item(), rel=1e-12)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=0)


def test_step_lr_override_and_bad_input():
    p = torch.zeros(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step(lr=0.5)
    assert torch.equal(p.detach(), torch.full((2,), -0.5))
    for kw, name in ((dict(kind="rmsprop"), "optimizer"), (dict(lr=0.0), "lr"), (dict(betas=(1.0, 0.9)), "betas")):
        with pytest.raises(ValueError, match=name):
            optim.Optimizer([p], **kw)
    with pytest.raises(ValueError, match="params"):
        optim.Adam([])
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm([p], 0.0)
