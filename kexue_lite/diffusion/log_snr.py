"""Log-SNR schedules for high resolution: Simple diffusion's cosine log-SNR, its shift by ``2 ln(base / d)`` and the
interpolated schedule; VP coefficients from a log-SNR, and the VP schedule of an image ``s`` times larger.

Serves notebook snr-high-resolution (kexue.fm/archives/10047; Hoogeboom, Heek & Salimans, Simple diffusion,
arXiv:2301.11093). ``log_snr = ln(alpha^2 / beta^2)``; VP means ``alpha^2 + beta^2 = 1``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._helpers import _positive, _real

__all__ = ["logsnr_cosine", "logsnr_shifted", "logsnr_interpolated", "alpha_beta_from_logsnr", "shift_vp"]


def _times(t: object):
    """``t`` as a float, a float64 numpy array or a real tensor (graph kept), checked to lie in ``[0, 1]``."""
    if isinstance(t, torch.Tensor):
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be a real tensor, got dtype {t.dtype}")
        bad = bool((torch.isnan(t) | (t < 0) | (t > 1)).any())
    elif isinstance(t, (bool, np.bool_)):
        raise TypeError(f"t must be a float, a numpy array or a torch tensor, got {t!r}")
    elif isinstance(t, (int, float, np.integer, np.floating)):
        t = float(t)
        bad = not 0 <= t <= 1
    else:
        try:
            arr = np.asarray(t)
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"t must be a float, a numpy array or a torch tensor, got {type(t).__name__}") from err
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"t must be real numbers, got dtype {arr.dtype}")
        t = arr.astype(np.float64)
        bad = bool((np.isnan(t) | (t < 0) | (t > 1)).any())
    if bad:
        raise ValueError("t must lie in [0, 1]")
    return t


def logsnr_cosine(t, logsnr_min: float = -15.0, logsnr_max: float = 15.0):
    """Simple diffusion's clipped cosine log-SNR ``-2 ln tan(t_min + t (t_max - t_min))``, from ``logsnr_max`` at
    ``t = 0`` to ``logsnr_min`` at ``t = 1`` (unclipped, it is ``-2 ln tan(pi t / 2)``, the cosine VP schedule).
    ``t`` must lie in ``[0, 1]``."""
    logsnr_min, logsnr_max = _real("logsnr_min", logsnr_min), _real("logsnr_max", logsnr_max)
    if not logsnr_min < logsnr_max:
        raise ValueError(f"need logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}")
    t = _times(t)
    lib = torch if isinstance(t, torch.Tensor) else np
    t_min, t_max = math.atan(math.exp(-logsnr_max / 2)), math.atan(math.exp(-logsnr_min / 2))
    return -2 * lib.log(lib.tan(t_min + t * (t_max - t_min)))


def _resolution(name: str, v: object) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive number of pixels, got {v!r}")
    return _positive(name, v)


def logsnr_shifted(t, image_d: int, base_d: int = 64, **kwargs):
    """The cosine log-SNR shifted for resolution ``image_d``: ``logsnr_cosine(t) + 2 ln(base_d / image_d)``."""
    image_d, base_d = _resolution("image_d", image_d), _resolution("base_d", base_d)
    return logsnr_cosine(t, **kwargs) + 2 * math.log(base_d / image_d)


def logsnr_interpolated(t, image_d: int, d_low: int = 32, d_high: int = 256):
    """Simple diffusion's interpolated schedule ``t * shift(d_low) + (1 - t) * shift(d_high)``."""
    _resolution("d_low", d_low), _resolution("d_high", d_high)
    t = _times(t)
    return t * logsnr_shifted(t, image_d, d_low) + (1 - t) * logsnr_shifted(t, image_d, d_high)


def alpha_beta_from_logsnr(lam):
    """VP ``(alpha, beta) = (sqrt(sigmoid(lam)), sqrt(sigmoid(-lam)))``; ``lam = +-inf`` gives the limits ``(1, 0)``
    and ``(0, 1)``, ``nan`` is refused."""
    if isinstance(lam, torch.Tensor):
        if lam.is_complex() or lam.dtype == torch.bool:
            raise TypeError(f"lam must be a real tensor, got dtype {lam.dtype}")
        if not lam.is_floating_point():
            lam = lam.to(torch.float64)
        if bool(torch.isnan(lam).any()):
            raise ValueError("lam must not be nan")
        return torch.sqrt(torch.sigmoid(lam)), torch.sqrt(torch.sigmoid(-lam))
    if isinstance(lam, (bool, np.bool_)) or (isinstance(lam, np.ndarray) and lam.dtype.kind not in "iuf"):
        raise TypeError(f"lam must be real numbers, got {lam!r}")
    lam = np.asarray(lam, dtype=float)
    if np.isnan(lam).any():
        raise ValueError("lam must not be nan")
    with np.errstate(over="ignore"):  # exp(+-large) = inf gives the exact limits 0 and 1
        return np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def shift_vp(alpha_lo, beta_lo, s: float):
    """The VP schedule for an image ``s`` times larger per side: ``SNR_hi * s^2 = SNR_lo`` with ``alpha^2 + beta^2 = 1``.

    ``alpha_hi^2 = SNR_lo / (SNR_lo + s^2)``, i.e. the log-SNR shifted by ``-2 ln s``. ``alpha_lo`` and ``beta_lo``
    must be finite, non-negative and not both zero (their ratio is the SNR).
    """
    s = _positive("s", s)
    a, b = np.asarray(alpha_lo, dtype=float), np.asarray(beta_lo, dtype=float)
    for name, v in (("alpha_lo", a), ("beta_lo", b)):
        if not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(f"{name} must be finite and non-negative")
    if ((a == 0) & (b == 0)).any():
        raise ValueError("alpha_lo and beta_lo must not both be 0 (the SNR is 0/0)")
    a2 = a**2 / (a**2 + s**2 * b**2)  # = SNR_lo / (SNR_lo + s^2), also at beta_lo = 0
    return np.sqrt(a2), np.sqrt(1 - a2)
