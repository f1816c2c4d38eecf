"""Run-time environment of a notebook: quick/full mode, device, seeding, threads.

Every notebook calls :func:`setup` once, in its setup cell (the template checked by
``tests/test_notebooks.py``).

* **Quick mode** (default): CPU, small sizes, at most 20 s per notebook (median 10 s) on 2 cores.
  torch, and numpy's and scipy's BLAS, run on one thread. Measured on a 2-core build machine (300 Adam steps of the
  Fourier density model, n = 1000): a single fit took 0.47 s with 1 or 2 threads when the
  machine was idle, but with the other core busy a batch of 3 fits took 0.60 s with 1
  thread and 2.15 s with 2, and a batch of 5 fits at N = 40 took 2.3 s against 6.5 s. Only
  the largest batch gained from 2 threads on an idle machine (3.2 s against 4.2 s), so one
  thread is the robust default for these latency-bound models.
* **Full mode**: when CUDA is available or ``KEXUE_FULL=1`` (``KEXUE_FULL=0`` forces quick
  mode even on a GPU). Notebooks scale their sizes up with :attr:`Env.full`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

__all__ = ["Env", "full_mode", "pick_device", "device_name", "seed_everything", "static_site", "setup", "setup_time", "peak_gpu_mib"]

_SETUP_TIME: float | None = None


@dataclass(frozen=True)
class Env:
    """What a notebook needs to know about where it runs."""

    device: torch.device
    full: bool
    seed: int

    def size(self, quick: int, full: int) -> int:
        """``quick`` in quick mode, ``full`` in full mode."""
        return full if self.full else quick


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name} must be 0/1 (or unset), got {value!r}")


def full_mode() -> bool:
    """``KEXUE_FULL`` if set, else whether CUDA is available."""
    flag = _flag("KEXUE_FULL")
    return torch.cuda.is_available() if flag is None else flag


def static_site() -> bool:
    """True while the website is being built (the Makefile exports ``KEXUE_STATIC=1``)."""
    return bool(_flag("KEXUE_STATIC"))


def pick_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name() -> str:
    """The GPU's name under CUDA (e.g. "NVIDIA H200"), else "cpu"."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def peak_gpu_mib() -> float | None:
    """Peak GPU memory torch allocated in this process, in MiB (None without CUDA)."""
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def setup_time() -> float | None:
    """``time.perf_counter()`` when :func:`setup` last ran (None before): the claims JSON
    reports the seconds since then."""
    return _SETUP_TIME


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's legacy global RNG, torch (CPU and CUDA) and sympy's own RNG.

    sympy draws random numbers of its own (``sympy.core.random``), not from ``random``: Wang's multivariate
    factorisation behind ``sp.factor`` picks random evaluation points, and ``Expr.equals`` tests at random points.
    Unseeded, one ``sp.factor`` call in simvq-linear-codebook (since removed) took 0.05 s in most runs and over 20 s
    in 4 of 60 (one run over 9 minutes). Seeded, sympy's random draws repeat; which symbol gets which draw in
    ``Expr.equals`` still follows the process's string-hash seed (``PYTHONHASHSEED``, unset in Jupyter kernels).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)  # random.seed and sympy's refuse numpy integers
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    import sympy.core.random

    sympy.core.random.seed(seed)


def setup(seed: int = 0, verbose: bool = True) -> Env:
    """Seed every RNG, choose the device and the mode, and set the thread count."""
    global _SETUP_TIME
    _SETUP_TIME = time.perf_counter()
    seed_everything(seed)
    full = full_mode()
    if not full:
        torch.set_num_threads(1)
        # numpy's and scipy's BLAS too: on a busy 2-core machine their threads fight, and a loop of small
        # products ran 10-30 times slower (200 ssm.project calls: 23 s against 2.2 s with one thread).
        threadpool_limits(1)
        # threadpool_limits reaches only the libraries already loaded; scipy's own OpenBLAS (loaded by a later
        # `import scipy.optimize` or `scipy.linalg`) reads this variable when it loads, else it runs 2 spinning
        # threads (L-BFGS-B on 18 variables: 0.45 s against 0.17 s of CPU time per fit, n-m-class-cross-entropy).
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    env = Env(device=pick_device(), full=full, seed=seed)
    if verbose:
        mode = "full" if full else "quick"
        print(f"kexue_lite: {mode} mode on {env.device}, seed {seed}, torch {torch.__version__}")
    return env
