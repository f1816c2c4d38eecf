"""The vector-quantiser module of the toy VQ autoencoder, in four modes.

* ``'ste'``  — plain VQ-VAE: trainable codebook ``C`` (K, d), straight-through estimator
  (article 10489, notebook vq-rotation-trick).
* ``'rot'``  — same codebook, rotation trick (:func:`~kexue_lite.vq.quantize.rotate_to`; Fifty et al.,
  arXiv:2410.06424).
* ``'simvq'`` — SimVQ (Zhu et al., arXiv:2411.02038; article 10519, notebook simvq-linear-codebook):
  frozen random codes ``E`` (buffer), effective codebook ``E W^T + b`` with ``W = nn.Linear(d, d)``
  (PyTorch's row convention ``e = q W^T``; the article writes ``e = q W``, i.e. ``W_article = W^T``).
* ``'simvq_diag'`` — frozen ``E``, trainable vector ``w`` (ones), effective codebook ``E * w``.

The two auxiliary losses are returned unweighted, in the article's naming (10489):
``codebook = mean (q - sg[z])^2`` (weight ``beta``) and ``commit = mean (z - sg[q])^2`` (weight
``gamma``). NB the VQ-VAE paper calls the commitment weight "beta = 0.25"; here ``beta`` weighs the
codebook term and ``gamma = 0.25`` the commitment term.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .quantize import kmeans, nearest_code, rotate_to, ste

__all__ = ["VectorQuantizer", "VQ_MODES", "VQ_INITS"]

VQ_MODES = ("ste", "rot", "simvq", "simvq_diag")
VQ_INITS = ("randn", "kmeans")
ROT_VARIANTS = ("full", "rescale_only", "rotation_only")


def _pos_int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if x < 1:
        raise ValueError(f"{name} must be at least 1, got {x}")
    return x


def _nonneg_float(x: object, name: str, positive: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'} and finite, got {x}")
    return float(x)


class VectorQuantizer(nn.Module):
    """Nearest-code quantiser with STE / rotation-trick / SimVQ / diagonal-SimVQ codebooks.

    Args:
        K: number of codes.
        d: code dimension.
        mode: one of ``'ste'``, ``'rot'``, ``'simvq'``, ``'simvq_diag'``.
        init: ``'randn'`` (codes ``N(0, init_std^2)``) or ``'kmeans'`` (``N(0, init_std^2)`` until
            :meth:`init_kmeans` is called with a sample of encoder outputs).
        init_std: standard deviation of the initial (or frozen) codes.
        beta: weight of the codebook loss (stored; applied by the caller, see :meth:`weighted`).
        gamma: weight of the commitment loss.
        linear_init: ``'identity'`` (``W = I``, ``b = 0``) or ``'default'`` (``nn.Linear``'s own init, as
            in the SimVQ code); ``'simvq'`` only.
        linear_bias: whether ``nn.Linear`` has a bias (the official SimVQ code: ``True``); ``'simvq'`` only.
        rot_variant: ``'rot'`` only, an ablation of the rotation trick (notebook vq-rotation-trick):
            ``'full'`` (default, ``(|q|/|z|) R``), ``'rescale_only'`` (``(|q|/|z|) I``) or
            ``'rotation_only'`` (``R``); see :func:`~kexue_lite.vq.quantize.rotate_to`.
    """

    def __init__(
        self,
        K: int,
        d: int,
        mode: str = "ste",
        init: str = "randn",
        init_std: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.25,
        linear_init: str = "identity",
        linear_bias: bool = False,
        rot_variant: str = "full",
    ) -> None:
        super().__init__()
        self.K = _pos_int(K, "K")
        self.d = _pos_int(d, "d")
        if mode not in VQ_MODES:
            raise ValueError(f"mode must be one of {VQ_MODES}, got {mode!r}")
        if init not in VQ_INITS:
            raise ValueError(f"init must be one of {VQ_INITS}, got {init!r}")
        if linear_init not in ("identity", "default"):
            raise ValueError(f"linear_init must be 'identity' or 'default', got {linear_init!r}")
        if not isinstance(linear_bias, bool):
            raise TypeError(f"linear_bias must be a bool, got {type(linear_bias).__name__}")
        if rot_variant not in ROT_VARIANTS:
            raise ValueError(f"rot_variant must be one of {ROT_VARIANTS}, got {rot_variant!r}")
        if rot_variant != "full" and mode != "rot":
            raise ValueError(f"rot_variant={rot_variant!r} needs mode='rot', got mode={mode!r}")
        self.rot_variant = rot_variant
        self.mode, self.init = mode, init
        self.init_std = _nonneg_float(init_std, "init_std", positive=True)
        self.beta = _nonneg_float(beta, "beta")
        self.gamma = _nonneg_float(gamma, "gamma")
        codes = torch.randn(K, d) * self.init_std
        if mode in ("ste", "rot"):
            self.embed = nn.Parameter(codes)
        else:
            self.register_buffer("E", codes)
            if mode == "simvq":
                self.linear = nn.Linear(d, d, bias=linear_bias)
                if linear_init == "identity":
                    with torch.no_grad():
                        self.linear.weight.copy_(torch.eye(d))
                        if self.linear.bias is not None:
                            self.linear.bias.zero_()
            else:
                self.w = nn.Parameter(torch.ones(d))

    # ------------------------------------------------------------------ codebook
    def codebook(self) -> torch.Tensor:
        """The effective codebook ``(K, d)`` (differentiable in the trainable parameters)."""
        if self.mode in ("ste", "rot"):
            return self.embed
        if self.mode == "simvq":
            return self.linear(self.E)
        return self.E * self.w

    @torch.no_grad()
    def init_kmeans(self, z_sample: torch.Tensor, iters: int = 20, seed: int = 0) -> None:
        """Set the codes to the k-means centroids of ``z_sample`` (``(N, d)``, ``N >= K``).

        For ``'simvq'``/``'simvq_diag'`` the frozen codes ``E`` become the centroids and the map is
        reset to the identity (``W = I``, ``b = 0``, ``w = 1``), so the effective codebook is the centroids.
        """
        if not isinstance(z_sample, torch.Tensor):
            raise TypeError(f"z_sample must be a torch.Tensor, got {type(z_sample).__name__}")
        if z_sample.ndim != 2 or z_sample.shape[1] != self.d:
            raise ValueError(f"z_sample must have shape (N, {self.d}), got {tuple(z_sample.shape)}")
        cent, _ = kmeans(z_sample.detach().float(), self.K, iters=iters, seed=seed)
        if self.mode in ("ste", "rot"):
            self.embed.copy_(cent.to(self.embed))
        else:
            self.E.copy_(cent.to(self.E))
            if self.mode == "simvq":
                self.linear.weight.copy_(torch.eye(self.d))
                if self.linear.bias is not None:
                    self.linear.bias.zero_()
            else:
                self.w.fill_(1.0)

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise ``z`` ``(B, d)``.

        Returns:
            ``(z_q, idx, {'codebook': ..., 'commit': ...})``: ``z_q`` has forward value exactly the
            selected codes; its gradient to ``z`` is the identity (STE, SimVQ modes) or the rotation
            trick's ``(|q|/|z|) R^T g`` (``'rot'``). The losses are unweighted means over all entries.
        """
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z must have shape (B, {self.d}), got {tuple(z.shape)}")
        C = self.codebook()
        idx = nearest_code(z.detach(), C.detach().to(z.dtype))
        q = C[idx].to(z.dtype)
        losses = {
            "codebook": (q - z.detach()).square().mean(),
            "commit": (z - q.detach()).square().mean(),
        }
        if self.mode == "rot":
            z_q = rotate_to(z, q, rotate=self.rot_variant != "rescale_only", rescale=self.rot_variant != "rotation_only")
        else:
            z_q = ste(z, q)
        return z_q, idx, losses

    def weighted(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``beta * codebook + gamma * commit`` (the article's naming, 10489)."""
        return self.beta * losses["codebook"] + self.gamma * losses["commit"]

    def extra_repr(self) -> str:
        return f"K={self.K}, d={self.d}, mode={self.mode!r}, init={self.init!r}, init_std={self.init_std}"
