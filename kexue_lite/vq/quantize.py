"""Vector quantisation primitives: the nearest-code lookup, the straight-through estimator (STE), the
rotation trick, k-means and codebook-usage statistics.

Serves notebook ``vq-rotation-trick`` (kexue.fm/archives/10489; Fifty et al., "Restructuring Vector
Quantization with the Rotation Trick", arXiv:2410.06424) and is reused by ``simvq-linear-codebook``
(10519) and ``multimodal-lossless-input`` (9984, :func:`kmeans`).

Conventions
-----------
* Vectors are **rows**: a batch of encoder outputs is ``z`` of shape ``(B, d)``, a codebook ``C`` is
  ``(K, d)``. In the derivations of the notebook (column vectors) the rotation trick's Jacobian is
  ``G = (|q|/|z|) R`` and the encoder gradient is ``G^T g``; autograd produces the transpose by itself.
* The forward value of :func:`ste` and :func:`rotate_to` is **exactly** ``q`` (bit for bit): both are
  written as ``sg[q] + (h(z) - sg[h(z)])``, which is algebraically the article's
  ``z_q = sg[G] z + sg[q - G z]`` but avoids the rounding of ``z + (q - z)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "nearest_code",
    "ste",
    "rotation_matrix",
    "rotate_to",
    "kmeans",
    "codebook_usage",
]


# ----------------------------------------------------------------------------- checks
def _check_float_tensor(x: object, name: str, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_int(k: object, name: str, minimum: int = 1) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if k < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {k}")
    return int(k)


# ----------------------------------------------------------------------------- lookup
def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (squared Euclidean distance) for every row of ``z``.

    ``argmin_k |z_b - c_k|^2`` computed from ``|z|^2 - 2 z C^T + |C|^2`` (the row constant ``|z|^2`` dropped) (the VQ-VAE lookup, eq. of the
    quantiser in notebook vq-rotation-trick, article 10489). Ties go to the smallest index.

    Args:
        z: ``(B, d)`` floating tensor of encoder outputs.
        codebook: ``(K, d)`` floating tensor, same dtype and device as ``z``.

    Returns:
        ``(B,)`` int64 tensor of code indices.
    """
    _check_float_tensor(z, "z", 2)
    _check_float_tensor(codebook, "codebook", 2)
    if z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"z and codebook must have the same last dimension, got z {tuple(z.shape)} "
            f"and codebook {tuple(codebook.shape)}"
        )
    if z.dtype != codebook.dtype:
        raise TypeError(f"z ({z.dtype}) and codebook ({codebook.dtype}) must have the same dtype")
    with torch.no_grad():
        # |z|^2 is the same for every code of a row, so it cannot change the argmin: drop it
        d2 = torch.addmm((codebook * codebook).sum(1)[None, :], z, codebook.T, alpha=-2.0)
        return d2.argmin(dim=1)


def _check_pair(z: torch.Tensor, q: torch.Tensor) -> None:
    _check_float_tensor(z, "z")
    _check_float_tensor(q, "q")
    if z.shape != q.shape:
        raise ValueError(f"z and q must have the same shape, got {tuple(z.shape)} and {tuple(q.shape)}")
    if z.dtype != q.dtype:
        raise TypeError(f"z ({z.dtype}) and q ({q.dtype}) must have the same dtype")


def ste(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The straight-through estimator ``z_q = z + sg[q - z]`` (article 10489, first equation).

    Forward value: exactly ``q``. Gradient: ``dL/dz = dL/dz_q`` (Jacobian ``I``); ``q`` receives no
    gradient through this path. Implemented as ``sg[q] + (z - sg[z])`` (identical gradient, exact value).
    """
    _check_pair(z, q)
    return q.detach() + (z - z.detach())


# ----------------------------------------------------------------------------- rotation
def rotation_matrix(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The explicit minimal rotation ``R`` with ``R z^ = q^`` (column-vector convention).

    ``R = I + 2 q^ z^T - (q^ + z^)(q^ + z^)^T / (1 + cos(theta))`` (article 10489; Fifty et al. 2024,
    eq. 4). It is the identity on the orthogonal complement of ``span{z, q}`` and rotates that plane
    by ``theta``.

    Args:
        z, q: ``(d,)`` floating tensors (same dtype), both non-zero and not antiparallel.

    Raises:
        ValueError: a zero norm, or ``1 + cos(theta) < 1e-12`` (antiparallel: ``R`` is undefined).
    """
    _check_pair(z, q)
    if z.ndim != 1:
        raise ValueError(f"z and q must be 1-D vectors, got shape {tuple(z.shape)}")
    zn, qn = z.norm(), q.norm()
    if zn.item() == 0.0:
        raise ValueError("z must be non-zero")
    if qn.item() == 0.0:
        raise ValueError("q must be non-zero")
    zh, qh = z / zn, q / qn
    one_plus_cos = 1.0 + (zh @ qh)
    if one_plus_cos.item() < 1e-12:
        raise ValueError("z and q are antiparallel (1 + cos(theta) < 1e-12): the rotation is undefined")
    s = zh + qh
    eye = torch.eye(z.shape[0], dtype=z.dtype, device=z.device)
    return eye + 2.0 * torch.outer(qh, zh) - torch.outer(s, s) / one_plus_cos


def rotate_to(
    z: torch.Tensor, q: torch.Tensor, eps: float = 1e-6, *, rotate: bool = True, rescale: bool = True
) -> torch.Tensor:
    """The rotation trick: forward value ``q``, encoder gradient ``(|q|/|z|) R^T g``.

    Computes ``G z`` with ``G = (|q|/|z|) (I - 2 w w^T + 2 q^ z^T)``, ``w = (z^ + q^)/|z^ + q^|``
    (the "efficient rotation" of the official code, ``2 w w^T = (q^+z^)(q^+z^)^T/(1+cos)``), with
    ``z^``, ``q^``, ``w`` and the scale **detached**, and returns ``sg[q] + (G z - sg[G z])``.
    The Jacobian of the output with respect to ``z`` is therefore the constant ``G``, and the
    codebook gets no gradient from this path (as with the STE).

    Degenerate rows (documented deviation from the official code, which divides 0 by 0):

    * ``1 + cos(theta) < eps`` (antiparallel): ``G`` falls back to ``(|q|/|z|) H`` with ``H`` the
      Householder reflection ``I - 2 u u^T``, ``u = (z^ - q^)/|z^ - q^|``: still orthogonal and still
      maps ``z^`` to ``q^``, so the norm statement ``|grad_z| = |q|/|z| |g|`` stays exact.
    * norms are clamped below at ``eps`` (a zero code gives a zero gradient, a zero ``z`` a large one).

    Args:
        z: ``(..., d)`` floating tensor (encoder outputs, carries the gradient).
        q: same shape and dtype (selected codes).
        eps: positive threshold, default ``1e-6`` as in the official code.
        rotate: keyword-only ablation switch (default ``True``). ``False`` drops the rotation: the
            Jacobian becomes ``(|q|/|z|) I`` ("rescaling only", the STE times ``|q|/|z|``).
        rescale: keyword-only ablation switch (default ``True``). ``False`` forces the factor to 1: the
            Jacobian becomes ``R`` ("rotation only"). With both ``False`` the gradient is the STE's.
            The forward value is exactly ``q`` in every case.
    """
    _check_pair(z, q)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite float, got {eps!r}")
    if not isinstance(rotate, bool):
        raise TypeError(f"rotate must be a bool, got {type(rotate).__name__}")
    if not isinstance(rescale, bool):
        raise TypeError(f"rescale must be a bool, got {type(rescale).__name__}")
    if not rotate:
        with torch.no_grad():
            factor = (
                q.norm(dim=-1, keepdim=True).clamp_min(eps) / z.norm(dim=-1, keepdim=True).clamp_min(eps)
                if rescale
                else torch.ones_like(z[..., :1])
            )
        scaled = factor * z
        return q.detach() + (scaled - scaled.detach())
    with torch.no_grad():
        zn = z.norm(dim=-1, keepdim=True).clamp_min(eps)
        qn = q.norm(dim=-1, keepdim=True).clamp_min(eps)
        zh, qh = z / zn, q / qn
        v = zh + qh
        vn2 = (v * v).sum(-1, keepdim=True)
        anti = vn2 < 2.0 * eps  # |z^+q^|^2 = 2(1+cos)
        scale = qn / zn if rescale else torch.ones_like(qn)
        has_anti = bool(anti.any())
        if has_anti:
            w = torch.where(anti, torch.zeros_like(v), v / vn2.sqrt().clamp_min(eps))
            dz = zh - qh
            u = torch.where(anti, dz / dz.norm(dim=-1, keepdim=True).clamp_min(eps), torch.zeros_like(dz))
            qh = qh * (~anti).to(z.dtype)
        else:
            w = v * vn2.rsqrt()
    gz = z - 2.0 * w * (z * w).sum(-1, keepdim=True) + 2.0 * qh * (z * zh).sum(-1, keepdim=True)
    if has_anti:
        gz = gz - 2.0 * u * (z * u).sum(-1, keepdim=True)
    rotated = scale * gz
    return q.detach() + (rotated - rotated.detach())


# ----------------------------------------------------------------------------- k-means
def kmeans(x: np.ndarray | torch.Tensor, K: int, iters: int = 20, seed: int = 0):
    """Lloyd's k-means with k-means++ initialisation (Arthur & Vassilvitskii 2007).

    Used to initialise codebooks (notebook vq-rotation-trick, article 10489) and as the glyph
    tokenizer of notebook multimodal-lossless-input (article 9984). Empty clusters keep their
    previous centroid. Deterministic for a given ``seed``.

    Args:
        x: ``(N, d)`` float array (numpy or torch, any device); float32 and float64 kept.
        K: number of centroids, ``1 <= K <= N``.
        iters: Lloyd iterations (``>= 0``).
        seed: seed of the k-means++ sampling.

    Returns:
        ``(centroids (K, d), assign (N,))`` of the same array type as ``x`` (numpy -> numpy int64,
        torch -> torch int64 on ``x``'s device); ``assign`` is the nearest centroid of each row.
    """
    is_np = isinstance(x, np.ndarray)
    if is_np:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}")
        xt = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        xt = x.detach()
    else:
        raise TypeError(f"x must be a numpy array or torch.Tensor, got {type(x).__name__}")
    _check_float_tensor(xt, "x", 2)
    K = _check_int(K, "K", 1)
    iters = _check_int(iters, "iters", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    n = xt.shape[0]
    if K > n:
        raise ValueError(f"K must be at most len(x) = {n}, got {K}")

    gen = torch.Generator().manual_seed(int(seed))
    xc = xt.cpu()
    # k-means++: first centre uniform, then D^2 sampling.
    idx = [int(torch.randint(n, (1,), generator=gen).item())]
    d2 = ((xc - xc[idx[0]]) ** 2).sum(1).double()
    for _ in range(1, K):
        total = d2.sum().item()
        if total <= 0.0:  # all remaining points coincide with a centre: pick any unused one
            used = set(idx)
            nxt = next(i for i in range(n) if i not in used)
        else:
            nxt = int(torch.multinomial(d2 / total, 1, generator=gen).item())
        idx.append(nxt)
        d2 = torch.minimum(d2, ((xc - xc[nxt]) ** 2).sum(1).double())
    cent = xt[torch.tensor(idx, device=xt.device)].clone()

    assign = nearest_code(xt, cent)
    for _ in range(iters):
        sums = torch.zeros_like(cent).index_add_(0, assign, xt)
        counts = torch.bincount(assign, minlength=K).to(xt.dtype)
        nonempty = counts > 0
        cent = torch.where(nonempty[:, None], sums / counts.clamp_min(1)[:, None], cent)
        new_assign = nearest_code(xt, cent)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    if is_np:
        return cent.numpy(), assign.numpy()
    return cent, assign


# ----------------------------------------------------------------------------- usage
def codebook_usage(idx: torch.Tensor | np.ndarray, K: int) -> tuple[float, float]:
    """Fraction of the ``K`` codes used by ``idx`` and the perplexity ``exp(H)`` of their frequencies.

    ``H = -sum_k p_k log p_k`` with ``p_k`` the empirical frequency of code ``k`` (natural log), so the
    perplexity lies in ``[1, min(K, len(idx))]`` and equals ``K`` only for perfectly uniform use.
    """
    K = _check_int(K, "K", 1)
    if isinstance(idx, np.ndarray):
        idx = torch.from_numpy(idx)
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a torch.Tensor or numpy array, got {type(idx).__name__}")
    if torch.is_floating_point(idx) or torch.is_complex(idx) or idx.dtype == torch.bool:
        raise TypeError(f"idx must be an integer tensor, got dtype {idx.dtype}")
    if idx.numel() == 0:
        raise ValueError("idx must not be empty")
    idx = idx.reshape(-1)
    if int(idx.min()) < 0 or int(idx.max()) >= K:
        raise ValueError(f"idx values must lie in [0, K={K}), got range [{int(idx.min())}, {int(idx.max())}]")
    counts = torch.bincount(idx.long().cpu(), minlength=K).double()
    p = counts / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    return float((counts > 0).double().mean()), math.exp(entropy)
