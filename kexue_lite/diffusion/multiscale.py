"""Images at several scales: a deterministic test image, ``s x s`` average pooling and Simple diffusion's multi-scale
loss ``L_s = mean((pool_s(eps) - pool_s(eps_hat))^2)``.

Serves notebook snr-high-resolution (kexue.fm/archives/10047; Hoogeboom, Heek & Salimans, arXiv:2301.11093).
"""

from __future__ import annotations

import numpy as np
import torch

from ._helpers import Array, _int

__all__ = ["synthetic_image", "avg_pool", "multiscale_mse"]


def synthetic_image(size: int = 512, seed: int = 0) -> np.ndarray:
    """A deterministic test image in [-1, 1]: a smooth background of non-commensurate sinusoids, 12 discs and a fine
    +-0.1 texture (so pooling removes detail), of shape ``(size, size)``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.4 * np.sin(2 * np.pi * (1.3 * x + 0.7 * y)) + 0.3 * np.cos(2 * np.pi * (2.1 * x - 1.7 * y) + 0.5)
    for _ in range(12):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.12)
        img = np.where((x - cx) ** 2 + (y - cy) ** 2 < r**2, rng.uniform(-0.9, 0.9), img)
    img = img + 0.1 * np.sign(rng.normal(size=(size, size)))
    return np.clip(img, -1, 1)


def _image(name: str, x: object) -> Array:
    """A real numpy array or tensor with at least two axes (integer and bool images become float64)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must be real, got dtype {x.dtype}")
        if not x.is_floating_point():
            x = x.to(torch.float64)
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be real, got dtype {x.dtype}")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least two (image) axes, got shape {tuple(x.shape)}")
    return x


def avg_pool(x: Array, s: int) -> Array:
    """``s x s`` average pooling over the last two axes (numpy or torch; integer images are pooled in float64)."""
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise ValueError(f"s must be a positive integer, got {s!r}")
    x = _image("x", x)
    h, w = x.shape[-2:]
    if h % s or w % s:
        raise ValueError(f"the image size {h}x{w} is not divisible by s = {s}")
    shape = (*x.shape[:-2], h // s, s, w // s, s)
    return x.reshape(shape).mean(axis=(-3, -1)) if isinstance(x, np.ndarray) else x.reshape(shape).mean(dim=(-3, -1))


def multiscale_mse(eps: Array, eps_hat: Array, scales=(1, 2, 4, 8)) -> dict[int, float]:
    """Simple diffusion's multi-scale loss: ``L_s = mean((pool_s(eps) - pool_s(eps_hat))^2)`` for each scale."""
    eps, eps_hat = _image("eps", eps), _image("eps_hat", eps_hat)
    if type(eps) is not type(eps_hat):
        raise TypeError(f"eps and eps_hat must both be numpy arrays or both tensors, got {type(eps).__name__} and "
                        f"{type(eps_hat).__name__}")
    if tuple(eps.shape) != tuple(eps_hat.shape):
        raise ValueError(f"eps and eps_hat must have the same shape, got {tuple(eps.shape)} and {tuple(eps_hat.shape)}")
    if 0 in tuple(eps.shape):
        raise ValueError(f"eps must not be empty, got shape {tuple(eps.shape)}")
    scales = tuple(scales)
    if not scales:
        raise ValueError("scales must not be empty")
    for s in scales:
        _int("every scale in scales", s)
    diff = eps - eps_hat
    finite = np.isfinite(diff).all() if isinstance(diff, np.ndarray) else bool(torch.isfinite(diff).all())
    if not finite:
        raise ValueError("eps and eps_hat must be finite (no nan or inf)")
    return {int(s): float((avg_pool(diff, s) ** 2).mean()) for s in scales}
