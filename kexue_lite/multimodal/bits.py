"""Counting the bits an image tokenizer must carry, and the lossless alternative (raw patches).

Serves the notebook ``book/multimodal/multimodal-lossless-input.md`` (kexue.fm/archives/9984); ``patchify`` and
``unpatchify`` are reused by ``book/multimodal/multimodal-autoregression.md`` (kexue.fm/archives/10197).

Conventions
-----------
* Images are ``(..., H, W, C)`` arrays (numpy or torch for the patch functions, numpy elsewhere); any leading
  axes are batch axes.
* ``patchify(x, s, t)`` cuts an image into an ``s x t`` grid of patches of ``(H/s) x (W/t)`` pixels, giving
  ``s*t`` tokens of width ``(H/s)(W/t)C`` (the article: 64x64x3 -> 16x16x48, 128x128x3 -> 16x16x192).
* All "bits" are base-2; entropies of the synthetic constructions are exact (glyphs) or closed-form
  (Gaussian field); code lengths of a real coder are upper bounds on the entropy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "patchify",
    "unpatchify",
    "min_vocab_log2",
    "glyph_images",
    "glyph_image_bits",
    "gaussian_field",
    "gaussian_field_spectrum",
    "gaussian_field_bits",
    "med_predict",
    "med_code_length",
]

Array = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------- helpers
def _check_array(x: Any, name: str) -> None:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _check_pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def _check_real(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _permute(x: Array, axes: tuple[int, ...]) -> Array:
    return x.permute(*axes) if isinstance(x, torch.Tensor) else np.transpose(x, axes)


# ----------------------------------------------------------------------------- raw patches (lossless input)
def patchify(x: Array, s: int, t: int) -> Array:
    """Cut ``(..., H, W, C)`` images into an ``s x t`` grid of raw pixel patches: ``(..., s, t, (H/s)(W/t)C)``.

    The order is the one of the notebook multimodal-lossless-input (article 9984, "lossless input"): reshape to
    ``(..., s, H/s, t, W/t, C)``, transpose to ``(..., s, t, H/s, W/t, C)``, flatten the last three axes. Token
    ``[i, j]`` is the patch in block-row ``i`` and block-column ``j``, read row by row, pixel-major, channel-minor.
    Nothing is lost: ``unpatchify(patchify(x, s, t), H, W, C)`` returns ``x`` exactly. Works for numpy arrays and
    torch tensors of any dtype.
    """
    _check_array(x, "x")
    s = _check_pos_int(s, "s")
    t = _check_pos_int(t, "t")
    if x.ndim < 3:
        raise ValueError(f"x must have shape (..., H, W, C), got shape {tuple(x.shape)}")
    *lead, H, W, C = (int(d) for d in x.shape)
    if H % s:
        raise ValueError(f"s must divide the height H: H={H}, s={s}")
    if W % t:
        raise ValueError(f"t must divide the width W: W={W}, t={t}")
    k = len(lead)
    y = x.reshape(*lead, s, H // s, t, W // t, C)
    y = _permute(y, (*range(k), k, k + 2, k + 1, k + 3, k + 4))
    return y.reshape(*lead, s, t, (H // s) * (W // t) * C)


def unpatchify(p: Array, H: int, W: int, C: int) -> Array:
    """Inverse of :func:`patchify`: ``(..., s, t, (H/s)(W/t)C)`` -> ``(..., H, W, C)`` (notebook
    multimodal-lossless-input, article 9984)."""
    _check_array(p, "p")
    H = _check_pos_int(H, "H")
    W = _check_pos_int(W, "W")
    C = _check_pos_int(C, "C")
    if p.ndim < 3:
        raise ValueError(f"p must have shape (..., s, t, D), got shape {tuple(p.shape)}")
    *lead, s, t, D = (int(d) for d in p.shape)
    if H % s:
        raise ValueError(f"H must be a multiple of the patch-grid height s: H={H}, s={s}")
    if W % t:
        raise ValueError(f"W must be a multiple of the patch-grid width t: W={W}, t={t}")
    if D != (H // s) * (W // t) * C:
        raise ValueError(f"p's last axis must be (H/s)(W/t)C = {(H // s) * (W // t) * C}, got {D}")
    k = len(lead)
    y = p.reshape(*lead, s, t, H // s, W // t, C)
    y = _permute(y, (*range(k), k, k + 2, k + 1, k + 3, k + 4))
    return y.reshape(*lead, H, W, C)


# ----------------------------------------------------------------------------- the counting bound
def min_vocab_log2(total_bits: float, L: int) -> float:
    """``log2 V_min = B / L``: the fewest bits per token that ``L`` tokens need to carry ``B`` bits losslessly.

    From ``L log2 V >= B`` (notebook multimodal-lossless-input, derivation 1; article 9984). Returned as a log because
    ``V_min`` itself overflows a float for short sequences (``2**2304`` at ``L = 16``).
    """
    B = _check_real(total_bits, "total_bits")
    if B < 0:
        raise ValueError(f"total_bits must be >= 0, got {B}")
    L = _check_pos_int(L, "L")
    return B / L


# ----------------------------------------------------------------------------- glyph images (exact information)
def _glyph_amplitude(noise_levels: int) -> int:
    return 255 - 3 * (noise_levels - 1)


def glyph_images(
    n: int,
    alphabet: int = 256,
    glyph: int = 8,
    grid: int = 8,
    noise_levels: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic images whose information content is known exactly (notebook multimodal-lossless-input).

    An image is a ``grid x grid`` arrangement of glyphs drawn i.i.d. uniformly from an alphabet of ``alphabet``
    distinct binary ``glyph x glyph`` patterns (themselves i.i.d. Bernoulli(1/2), redrawn until distinct), plus
    i.i.d. uniform integer noise in ``{0, ..., noise_levels-1}`` on every pixel. Pixel value
    ``= glyph * a + noise`` with ``a = 255 - 3 (noise_levels - 1)``. Because ``a >= noise_levels`` (checked), the
    two pixel ranges do not overlap, the map (glyph ids, noise) -> image is injective and the image entropy is
    exactly :func:`glyph_image_bits`.

    Returns ``(ids (n, grid, grid) int64, images (n, grid*glyph, grid*glyph) uint8, glyphs (alphabet, glyph, glyph)
    uint8 in {0, 1})``.
    """
    n = _check_pos_int(n, "n")
    A = _check_pos_int(alphabet, "alphabet")
    g = _check_pos_int(glyph, "glyph")
    G = _check_pos_int(grid, "grid")
    q = _check_pos_int(noise_levels, "noise_levels")
    amp = _glyph_amplitude(q)
    if amp < q:
        raise ValueError(
            f"noise_levels={q} is too large: the glyph amplitude 255 - 3(noise_levels - 1) = {amp} must be >= "
            f"noise_levels so that the image determines the glyphs (needs noise_levels <= 64)"
        )
    if g * g < 63 and A > 2 ** (g * g):
        raise ValueError(f"alphabet={A} exceeds the 2**(glyph**2) = {2 ** (g * g)} distinct binary glyphs")
    rng = np.random.default_rng(seed)
    glyphs = rng.integers(0, 2, size=(A, g, g), dtype=np.uint8)
    while True:  # redraw duplicates until the alphabet is distinct
        _, first = np.unique(glyphs.reshape(A, -1), axis=0, return_index=True)
        dup = np.setdiff1d(np.arange(A), first)
        if dup.size == 0:
            break
        glyphs[dup] = rng.integers(0, 2, size=(dup.size, g, g), dtype=np.uint8)
    ids = rng.integers(0, A, size=(n, G, G), dtype=np.int64)
    clean = glyphs[ids]  # (n, G, G, g, g)
    clean = clean.transpose(0, 1, 3, 2, 4).reshape(n, G * g, G * g)
    noise = rng.integers(0, q, size=clean.shape)
    images = (clean.astype(np.int64) * amp + noise).astype(np.uint8)
    return ids, images, glyphs


def glyph_image_bits(alphabet: int, glyph: int, grid: int, noise_levels: int) -> float:
    """Exact entropy in bits of one :func:`glyph_images` image: ``H = G^2 log2 A + (G g)^2 log2 q``.

    Derivation 4 of the notebook multimodal-lossless-input (article 9984): the image is an injective function of
    ``G^2`` independent uniform glyph choices and ``(Gg)^2`` independent uniform noise values.
    """
    A = _check_pos_int(alphabet, "alphabet")
    g = _check_pos_int(glyph, "glyph")
    G = _check_pos_int(grid, "grid")
    q = _check_pos_int(noise_levels, "noise_levels")
    return G * G * math.log2(A) + (G * g) ** 2 * math.log2(q)


# ----------------------------------------------------------------------------- periodic Gaussian fields
def _field_args(size: Any, alpha: Any, contrast: Any, f0: Any) -> tuple[int, float, float, float]:
    size = _check_pos_int(size, "size", minimum=2)
    alpha = _check_real(alpha, "alpha")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    contrast = _check_real(contrast, "contrast")
    if contrast <= 0:
        raise ValueError(f"contrast must be > 0, got {contrast}")
    f0 = 1.0 / size if f0 is None else _check_real(f0, "f0")
    if f0 <= 0:
        raise ValueError(f"f0 must be > 0, got {f0}")
    return size, alpha, contrast, f0


def gaussian_field_spectrum(size: int = 64, alpha: float = 2.0, contrast: float = 30.0,
                            f0: float | None = None) -> np.ndarray:
    """Eigenvalues ``lambda_k`` of the circulant covariance of the noiseless periodic field, shape ``(size, size)``.

    ``lambda_k = c S(|f_k|) `` with ``S(f) = (f^2 + f0^2)^(-alpha/2)``, ``f_k`` the 2-D FFT frequencies in cycles per
    pixel, and ``c`` chosen so that the per-pixel variance ``mean_k lambda_k`` equals ``contrast**2`` (notebook
    multimodal-lossless-input, derivation 3). ``f0`` defaults to ``1/size``.
    """
    size, alpha, contrast, f0 = _field_args(size, alpha, contrast, f0)
    f = np.fft.fftfreq(size)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    S = (f2 + f0 * f0) ** (-alpha / 2)
    return S * (contrast**2 / S.mean())


def gaussian_field(
    n_img: int,
    size: int = 64,
    alpha: float = 2.0,
    contrast: float = 30.0,
    noise: float = 1.0,
    f0: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``n_img`` samples of a periodic stationary Gaussian field plus white noise, float64 ``(n_img, size, size)``.

    Power spectrum ``(f^2 + f0^2)^(-alpha/2)`` scaled to per-pixel std ``contrast`` (see
    :func:`gaussian_field_spectrum`), plus i.i.d. N(0, noise^2), centred at 128 and not rounded. Generated by FFT
    filtering of white noise, so the covariance is exactly circulant, the condition of derivation 3 of the notebook
    multimodal-lossless-input (article 9984).
    """
    n_img = _check_pos_int(n_img, "n_img")
    lam = gaussian_field_spectrum(size, alpha, contrast, f0)
    noise = _check_real(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_img, size, size))
    x = np.fft.ifft2(np.fft.fft2(w) * np.sqrt(lam)).real
    return 128.0 + x + noise * rng.standard_normal((n_img, size, size))


def gaussian_field_bits(size: int, alpha: float, contrast: float, noise: float,
                        f0: float | None = None) -> float:
    """Closed-form entropy in bits per pixel of :func:`gaussian_field`: ``h = 1/2 mean_k log2(2 pi e (lambda_k +
    noise^2))``.

    This is the differential entropy of the field per pixel (derivation 3 of the notebook multimodal-lossless-input,
    article 9984); it approximates the discrete entropy of the field rounded to integers when the conditional std of
    a pixel given the others is at least about 1 (unit bins).
    """
    lam = gaussian_field_spectrum(size, alpha, contrast, f0)
    noise = _check_real(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return float(0.5 * np.mean(np.log2(2 * np.pi * np.e * (lam + noise * noise))))


# ----------------------------------------------------------------------------- a real lossless coder
def _integer_image(img: Any, name: str = "img") -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) image, got shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"{name} must not be empty")
    if img.dtype == np.bool_ or not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise TypeError(f"{name} must have an integer (or integer-valued float) dtype, got {img.dtype}")
    if np.issubdtype(img.dtype, np.floating):
        if not np.all(np.isfinite(img)):
            raise ValueError(f"{name} contains NaN or inf")
        if not np.array_equal(img, np.round(img)):
            raise ValueError(f"{name} must hold integers (round it first, e.g. np.rint)")
    return img.astype(np.int64)


def med_predict(img: np.ndarray) -> np.ndarray:
    """The MED (median edge detector) predictor of LOCO-I / JPEG-LS, with periodic borders (``np.roll``).

    With ``a`` = left, ``b`` = up, ``c`` = up-left neighbour: ``min(a, b)`` if ``c >= max(a, b)``, ``max(a, b)`` if
    ``c <= min(a, b)``, else ``a + b - c`` (notebook multimodal-lossless-input). Integer ``(H, W)`` in, int64 out.
    """
    x = _integer_image(img)
    a = np.roll(x, 1, axis=1)
    b = np.roll(x, 1, axis=0)
    c = np.roll(a, 1, axis=0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def med_code_length(img: np.ndarray) -> float:
    """Bits per pixel of a simple lossless coder: MED prediction, then the zeroth-order empirical entropy of the
    integer residuals (notebook multimodal-lossless-input, article 9984).

    A code length is an upper bound on the entropy of the source, up to the (small) cost of describing the residual
    histogram, which is not counted here.
    """
    x = _integer_image(img)
    r = (x - med_predict(x)).ravel()
    _, counts = np.unique(r, return_counts=True)
    p = counts / r.size
    return float(-(p * np.log2(p)).sum())
