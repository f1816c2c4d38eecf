"""One plain SGD step on a factored codebook ``E = Q W`` (SimVQ), for notebook simvq-linear-codebook (article 10519,
kexue.fm/archives/10519; Zhu et al., "Addressing Representation Collapse in Vector Quantized Models with One Linear
Layer", arXiv:2411.02038).

Convention (the article's): row vectors. ``Q`` is ``(K, d_q)`` (one latent code per row), ``W`` is ``(d_q, d)`` and the
effective codebook is ``E = Q @ W`` (``(K, d)``, code ``e_i = q_i W``). ``G = dL/dE`` is ``(K, d)``; by the chain rule
``dL/dQ = G W^T`` and ``dL/dW = Q^T G``. (``torch.nn.Linear`` stores the transpose: ``e = q A^T + b``, ``W = A^T``.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = ["sgd_step_factored"]


def _check_matrix(x: object, name: str) -> None:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(x.shape)}")
    if 0 in tuple(x.shape):
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise TypeError(f"{name} must hold floats (float32 or float64), got {x.dtype}")
        finite = bool(torch.isfinite(x).all())
    else:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must hold floats (float32 or float64), got {x.dtype}")
        finite = bool(np.isfinite(x).all())
    if not finite:
        raise ValueError(f"{name} must be finite (no NaN or inf)")


def sgd_step_factored(Q: Array, W: Array, G: Array, eta: float, freeze_Q: bool = False) -> tuple[Array, Array]:
    """One SGD step on the factors of ``E = Q W`` given ``G = dL/dE`` (article 10519, the update equations of its
    section 分析; notebook simvq-linear-codebook).

    ``Q_new = Q - eta G W^T`` (``Q`` unchanged if ``freeze_Q``, SimVQ's default) and ``W_new = W - eta Q^T G``, both
    computed from the *old* factors. The new codebook is then exactly
    ``Q_new W_new = E - eta (G W^T W + Q Q^T G) + eta^2 G W^T Q^T G`` (``E - eta Q Q^T G`` when ``Q`` is frozen);
    the article keeps the first-order part.

    Args:
        Q: ``(K, d_q)`` float matrix of latent codes.
        W: ``(d_q, d)`` float matrix, the shared linear map.
        G: ``(K, d)`` float matrix, the gradient of the loss with respect to the effective codebook ``E = Q W``.
        eta: learning rate, finite and ``>= 0``.
        freeze_Q: if True, ``Q`` is not updated (SimVQ's default).

    Returns:
        ``(Q_new, W_new)``, of the type (numpy or torch) and dtype of the inputs; the inputs are not modified.

    Raises:
        TypeError: a non-array argument, integer arrays, mixed numpy/torch or mixed dtypes, a non-real ``eta``.
        ValueError: non-2-D, empty or non-finite matrices, mismatched shapes, ``eta`` negative or not finite.
    """
    for x, name in ((Q, "Q"), (W, "W"), (G, "G")):
        _check_matrix(x, name)
    kinds = {isinstance(x, torch.Tensor) for x in (Q, W, G)}
    if len(kinds) != 1:
        raise TypeError("Q, W and G must all be numpy arrays or all torch tensors")
    if len({x.dtype for x in (Q, W, G)}) != 1:
        raise TypeError(f"Q, W and G must share one dtype, got {Q.dtype}, {W.dtype}, {G.dtype}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.floating, np.integer)):
        raise TypeError(f"eta must be a real number, got {type(eta).__name__}")
    if not math.isfinite(float(eta)) or eta < 0:
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    if not isinstance(freeze_Q, (bool, np.bool_)):
        raise TypeError(f"freeze_Q must be a bool, got {type(freeze_Q).__name__}")
    K, d_q = Q.shape
    if W.shape[0] != d_q:
        raise ValueError(f"W must have d_q = Q.shape[1] = {d_q} rows, got shape {tuple(W.shape)}")
    d = W.shape[1]
    if tuple(G.shape) != (K, d):
        raise ValueError(f"G must have the shape of E = Q W, ({K}, {d}), got {tuple(G.shape)}")
    if isinstance(Q, torch.Tensor) and len({str(x.device) for x in (Q, W, G)}) != 1:
        raise ValueError("Q, W and G must be on one device")
    eta = float(eta)
    W_new = W - eta * (Q.T @ G)
    Q_new = Q.copy() if isinstance(Q, np.ndarray) else Q.clone()
    if not freeze_Q:
        Q_new = Q - eta * (G @ W.T)
    return Q_new, W_new
