"""Tests for kexue_lite.multimodal.bits (notebook multimodal-lossless-input, article 9984)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from kexue_lite import multimodal as mm


# ----------------------------------------------------------------------------- patchify / unpatchify
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("H,W,C,s,t", [(64, 64, 3, 16, 16), (128, 128, 3, 16, 16), (12, 8, 2, 3, 4), (5, 7, 1, 1, 7)])
def test_patchify_roundtrip_and_shape(dtype, H, W, C, s, t):
    rng = np.random.default_rng(0)
    x = (rng.random((H, W, C)) * 255).astype(dtype)
    p = mm.patchify(x, s, t)
    assert p.shape == (s, t, (H // s) * (W // t) * C)
    assert p.dtype == x.dtype
    assert np.array_equal(mm.unpatchify(p, H, W, C), x)


def test_patchify_article_shapes():
    # the article: 64x64 -> 16x16x48, 128x128 -> 16x16x192
    assert mm.patchify(np.zeros((64, 64, 3)), 16, 16).shape == (16, 16, 48)
    assert mm.patchify(np.zeros((128, 128, 3)), 16, 16).shape == (16, 16, 192)


def test_patchify_matches_explicit_slicing():
    rng = np.random.default_rng(1)
    H, W, C, s, t = 12, 15, 2, 4, 3
    x = rng.integers(0, 256, size=(H, W, C))
    p = mm.patchify(x, s, t)
    h, w = H // s, W // t
    for i in range(s):
        for j in range(t):
            # row-major over (row in patch, column in patch, channel)
            expected = [x[i * h + r, j * w + c, ch] for r in range(h) for c in range(w) for ch in range(C)]
            assert p[i, j].tolist() == expected


def test_patchify_batch_and_torch_agree_with_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 12, 3)).astype(np.float32)
    p = mm.patchify(x, 2, 4)
    assert p.shape == (2, 3, 2, 4, 4 * 3 * 3)
    for a in range(2):
        for b in range(3):
            assert np.array_equal(p[a, b], mm.patchify(x[a, b], 2, 4))
    pt = mm.patchify(torch.from_numpy(x), 2, 4)
    assert isinstance(pt, torch.Tensor)
    assert np.array_equal(pt.numpy(), p)
    assert torch.equal(mm.unpatchify(pt, 8, 12, 3), torch.from_numpy(x))


def test_patchify_errors():
    x = np.zeros((10, 12, 3))
    with pytest.raises(ValueError, match="s must divide"):
        mm.patchify(x, 3, 4)
    with pytest.raises(ValueError, match="t must divide"):
        mm.patchify(x, 5, 5)
    with pytest.raises(ValueError, match="x must have shape"):
        mm.patchify(np.zeros((4, 4)), 2, 2)
    with pytest.raises(TypeError, match="x must be"):
        mm.patchify([[[0.0]]], 1, 1)
    with pytest.raises(ValueError, match="s must be >= 1"):
        mm.patchify(x, 0, 4)
    with pytest.raises(TypeError, match="t must be an integer"):
        mm.patchify(x, 5, 4.0)
    p = mm.patchify(x, 5, 4)
    with pytest.raises(ValueError, match="last axis"):
        mm.unpatchify(p, 10, 12, 2)
    with pytest.raises(ValueError, match="H must be a multiple"):
        mm.unpatchify(p, 11, 12, 3)
    with pytest.raises(ValueError, match="W must be a multiple"):
        mm.unpatchify(p, 10, 13, 3)


# ----------------------------------------------------------------------------- counting bound
def test_min_vocab_log2_article_numbers():
    B = 64 * 64 * 3 * 3
    assert B == 36864
    assert mm.min_vocab_log2(B, 1024) == 36.0
    assert mm.min_vocab_log2(B, 256) == 144.0
    # V_min = 2**36 = 68719476736 (integer arithmetic, independent of the code)
    assert 2 ** int(mm.min_vocab_log2(B, 1024)) == 68719476736
    # 3.44 bits/subpixel: 42270.72 bits, 41.28 bits/token at L = 1024
    assert mm.min_vocab_log2(64 * 64 * 3 * 3.44, 1024) == pytest.approx(41.28, rel=1e-12)
    assert mm.min_vocab_log2(0, 5) == 0.0


def test_min_vocab_log2_capacity_inequality():
    # L log2 V >= B holds at V = 2**min_vocab_log2 and fails just below
    for B, L in [(36864, 256), (8704, 64), (100.0, 7)]:
        v = mm.min_vocab_log2(B, L)
        assert L * v == pytest.approx(B, rel=1e-12)
        assert L * (v - 1e-9) < B


def test_min_vocab_log2_errors():
    with pytest.raises(ValueError, match="L must be >= 1"):
        mm.min_vocab_log2(10.0, 0)
    with pytest.raises(ValueError, match="total_bits"):
        mm.min_vocab_log2(-1.0, 4)
    with pytest.raises(ValueError, match="total_bits"):
        mm.min_vocab_log2(float("nan"), 4)
    with pytest.raises(TypeError, match="L must be an integer"):
        mm.min_vocab_log2(10.0, 2.5)


# ----------------------------------------------------------------------------- glyph images
def test_glyph_images_shapes_and_ranges():
    ids, images, glyphs = mm.glyph_images(5, alphabet=16, glyph=4, grid=3, noise_levels=4, seed=1)
    assert ids.shape == (5, 3, 3) and ids.dtype == np.int64
    assert images.shape == (5, 12, 12) and images.dtype == np.uint8
    assert glyphs.shape == (16, 4, 4) and glyphs.dtype == np.uint8
    assert set(np.unique(glyphs)) <= {0, 1}
    assert ids.min() >= 0 and ids.max() < 16
    # glyphs are distinct
    assert len({g.tobytes() for g in glyphs}) == 16


@pytest.mark.parametrize("q", [1, 2, 4, 64])
def test_glyph_images_injective_decoding(q):
    # the image determines glyph ids and noise exactly: pixel = glyph*a + noise with a = 255 - 3(q-1) >= q
    ids, images, glyphs = mm.glyph_images(4, alphabet=32, glyph=5, grid=4, noise_levels=q, seed=3)
    a = 255 - 3 * (q - 1)
    bit = (images >= a).astype(np.uint8)
    noise = images.astype(int) - a * bit
    assert noise.min() >= 0 and noise.max() <= q - 1
    patches = bit.reshape(4, 4, 5, 4, 5).transpose(0, 1, 3, 2, 4)
    table = {g.tobytes(): k for k, g in enumerate(glyphs)}
    decoded = np.array([[[table[patches[n, i, j].tobytes()] for j in range(4)] for i in range(4)] for n in range(4)])
    assert np.array_equal(decoded, ids)


def test_glyph_images_deterministic_and_uniform():
    a = mm.glyph_images(50, seed=7)
    b = mm.glyph_images(50, seed=7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    ids, images, _ = a
    # ids ~ uniform over 256: chi-square goodness of fit does not reject at 1e-4
    counts = np.bincount(ids.ravel(), minlength=256)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4
    noise = images.astype(int) % 246  # a = 246 for q = 4; glyph pixels are 246..249, background 0..3
    assert set(np.unique(noise)) == {0, 1, 2, 3}


def test_glyph_image_bits_exact():
    # spec derivation 4: A=256, g=8, q=4, G=8 -> 8*8*8 + 64*64*2 = 8704
    assert mm.glyph_image_bits(256, 8, 8, 4) == 8704.0
    assert mm.glyph_image_bits(2, 1, 1, 1) == 1.0
    # brute force: enumerate every (glyph choice, noise) of a tiny configuration; all images are distinct and
    # equally likely, so the entropy is log2 of their number
    A, g, G, q = 3, 2, 1, 2
    _, _, glyphs = mm.glyph_images(1, alphabet=A, glyph=g, grid=G, noise_levels=q, seed=0)
    amp = 255 - 3 * (q - 1)
    images = set()
    for k in range(A):
        for bits in range(q ** (g * g)):
            noise = np.array([(bits >> i) & 1 for i in range(g * g)]).reshape(g, g)
            images.add((glyphs[k].astype(int) * amp + noise).tobytes())
    assert len(images) == A * q ** (g * g)
    assert mm.glyph_image_bits(A, g, G, q) == pytest.approx(math.log2(len(images)), rel=1e-12)


def test_glyph_errors():
    with pytest.raises(ValueError, match="noise_levels"):
        mm.glyph_images(1, noise_levels=0)
    with pytest.raises(ValueError, match="noise_levels=65"):
        mm.glyph_images(1, noise_levels=65)
    with pytest.raises(ValueError, match="alphabet"):
        mm.glyph_images(1, alphabet=17, glyph=2)
    with pytest.raises(ValueError, match="n must be"):
        mm.glyph_images(0)
    with pytest.raises(TypeError, match="grid"):
        mm.glyph_images(1, grid=2.0)
    with pytest.raises(ValueError, match="alphabet"):
        mm.glyph_image_bits(0, 8, 8, 4)


# ----------------------------------------------------------------------------- Gaussian field
def _circulant_cov(lam: np.ndarray) -> np.ndarray:
    """Dense covariance of a periodic 2-D field from its eigenvalues, built entry by entry (independent path)."""
    n = lam.shape[0]
    c = np.fft.ifft2(lam).real  # autocovariance c[dy, dx]
    idx = [(i, j) for i in range(n) for j in range(n)]
    return np.array([[c[(i - k) % n, (j - l) % n] for (k, l) in idx] for (i, j) in idx])


@pytest.mark.parametrize("alpha,noise", [(2.0, 1.0), (3.0, 0.5), (0.0, 2.0)])
def test_gaussian_field_bits_against_scipy_entropy(alpha, noise):
    size = 6
    lam = mm.gaussian_field_spectrum(size, alpha, 30.0)
    C = _circulant_cov(lam) + noise**2 * np.eye(size * size)
    h_nats = scipy.stats.multivariate_normal(mean=np.zeros(size * size), cov=C).entropy()
    assert mm.gaussian_field_bits(size, alpha, 30.0, noise) == pytest.approx(h_nats / math.log(2) / size**2, rel=1e-10)


def test_gaussian_field_white_noise_limit():
    # alpha = 0: flat spectrum, i.i.d. N(0, contrast^2 + noise^2) pixels: h = 1/2 log2(2 pi e sigma^2)
    h = mm.gaussian_field_bits(16, 0.0, 3.0, 4.0)
    assert h == pytest.approx(0.5 * math.log2(2 * math.pi * math.e * 25.0), rel=1e-12)


def test_gaussian_field_spectrum_normalised():
    lam = mm.gaussian_field_spectrum(64, 2.5, 30.0)
    assert lam.shape == (64, 64)
    assert lam.mean() == pytest.approx(900.0, rel=1e-12)
    assert np.all(lam > 0)
    # symmetric under f -> -f, so the filtered field is real
    assert np.allclose(lam, np.roll(lam[::-1, ::-1], 1, axis=(0, 1)))


def test_gaussian_field_covariance_matches_spectrum():
    size, noise = 8, 1.5
    x = mm.gaussian_field(4000, size=size, alpha=2.0, contrast=10.0, noise=noise, seed=0)
    assert x.dtype == np.float64 and x.shape == (4000, size, size)
    assert abs(x.mean() - 128.0) < 0.5
    xc = (x - 128.0).reshape(4000, -1)
    emp = xc.T @ xc / 4000
    C = _circulant_cov(mm.gaussian_field_spectrum(size, 2.0, 10.0)) + noise**2 * np.eye(size * size)
    assert np.max(np.abs(emp - C)) < 0.1 * C[0, 0]


def test_gaussian_field_errors():
    with pytest.raises(ValueError, match="contrast"):
        mm.gaussian_field(1, contrast=0.0)
    with pytest.raises(ValueError, match="noise"):
        mm.gaussian_field(1, noise=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        mm.gaussian_field_bits(8, float("inf"), 1.0, 1.0)
    with pytest.raises(ValueError, match="f0"):
        mm.gaussian_field_bits(8, 2.0, 1.0, 1.0, f0=0.0)
    with pytest.raises(ValueError, match="size"):
        mm.gaussian_field(1, size=1)
    with pytest.raises(ValueError, match="n_img"):
        mm.gaussian_field(0)


# ----------------------------------------------------------------------------- MED coder
def _med_loop(x: np.ndarray) -> np.ndarray:
    H, W = x.shape
    out = np.zeros_like(x, dtype=np.int64)
    for i in range(H):
        for j in range(W):
            a, b, c = int(x[i, j - 1]), int(x[i - 1, j]), int(x[i - 1, j - 1])  # python wraps -1: periodic
            if c >= max(a, b):
                out[i, j] = min(a, b)
            elif c <= min(a, b):
                out[i, j] = max(a, b)
            else:
                out[i, j] = a + b - c
    return out


def test_med_predict_matches_loop():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(9, 11)).astype(np.uint8)
    assert np.array_equal(mm.med_predict(x), _med_loop(x))


def test_med_code_length_reference_values():
    assert mm.med_code_length(np.full((8, 8), 77, dtype=np.uint8)) == 0.0
    # rows alternate 0/1 along the vertical; a = x, b = c = other row: c = b, between -> a + b - c = a = x: exact
    x = np.tile(np.array([[0], [1]]), (4, 8))
    assert mm.med_code_length(x) == 0.0
    # a checkerboard: a = b = other colour, c = own colour; c >= max -> predict other colour: residual +-1
    # with equal counts -> exactly 1 bit per pixel
    cb = (np.indices((8, 8)).sum(0) % 2).astype(np.int16)
    assert mm.med_code_length(cb) == pytest.approx(1.0, abs=1e-15)
    # integer-valued floats are accepted and give the same answer
    rng = np.random.default_rng(1)
    y = rng.integers(0, 50, size=(16, 16))
    assert mm.med_code_length(y.astype(np.float32)) == mm.med_code_length(y)


def test_med_code_length_upper_bounds_gaussian_entropy():
    # on a smooth field the real coder needs more bits than the closed-form entropy, but not far more
    x = np.rint(mm.gaussian_field(4, alpha=3.0, noise=1.0, seed=2))
    med = np.mean([mm.med_code_length(xi) for xi in x])
    h = mm.gaussian_field_bits(64, 3.0, 30.0, 1.0)
    assert 0 < med - h < 0.35


def test_med_errors():
    with pytest.raises(ValueError, match="round"):
        mm.med_code_length(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        mm.med_code_length(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        mm.med_code_length(np.zeros((2, 4, 4), dtype=int))
    with pytest.raises(ValueError, match="empty"):
        mm.med_code_length(np.zeros((0, 4), dtype=int))
    with pytest.raises(TypeError, match="img"):
        mm.med_code_length([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="dtype"):
        mm.med_code_length(np.zeros((4, 4), dtype=bool))
