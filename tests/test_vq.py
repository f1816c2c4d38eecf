"""Unit and property tests of kexue_lite.vq (nearest code, STE, rotation trick, k-means, quantiser, toy VQ-AE).

Reference values are independent of the code under test: the rotation is rebuilt from Rodrigues'
formula in the (z, q) plane (numpy float64), gradients are checked by central finite differences of
the linearised surrogate ``q + G (z - z0)`` (G from Rodrigues) and of the official code's efficient formula
with its constants frozen at ``z0`` (float32 and float64), the angle formula is the closed form of derivation 4 of
notebook vq-rotation-trick, k-means is compared with scipy.cluster.vq.kmeans2 and with the planted
cluster centres, perplexities with hand-computed entropies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.cluster.vq
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_lite import vq

torch.set_num_threads(1)
PROPS = settings(max_examples=25, deadline=None, derandomize=True)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
DTYPES = [(torch.float64, 1e-12), (torch.float32, 1e-5)]


# ----------------------------------------------------------------------------- references
def rodrigues(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rotation by theta in span{z, q} taking z^ to q^, identity on the complement (independent of vq)."""
    zh = z / np.linalg.norm(z)
    qh = q / np.linalg.norm(q)
    c = float(zh @ qh)
    p = qh - c * zh
    s = np.linalg.norm(p)
    if s < 1e-15:
        return np.eye(len(z))
    p /= s
    # R = I + sin(theta) (p z^T - z p^T) + (cos(theta) - 1)(z z^T + p p^T)
    return np.eye(len(z)) + s * (np.outer(p, zh) - np.outer(zh, p)) + (c - 1.0) * (np.outer(zh, zh) + np.outer(p, p))


def rand_pairs(n, d, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    q = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.7
    gr = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z.to(dtype=dtype, device=device), q.to(dtype=dtype, device=device), gr.to(dtype=dtype, device=device)


# ----------------------------------------------------------------------------- nearest_code
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nearest_code_matches_brute_force(device, dtype):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(300, 5, generator=g).to(dtype=dtype, device=device)
    C = torch.randn(17, 5, generator=g).to(dtype=dtype, device=device)
    idx = vq.nearest_code(z, C)
    zn, Cn = z.cpu().double().numpy(), C.cpu().double().numpy()
    d2 = ((zn[:, None, :] - Cn[None, :, :]) ** 2).sum(-1)
    ref = d2.argmin(1)
    got = idx.cpu().numpy()
    # any disagreement must be a (float32) near-tie
    mism = got != ref
    assert idx.dtype == torch.int64 and idx.device.type == device
    assert np.all(np.abs(d2[mism, got[mism]] - d2[mism, ref[mism]]) < 1e-4)
    assert mism.mean() < 0.01


def test_nearest_code_exact_hits_and_errors():
    C = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    z = torch.tensor([[0.9, 0.1], [0.1, 2.0], [-1.0, -1.0]])
    assert vq.nearest_code(z, C).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="codebook"):
        vq.nearest_code(z, torch.zeros(3, 3))
    with pytest.raises(TypeError, match="z"):
        vq.nearest_code(torch.zeros(3, 2, dtype=torch.int64), C)
    with pytest.raises(ValueError, match="z"):
        vq.nearest_code(torch.full((1, 2), float("nan")), C)
    with pytest.raises(ValueError, match="codebook"):
        vq.nearest_code(z, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="z"):
        vq.nearest_code(torch.zeros(2), C)


# ----------------------------------------------------------------------------- STE
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_ste_value_and_gradient(device, dtype, tol):
    z, q, g = rand_pairs(50, 7, dtype, device)
    z.requires_grad_(True)
    q.requires_grad_(True)
    out = vq.ste(z, q)
    assert torch.equal(out.detach(), q.detach())  # exactly the code
    out.backward(g)
    assert torch.equal(z.grad, g)  # identity Jacobian
    assert q.grad is None


# ----------------------------------------------------------------------------- rotation_matrix
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_rotation_matrix_against_rodrigues(dtype, tol):
    rng = np.random.default_rng(0)
    for _ in range(20):
        z, q = rng.normal(size=16), rng.normal(size=16)
        R = vq.rotation_matrix(torch.tensor(z, dtype=dtype), torch.tensor(q, dtype=dtype)).double().numpy()
        ref = rodrigues(z, q)
        assert np.abs(R - ref).max() < 10 * tol
        assert np.abs(R.T @ R - np.eye(16)).max() < 10 * tol
        assert abs(np.linalg.det(R) - 1.0) < 10 * tol
        assert np.allclose(R @ (z / np.linalg.norm(z)), q / np.linalg.norm(q), atol=10 * tol)


def test_rotation_matrix_2d_is_plane_rotation():
    th = 0.7
    R = vq.rotation_matrix(torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([math.cos(th), math.sin(th)], dtype=torch.float64))
    ref = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    assert np.abs(R.numpy() - ref).max() < 1e-15
    # identical directions: identity
    R = vq.rotation_matrix(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([2.0, 4.0, 6.0], dtype=torch.float64))
    assert np.abs(R.numpy() - np.eye(3)).max() < 1e-15


def test_rotation_matrix_errors():
    one = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="z"):
        vq.rotation_matrix(torch.zeros(2), one)
    with pytest.raises(ValueError, match="q"):
        vq.rotation_matrix(one, torch.zeros(2))
    with pytest.raises(ValueError, match="antiparallel"):
        vq.rotation_matrix(one, -3 * one)
    with pytest.raises(ValueError, match="z and q"):
        vq.rotation_matrix(torch.ones(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="shape"):
        vq.rotation_matrix(one, torch.ones(3))
    with pytest.raises(TypeError, match="z"):
        vq.rotation_matrix(torch.tensor([1, 0]), one)


# ----------------------------------------------------------------------------- rotate_to
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_rotate_to_value_exact_and_gradient_is_scaled_rotation(device, dtype, tol):
    z, q, g = rand_pairs(200, 16, dtype, device)
    z.requires_grad_(True)
    out = vq.rotate_to(z, q)
    assert torch.equal(out.detach(), q)  # forward value: exactly the code vector
    out.backward(g)
    zn, qn, gn = (t.detach().cpu().double().numpy() for t in (z, q, g))
    grad = z.grad.cpu().double().numpy()
    for i in range(len(zn)):
        G = np.linalg.norm(qn[i]) / np.linalg.norm(zn[i]) * rodrigues(zn[i], qn[i])
        assert np.abs(grad[i] - G.T @ gn[i]).max() < 10 * tol * max(1.0, np.abs(G.T @ gn[i]).max())
    # the exact norm statement |grad_z| = |q|/|z| |g|
    ratio = np.linalg.norm(grad, axis=1) / np.linalg.norm(gn, axis=1)
    assert np.abs(ratio - np.linalg.norm(qn, axis=1) / np.linalg.norm(zn, axis=1)).max() < 10 * tol


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_rotate_to_gradient_by_finite_differences(dtype, tol):
    """Central differences of L(z) = <g, q + G0 (z - z0)> (G0 from Rodrigues) equal autograd's gradient."""
    z, q, g = rand_pairs(3, 6, dtype, "cpu", seed=3)
    z.requires_grad_(True)
    vq.rotate_to(z, q).backward(g)
    for i in range(3):
        z0, q0, g0 = (t[i].detach().double().numpy() for t in (z, q, g))
        G0 = np.linalg.norm(q0) / np.linalg.norm(z0) * rodrigues(z0, q0)
        h = 1e-3
        fd = np.array([
            (g0 @ (q0 + G0 @ (h * e)) - g0 @ (q0 + G0 @ (-h * e))) / (2 * h) for e in np.eye(6)
        ])
        assert np.abs(z.grad[i].double().numpy() - fd).max() < 1e-6 + 10 * tol


@pytest.mark.parametrize("dtype,h,tol", [(torch.float64, 1e-4, 1e-8), (torch.float32, 1e-2, 2e-3)])
def test_rotate_to_gradient_by_finite_differences_of_the_efficient_formula(dtype, h, tol):
    """Central differences of the official code's efficient formula, s0 (z - 2 w0 (w0.z) + 2 q0^ (z0^.z)),
    with z0^, q0^, w0 and s0 = |q|/|z0| frozen at z0 and z perturbed, computed in ``dtype``, equal
    autograd's gradient of <g, rotate_to(z, q)> at z0 (float32 and float64)."""
    z, q, g = rand_pairs(4, 6, dtype, "cpu", seed=11)
    z.requires_grad_(True)
    vq.rotate_to(z, q).backward(g)
    for i in range(4):
        z0, q0, g0 = z[i].detach(), q[i], g[i]
        zh0, qh0 = z0 / z0.norm(), q0 / q0.norm()
        w0 = (zh0 + qh0) / (zh0 + qh0).norm()
        s0 = q0.norm() / z0.norm()

        def surrogate(zz):  # a scalar loss <g, G0 zz>, G0 frozen at z0 (the forward value at z0 is q0 up to rounding)
            return (g0 * (s0 * (zz - 2 * w0 * (w0 @ zz) + 2 * qh0 * (zh0 @ zz)))).sum()

        assert (s0 * (z0 - 2 * w0 * (w0 @ z0) + 2 * qh0 * (zh0 @ z0)) - q0).abs().max() < 100 * torch.finfo(dtype).eps * 10
        eye = torch.eye(6, dtype=dtype)
        fd = torch.stack([(surrogate(z0 + h * e) - surrogate(z0 - h * e)) / (2 * h) for e in eye])
        assert fd.dtype == dtype
        assert (z.grad[i] - fd).abs().max().item() < tol


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_rotate_to_ablation_switches(dtype, tol):
    """rescale only: (|q|/|z|) g; rotation only: R^T g (Rodrigues); neither: g (the STE). Value exactly q."""
    z, q, g = rand_pairs(30, 5, dtype, "cpu", seed=7)
    grads = {}
    for rotate, rescale in ((True, True), (False, True), (True, False), (False, False)):
        zz = z.clone().requires_grad_(True)
        out = vq.rotate_to(zz, q, rotate=rotate, rescale=rescale)
        assert torch.equal(out.detach(), q)
        out.backward(g)
        grads[rotate, rescale] = zz.grad.double().numpy()
    zn, qn, gn = (t.double().numpy() for t in (z, q, g))
    ratio = np.linalg.norm(qn, axis=1) / np.linalg.norm(zn, axis=1)
    assert np.abs(grads[False, True] - ratio[:, None] * gn).max() < 10 * tol
    assert np.abs(grads[False, False] - gn).max() < 10 * tol
    for i in range(len(zn)):
        R = rodrigues(zn[i], qn[i])
        assert np.abs(grads[True, False][i] - R.T @ gn[i]).max() < 10 * tol
        assert np.abs(grads[True, True][i] - ratio[i] * R.T @ gn[i]).max() < 10 * tol
    with pytest.raises(TypeError, match="rotate"):
        vq.rotate_to(z, q, rotate=1)
    with pytest.raises(TypeError, match="rescale"):
        vq.rotate_to(z, q, rescale=None)


def test_quantizer_rot_variants():
    torch.manual_seed(0)
    z = torch.randn(40, 4, requires_grad=True)
    g = torch.randn(40, 4)
    grads = {}
    for variant in vq.quantizer.ROT_VARIANTS:
        torch.manual_seed(1)
        vqm = vq.VectorQuantizer(16, 4, mode="rot", rot_variant=variant)
        z_q, idx, _ = vqm(z)
        (grads[variant],) = torch.autograd.grad((z_q * g).sum(), z)
        q = vqm.codebook().detach()[idx]
    ratio = q.norm(dim=1, keepdim=True) / z.detach().norm(dim=1, keepdim=True)
    assert torch.allclose(grads["rescale_only"], ratio * g, atol=1e-5)
    assert torch.allclose(grads["rotation_only"].norm(dim=1), g.norm(dim=1), atol=1e-5)
    assert torch.allclose(grads["full"], ratio * grads["rotation_only"], atol=1e-5)
    with pytest.raises(ValueError, match="rot_variant"):
        vq.VectorQuantizer(16, 4, mode="rot", rot_variant="half")
    with pytest.raises(ValueError, match="rot_variant"):
        vq.VectorQuantizer(16, 4, mode="ste", rot_variant="rescale_only")


def test_rotate_to_detaches_constants_and_codebook():
    """G must be constant: grad of <g, z_q> is linear in g and independent of how z enters."""
    z, q, g = rand_pairs(4, 5, torch.float64, "cpu", seed=5)
    z.requires_grad_(True)
    q.requires_grad_(True)
    out = vq.rotate_to(z, q)
    (gz,) = torch.autograd.grad((out * g).sum(), z, retain_graph=True)
    (gz2,) = torch.autograd.grad((out * 2 * g).sum(), z, retain_graph=True)
    assert torch.allclose(gz2, 2 * gz, rtol=0, atol=1e-14)
    (gq,) = torch.autograd.grad((out * g).sum(), q, allow_unused=True)
    assert gq is None or torch.count_nonzero(gq) == 0
    # second derivative of the surrogate vanishes (no leaked dependence of G on z)
    z2 = z.detach().clone().requires_grad_(True)
    (gg,) = torch.autograd.grad((vq.rotate_to(z2, q.detach()) * g).sum(), z2, create_graph=True)
    assert not gg.requires_grad or torch.autograd.grad(gg.sum(), z2, allow_unused=True)[0] is None


@PROPS
@given(theta=st.floats(0.05, 3.0), frac=st.floats(0.0, 1.0), scale=st.floats(0.1, 10.0))
def test_rotate_to_angle_formula(theta, frac, scale):
    """cos angle(R^T g, g) = 1 - (1 - cos theta) |g_par|^2/|g|^2 (derivation 4, closed form)."""
    z = torch.tensor([[scale, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[math.cos(theta), math.sin(theta), 0.0]], dtype=torch.float64)
    par = math.sqrt(1.0 - frac**2)
    g = torch.tensor([[par * 0.6, par * 0.8, frac]], dtype=torch.float64)
    vq.rotate_to(z, q).backward(g)
    gz = z.grad[0].numpy()
    cos_ang = gz @ g[0].numpy() / (np.linalg.norm(gz) * np.linalg.norm(g[0].numpy()))
    assert abs(cos_ang - (1 - (1 - math.cos(theta)) * par**2)) < 1e-12
    assert cos_ang >= math.cos(theta) - 1e-12
    assert abs(np.linalg.norm(gz) - 1.0 / scale) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotate_to_antiparallel_is_finite_and_norm_exact(dtype):
    z = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    q = torch.tensor([[-2.0, -4.0, -6.0], [-1.0, 1e-9, 0.0]], dtype=dtype)
    g = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.2, 0.5]], dtype=dtype)
    out = vq.rotate_to(z, q)
    out.backward(g)
    assert torch.equal(out.detach(), q)
    assert bool(torch.isfinite(z.grad).all())
    ratio = z.grad.norm(dim=1) / g.norm(dim=1)
    assert torch.allclose(ratio, q.norm(dim=1) / z.norm(dim=1).detach(), rtol=1e-5)
    # row 0: (|q|/|z|) times the Householder reflection I - 2 z^ z^T, written out by hand
    zh = np.array([1.0, 2.0, 3.0]) / math.sqrt(14)
    ref = 2.0 * (np.array([1.0, 0, 0]) - 2 * zh * zh[0])
    assert np.abs(z.grad[0].double().numpy() - ref).max() < 1e-5


def test_rotate_to_errors():
    z = torch.ones(2, 3)
    with pytest.raises(ValueError, match="shape"):
        vq.rotate_to(z, torch.ones(2, 4))
    with pytest.raises(TypeError, match="q"):
        vq.rotate_to(z, torch.ones(2, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="dtype"):
        vq.rotate_to(z, torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="eps"):
        vq.rotate_to(z, z, eps=0.0)
    with pytest.raises(ValueError, match="q"):
        vq.rotate_to(z, torch.full((2, 3), float("inf")))


# ----------------------------------------------------------------------------- kmeans
def blobs(n_per=200, K=5, d=3, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, d)) * 5
    x = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres])
    return x, centres


def test_kmeans_recovers_planted_centres_and_agrees_with_scipy():
    x, centres = blobs()
    cent, assign = vq.kmeans(x, 5, iters=30, seed=0)
    assert isinstance(cent, np.ndarray) and cent.dtype == np.float64 and assign.dtype == np.int64
    # match each found centroid to a planted centre
    dist = np.linalg.norm(cent[:, None] - centres[None], axis=-1)
    assert sorted(dist.argmin(1).tolist()) == list(range(5))
    assert dist.min(1).max() < 0.02
    ref, _ = scipy.cluster.vq.kmeans2(x, centres, minit="matrix", iter=30)
    assert np.abs(np.sort(cent, axis=0) - np.sort(ref, axis=0)).max() < 1e-10


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kmeans_lloyd_fixed_point_and_types(device, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g).to(dtype=dtype, device=device)
    cent, assign = vq.kmeans(x, 8, iters=100, seed=1)
    assert cent.dtype == dtype and cent.device.type == device and assign.dtype == torch.int64
    xd, cd = x.cpu().double(), cent.cpu().double()
    d2 = torch.cdist(xd, cd).square()
    # each point is assigned to its nearest centroid (up to ties)
    assert torch.all(d2.gather(1, assign.cpu()[:, None])[:, 0] <= d2.min(1).values + 1e-4)
    # each centroid is the mean of its points (Lloyd converged)
    for k in range(8):
        m = assign.cpu() == k
        assert m.any()
        assert torch.allclose(xd[m].mean(0), cd[k], atol=1e-5)
    # deterministic in the seed
    cent2, _ = vq.kmeans(x, 8, iters=100, seed=1)
    assert torch.equal(cent, cent2)


def test_kmeans_duplicates_and_empty_clusters_stay_finite():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    cent, assign = vq.kmeans(x, 3, iters=5)
    assert np.isfinite(cent).all()
    assert {tuple(c) for c in cent} == {(0.0, 0.0), (1.0, 1.0)}
    assert assign[3] != assign[0]


def test_kmeans_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="K"):
        vq.kmeans(x, 6)
    with pytest.raises(ValueError, match="K"):
        vq.kmeans(x, 0)
    with pytest.raises(TypeError, match="x"):
        vq.kmeans(np.zeros((5, 2), dtype=np.int64), 2)
    with pytest.raises(ValueError, match="x"):
        vq.kmeans(np.zeros((0, 2)), 1)
    with pytest.raises(ValueError, match="x"):
        vq.kmeans(np.array([[np.nan, 0.0]]), 1)
    with pytest.raises(TypeError, match="x"):
        vq.kmeans([[0.0, 1.0]], 1)
    with pytest.raises(ValueError, match="iters"):
        vq.kmeans(x, 2, iters=-1)


# ----------------------------------------------------------------------------- codebook_usage
def test_codebook_usage_values():
    used, ppl = vq.codebook_usage(torch.tensor([0, 0, 1, 1]), 4)
    assert used == 0.5 and abs(ppl - 2.0) < 1e-12
    used, ppl = vq.codebook_usage(torch.arange(10).repeat(3), 10)
    assert used == 1.0 and abs(ppl - 10.0) < 1e-10
    used, ppl = vq.codebook_usage(np.array([3, 3, 3, 1]), 8)
    H = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert used == 2 / 8 and abs(ppl - math.exp(H)) < 1e-12


def test_codebook_usage_errors():
    with pytest.raises(TypeError, match="idx"):
        vq.codebook_usage(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="idx"):
        vq.codebook_usage(torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="idx"):
        vq.codebook_usage(torch.tensor([], dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="K"):
        vq.codebook_usage(torch.tensor([0]), 0)


# ----------------------------------------------------------------------------- VectorQuantizer
@pytest.mark.parametrize("mode", vq.VQ_MODES)
def test_quantizer_forward_is_nearest_code_and_losses(mode):
    torch.manual_seed(0)
    m = vq.VectorQuantizer(12, 3, mode=mode, init_std=0.8)
    z = torch.randn(40, 3, requires_grad=True)
    z_q, idx, losses = m(z)
    C = m.codebook().detach()
    d2 = torch.cdist(z.detach().double(), C.double())
    assert torch.equal(idx, d2.argmin(1))
    assert torch.equal(z_q.detach(), C[idx])
    assert abs(losses["codebook"].item() - ((C[idx] - z.detach()) ** 2).mean().item()) < 1e-6
    assert abs(losses["commit"].item() - ((C[idx] - z.detach()) ** 2).mean().item()) < 1e-6
    # weighted = beta*codebook + gamma*commit (the article's naming: beta on the codebook term)
    assert torch.allclose(m.weighted(losses), 1.0 * losses["codebook"] + 0.25 * losses["commit"])
    # commitment gradient goes to z only, codebook gradient to the codebook parameters only
    (gz,) = torch.autograd.grad(losses["codebook"], z, allow_unused=True)
    assert gz is None
    params = [p for p in m.parameters()]
    assert len(params) == 1  # embed, linear.weight or w (no bias by default)


def test_quantizer_codebooks_per_mode():
    torch.manual_seed(0)
    for mode in ("simvq", "simvq_diag"):
        m = vq.VectorQuantizer(6, 4, mode=mode)
        assert "E" in dict(m.named_buffers()) and not any(n == "E" for n, _ in m.named_parameters())
        assert torch.allclose(m.codebook(), m.E)  # identity / ones init
    m = vq.VectorQuantizer(6, 4, mode="simvq", linear_init="default", linear_bias=True)
    W, b = m.linear.weight.detach(), m.linear.bias.detach()
    assert torch.allclose(m.codebook(), m.E @ W.T + b)
    m = vq.VectorQuantizer(6, 4, mode="simvq_diag")
    with torch.no_grad():
        m.w.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(m.codebook(), m.E * torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.manual_seed(1)
    m = vq.VectorQuantizer(5000, 2, init_std=0.3)
    assert abs(m.codebook().std().item() - 0.3) < 0.01


def test_quantizer_rot_gradient_and_simvq_moves_every_code():
    torch.manual_seed(0)
    z = torch.randn(5, 4, requires_grad=True)
    g = torch.randn(5, 4)
    m = vq.VectorQuantizer(8, 4, mode="rot")
    z_q, idx, _ = m(z)
    z_q.backward(g)
    q = m.codebook().detach()[idx]
    for i in range(5):
        G = (q[i].norm() / z[i].norm()).item() * rodrigues(z[i].detach().double().numpy(), q[i].double().numpy())
        assert np.abs(z.grad[i].double().numpy() - G.T @ g[i].double().numpy()).max() < 1e-5
    # one SGD step on the codebook loss: plain VQ moves only selected codes, SimVQ moves all of them
    for mode, expect_all in (("ste", False), ("simvq", True)):
        torch.manual_seed(0)
        m = vq.VectorQuantizer(8, 4, mode=mode)
        before = m.codebook().detach().clone()
        _, idx, losses = m(torch.randn(3, 4))
        losses["codebook"].backward()
        with torch.no_grad():
            for p in m.parameters():
                p -= 0.1 * p.grad
        moved = (m.codebook().detach() - before).norm(dim=1) > 0
        if expect_all:
            assert bool(moved.all())
        else:
            assert set(torch.nonzero(moved).flatten().tolist()) == set(idx.tolist())


def test_quantizer_init_kmeans():
    torch.manual_seed(0)
    zs = torch.randn(300, 3)
    for mode in vq.VQ_MODES:
        m = vq.VectorQuantizer(10, 3, mode=mode, init="kmeans")
        m.init_kmeans(zs, seed=2)
        cent, _ = vq.kmeans(zs, 10, seed=2)
        assert torch.allclose(m.codebook().detach(), cent, atol=1e-6)
    with pytest.raises(ValueError, match="z_sample"):
        m.init_kmeans(torch.randn(300, 4))


def test_quantizer_errors():
    with pytest.raises(ValueError, match="mode"):
        vq.VectorQuantizer(4, 2, mode="ema")
    with pytest.raises(ValueError, match="init"):
        vq.VectorQuantizer(4, 2, init="uniform")
    with pytest.raises(ValueError, match="init_std"):
        vq.VectorQuantizer(4, 2, init_std=0.0)
    with pytest.raises(ValueError, match="linear_init"):
        vq.VectorQuantizer(4, 2, mode="simvq", linear_init="orthogonal")
    with pytest.raises(ValueError, match="K"):
        vq.VectorQuantizer(0, 2)
    with pytest.raises(ValueError, match="gamma"):
        vq.VectorQuantizer(4, 2, gamma=-1.0)
    m = vq.VectorQuantizer(4, 2)
    with pytest.raises(ValueError, match="z"):
        m(torch.randn(3, 3))


# ----------------------------------------------------------------------------- toy data and training
def test_toy_manifold_data_is_r_dimensional():
    x = vq.toy_manifold_data(500, D=16, r=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (500, 16) and x.dtype == torch.float32
    assert float(x.abs().max()) < 1.0
    # atanh(x) = u A + b is affine in u: centred, it has rank r
    y = torch.atanh(x.double().clamp(-1 + 1e-7, 1 - 1e-7))
    s = torch.linalg.svdvals(y - y.mean(0))
    assert s[3] > 1.0 and s[4] / s[0] < 1e-4
    # same data_seed: the same manifold; different draws of u
    x2 = vq.toy_manifold_data(500, D=16, r=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    x3 = vq.toy_manifold_data(500, D=16, r=4, data_seed=7, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(x, x3)
    with pytest.raises(ValueError, match="n"):
        vq.toy_manifold_data(0)
    with pytest.raises(TypeError, match="r"):
        vq.toy_manifold_data(5, r=2.0)


def test_train_vqae_short_run():
    res = vq.train_vqae("ste", steps=60, log_every=20, eval_n=2000, K=32)
    assert res["steps"].tolist() == [0, 20, 40, 60]
    c = res["curves"]
    assert set(c) >= {"rec", "usage", "perplexity", "z_norm", "q_norm", "grad_rec", "grad_commit"}
    assert c["rec"][-1] < c["rec"][0]
    assert 0 < res["usage"] <= 1 and 1 <= res["perplexity"] <= 32
    res2 = vq.train_vqae("ste", steps=60, log_every=20, eval_n=2000, K=32)
    assert res2["rec"] == res["rec"]  # seeded


def test_train_vqae_gradient_scale_at_step_zero():
    """Step 0: rot's reconstruction gradient equals STE's times |q|/|z| row by row, so the means agree roughly."""
    out = {}
    for mode in ("ste", "rot"):
        out[mode] = vq.train_vqae(mode, init_std=0.01, steps=0, eval_n=2000)
    c_ste, c_rot = out["ste"]["curves"], out["rot"]["curves"]
    assert c_ste["grad_commit"][0] == c_rot["grad_commit"][0]
    ratio = c_rot["grad_rec"][0] / c_ste["grad_rec"][0]
    qz = c_rot["q_norm"][0] / c_rot["z_norm"][0]
    assert 0.5 < ratio / qz < 2.0 and ratio < 0.2


def test_train_vqae_kmeans_and_snapshots():
    res = vq.train_vqae("simvq", init="kmeans", steps=20, log_every=10, eval_n=1000, K=16, kmeans_n=200,
                        snapshot_every=10, snapshot_n=50)
    assert [s["step"] for s in res["snapshots"]] == [0, 10, 20]
    s = res["snapshots"][-1]
    assert s["codebook"].shape == (16, 8) and s["z"].shape == (50, 8) and s["counts"].sum() == 1000
    with pytest.raises(ValueError, match="kmeans_n"):
        vq.train_vqae("ste", init="kmeans", K=16, kmeans_n=8, steps=1)
    with pytest.raises(ValueError, match="mode"):
        vq.train_vqae("bogus", steps=1)
    with pytest.raises(ValueError, match="lr"):
        vq.train_vqae("ste", lr=0.0, steps=1)
