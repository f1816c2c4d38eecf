"""Private helpers shared by the modules of :mod:`kexue_lite.diffusion`: seeded float64 draws, numpy copies and the
argument checks behind the package's rule that bad input raises ``ValueError``/``TypeError`` naming the argument."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__: list[str] = []


def _randn(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 standard normals drawn on the generator's device (``device`` without one), returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device=where).to(device)


def _rand(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 uniforms on [0, 1), drawn like :func:`_randn`."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=where).to(device)


def _numpy(v) -> np.ndarray:
    """float64 numpy copy of an array or a tensor on any device."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


# ------------------------------------------------------------------------------ argument checks
def _real(name: str, v: object) -> float:
    """``v`` as a finite Python float: a real number, or a one-element numpy array or tensor; never a bool."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    if isinstance(v, torch.Tensor):
        if v.numel() != 1 or v.is_complex() or v.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number, got a tensor of shape {tuple(v.shape)} and dtype {v.dtype}")
        if v.requires_grad:
            raise TypeError(f"{name} must be a plain number: a tensor that requires grad would be detached here")
        v = float(v)
    elif isinstance(v, np.ndarray):
        if v.size != 1 or v.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number, got an array of shape {v.shape} and dtype {v.dtype}")
        v = float(v.reshape(()))
    elif not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _positive(name: str, v: object) -> float:
    """A finite real ``> 0``."""
    v = _real(name, v)
    if not v > 0:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


def _int(name: str, v: object, minimum: int = 1) -> int:
    """An integer (not a bool) ``>= minimum``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {v!r}")
    return int(v)


def _check_steps(n_steps: object, name: str = "n_steps") -> int:
    """A positive number of steps."""
    return _int(name, n_steps)


def _samples(name: str, x: object) -> torch.Tensor:
    """A non-empty ``(n, d)`` tensor of finite values (integer tensors become float64)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) tensor, got shape {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no nan or inf)")
    return x


def _tensor(name: str, x: object) -> torch.Tensor:
    """A real tensor (integer tensors become float64), of any shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {x.dtype}")
    return x if x.is_floating_point() else x.to(torch.float64)


def _callable(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")


def _samples_1d(name: str, samples: object) -> np.ndarray:
    """Sorted float64 copy of 1-D samples given as ``(n,)`` or ``(n, 1)``: non-empty and finite."""
    s = _numpy(samples)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, shape (n,) or (n, 1), got {s.shape}")
    if s.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite (no nan or inf)")
    return np.sort(s)


def _trainer_args(batch: object, lr: object) -> tuple[int, float]:
    """The batch size (a positive integer) and the learning rate (a finite positive number) of a trainer."""
    return _int("batch", batch), _positive("lr", lr)


def _seeded_generator(seed: int) -> torch.Generator:
    """Seed torch's global generator (the nets' initialisation) and return a CPU generator for the batches, both from
    ``seed``: what every trainer of this package does first."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _batch_of(name: str, v: object, batch: int, dim: int) -> torch.Tensor:
    """One batch from a sampler: a finite ``(batch, dim)`` tensor (integer tensors become float64)."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must return torch tensors, got {type(v).__name__}")
    if tuple(v.shape) != (batch, dim):
        raise ValueError(f"{name} must return tensors of shape ({batch}, {dim}), got {tuple(v.shape)}")
    return _samples(f"the batch from {name}", v)
