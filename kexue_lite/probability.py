"""From scores to probabilities: softmax, its alternatives, and their losses.

Serves the ``probability`` part: ``softmax-alternatives`` (kexue.fm/archives/10145; sparsemax: Martins &
Astudillo 2016; entmax: Peters, Niculae & Martins 2019; Fenchel–Young losses: Blondel et al. 2020),
``emo-optimal-transport-loss`` (9797; Ren, Wu & Zhu, arXiv:2310.04691) and ``n-m-class-cross-entropy`` (9158).

Conventions (used everywhere below)
-----------------------------------
* The class axis is the **last** axis; leading axes are a batch.
* **torch in, torch out** (same dtype and device, autograd flows through); **numpy in, numpy out**
  (computed in float64 torch on the CPU).
* Logits may contain ``-inf`` (a class that is switched off): its probability is exactly 0 and its
  gradient exactly 0. NaN or ``+inf`` raise ``ValueError``; so does a row whose entries are all ``-inf``.
* Every map is computed after subtracting the row maximum, so logits of size 1e3 are fine in
  float32 and float64.
* Entmax in the paper's form: ``entmax_alpha(x) = relu((alpha - 1) x - tau)^(1/(alpha - 1))`` with the
  threshold ``tau`` making the entries sum to 1; the article writes ``relu^(1/beta)(beta x - lambda)``
  with ``beta = alpha - 1`` (the same thing). ``alpha = 2`` is sparsemax, ``alpha -> 1`` softmax.
* Sparsemax, entmax-1.5 and bisection entmax look for the support among the ``k`` largest logits
  (``torch.topk``) and enlarge ``k`` only when the support might not fit, so a vocabulary-sized row
  costs about as much as a softmax; their backward passes use the closed-form Jacobians.
"""

from __future__ import annotations

import math
import numpy as np
import torch

Array = np.ndarray | torch.Tensor

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_jacobian",
    "cross_entropy",
    "am_softmax_loss",
    "taylor_softmax",
    "sparse_softmax",
    "sparse_softmax_loss",
    "perturb_max",
    "perturb_max_mc",
    "sparsemax",
    "sparsemax_threshold",
    "sparsemax_jacobian",
    "sparsemax_loss",
    "entmax15",
    "entmax_bisect",
    "entmax_threshold",
    "entmax_jacobian",
    "tsallis_entropy",
    "entmax_loss",
    "gradient_surrogate_loss",
    "transport_cost_lp",
    "transport_upper_bound",
    "cosine_cost_matrix",
    "emo_loss",
    "emo_mle_mix",
    "synonym_vocab",
    "synonym_task",
    "nm_cross_entropy",
    "nm_loss_truncated",
    "nm_loss_centered",
    "multilabel_ce",
    "fit_free_logits",
]

_TOPK_START = 64  # first guess of the support size for the sparse maps


# ----------------------------------------------------------------------------- plumbing
def _to_torch(x: object, name: str = "x") -> tuple[torch.Tensor, bool]:
    """``(tensor, came_from_numpy)``; numpy (and lists) become float64 CPU tensors."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        return x, False
    if isinstance(x, (np.ndarray, list, tuple, float, int)) and not isinstance(x, bool):
        arr = np.asarray(x, dtype=np.float64)
        return torch.from_numpy(arr.copy()), True
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _back(t: torch.Tensor, numpy: bool) -> Array:
    return t.detach().numpy() if numpy else t


def _check_logits(x: torch.Tensor, name: str = "x") -> None:
    """One pass: the row maxima reveal NaN (max propagates it), +inf, and rows of all -inf."""
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last (class) axis, got shape {tuple(x.shape)}")
    rmax = x.detach().amax(dim=-1)
    if torch.isnan(rmax).any() or (rmax == math.inf).any():
        raise ValueError(f"{name} must not contain NaN or +inf")
    if (rmax == -math.inf).any():
        raise ValueError(f"{name} has a row whose entries are all -inf: no distribution exists")


def _logits(x: object, name: str = "x") -> tuple[torch.Tensor, bool]:
    t, numpy = _to_torch(x, name)
    _check_logits(t, name)
    return t, numpy


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return float(tau)


def _shifted(x: torch.Tensor) -> torch.Tensor:
    """``x - max(x)`` along the last axis (max is finite: rows of all -inf are refused)."""
    return x - x.max(dim=-1, keepdim=True).values.detach()


def _onehot_or_probs(target: object, like: torch.Tensor, name: str = "target") -> torch.Tensor:
    """Integer class indices ``(...)`` or a probability array ``(..., n)`` -> probabilities ``(..., n)``."""
    n = like.shape[-1]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = torch.full(like.shape[:-1], int(target), dtype=torch.long)
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target.copy())
    if isinstance(target, (list, tuple)):
        target = torch.tensor(target)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be class indices or probabilities, got {type(target).__name__}")
    target = target.to(like.device)
    if not target.is_floating_point():
        if tuple(target.shape) != tuple(like.shape[:-1]):
            raise ValueError(f"{name} indices must have shape {tuple(like.shape[:-1])}, got {tuple(target.shape)}")
        if target.numel() and (target.min() < 0 or target.max() >= n):
            raise ValueError(f"{name} indices must lie in 0..{n - 1}")
        return torch.nn.functional.one_hot(target.long(), n).to(like.dtype)
    if tuple(target.shape) != tuple(like.shape):
        raise ValueError(f"{name} probabilities must have shape {tuple(like.shape)}, got {tuple(target.shape)}")
    if (target < 0).any():
        raise ValueError(f"{name} probabilities must be non-negative")
    return target.to(like.dtype)


# ------------------------------------------------------------------------------ softmax
def softmax(x: Array, tau: float = 1.0) -> Array:
    """``p_i = exp(x_i / tau) / sum_j exp(x_j / tau)`` (computed after subtracting the max)."""
    tau = _check_tau(tau)
    t, numpy = _logits(x)
    return _back(torch.softmax(t / tau, dim=-1), numpy)


def log_softmax(x: Array, tau: float = 1.0) -> Array:
    """``log softmax(x / tau)``, stable; ``-inf`` where the logit is ``-inf``."""
    tau = _check_tau(tau)
    t, numpy = _logits(x)
    return _back(torch.log_softmax(t / tau, dim=-1), numpy)


def logsumexp(x: Array, tau: float = 1.0) -> Array:
    """The smooth maximum ``tau * log sum_i exp(x_i / tau)``; it lies in ``[max x, max x + tau log n]``."""
    tau = _check_tau(tau)
    t, numpy = _logits(x)
    return _back(tau * torch.logsumexp(t / tau, dim=-1), numpy)


def softmax_jacobian(p: Array) -> Array:
    """``J_ij = dp_i/dx_j = p_i delta_ij - p_i p_j``, shape ``(..., n, n)``."""
    t, numpy = _to_torch(p, "p")
    return _back(torch.diag_embed(t) - t[..., :, None] * t[..., None, :], numpy)


def cross_entropy(logits: Array, target: object) -> Array:
    """Per-sample ``-sum_i t_i log softmax(x)_i``; ``target`` holds class indices or probabilities (soft labels).

    Classes with zero target probability contribute exactly 0, also where the logit is ``-inf``.
    """
    x, numpy = _logits(logits, "logits")
    t = _onehot_or_probs(target, x)
    logp = torch.log_softmax(x, dim=-1)
    return _back(-torch.where(t > 0, t * logp, torch.zeros_like(logp)).sum(-1), numpy)


def am_softmax_loss(z: Array, centers: Array, target: object, margin: float = 0.35, scale: float = 30.0) -> Array:
    """Additive-margin softmax loss: cross entropy of ``scale * cos(z, c_j)``, the target's cosine lowered by ``margin``.

    ``z`` is ``(..., d)``, ``centers`` ``(n, d)``; the margin is in cosine units (``margin * scale`` in logits).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    zt, numpy = _to_torch(z, "z")
    ct, _ = _to_torch(centers, "centers")
    if ct.ndim != 2 or zt.shape[-1] != ct.shape[-1]:
        raise ValueError(f"centers must be (n, d) with d = z.shape[-1], got {tuple(ct.shape)} and {tuple(zt.shape)}")
    cos = torch.nn.functional.normalize(zt, dim=-1) @ torch.nn.functional.normalize(ct.to(zt), dim=-1).T
    onehot = _onehot_or_probs(target, cos)
    logits = scale * (cos - margin * onehot)
    return _back(-(onehot * torch.log_softmax(logits, dim=-1)).sum(-1), numpy)


def taylor_softmax(x: Array, k: int = 2) -> Array:
    """``f_k(x_i) / sum_j f_k(x_j)`` with ``f_k(x) = sum_{m<=k} x^m / m!`` (``k`` even, so ``f_k > 0``).

    Neither shift-invariant nor monotone (``f_2`` decreases left of -1). Not shifted by the max.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2 or k % 2:
        raise ValueError(f"k must be a positive even integer, got {k!r}")
    t, numpy = _to_torch(x)
    if t.ndim == 0 or t.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last (class) axis, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("x must be finite for the Taylor softmax")
    f = sum(t**m / math.factorial(m) for m in range(k + 1))
    return _back(f / f.sum(-1, keepdim=True), numpy)


def _topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    idx = x.topk(k, dim=-1).indices
    return torch.zeros_like(x, dtype=torch.bool).scatter(-1, idx, True)


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in 1..{n}, got {k!r}")
    return int(k)


def sparse_softmax(x: Array, k: int) -> Array:
    """Softmax renormalised over the ``k`` largest logits, exact zeros elsewhere (ties broken by ``torch.topk``)."""
    t, numpy = _logits(x)
    k = _check_k(k, t.shape[-1])
    masked = torch.where(_topk_mask(t, k), t, torch.full_like(t, -math.inf))
    return _back(torch.softmax(masked, dim=-1), numpy)


def sparse_softmax_loss(x: Array, target: object, k: int) -> Array:
    """``log sum_{i in top-k} exp(x_i) - x_t`` per sample: the negative log-likelihood when the target is in the
    top ``k``; a finite surrogate (positive, pushing ``x_t`` up) when it is not."""
    t, numpy = _logits(x)
    k = _check_k(k, t.shape[-1])
    onehot = _onehot_or_probs(target, t)
    masked = torch.where(_topk_mask(t, k), t, torch.full_like(t, -math.inf))
    return _back(torch.logsumexp(masked, dim=-1) - (onehot * torch.where(onehot > 0, t, torch.zeros_like(t))).sum(-1), numpy)


# -------------------------------------------------------------------------- perturb max
def perturb_max(x: Array, noise: str = "gumbel", n_nodes: int = 200) -> Array:
    """``p_i = P[argmax_j (x_j + eps_j) = i]`` for i.i.d. noise ``eps``.

    ``"gumbel"``: exactly ``softmax(x)``. ``"normal"``: ``E_eps prod_{j != i} Phi(x_i - x_j + eps)``
    by ``n_nodes``-point Gauss–Hermite quadrature (probabilists' weights divided by ``sqrt(2 pi)``),
    in log space; ``O(n^2)`` per row, meant for small ``n``.
    """
    if noise == "gumbel":
        return softmax(x)
    if noise != "normal":
        raise ValueError(f"noise must be 'gumbel' or 'normal', got {noise!r}")
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2:
        raise ValueError(f"n_nodes must be an integer >= 2, got {n_nodes!r}")
    t, numpy = _logits(x)
    nodes, weights = np.polynomial.hermite_e.hermegauss(int(n_nodes))
    eps = torch.as_tensor(nodes, dtype=t.dtype, device=t.device)
    logw = torch.as_tensor(np.log(weights / math.sqrt(2 * math.pi)), dtype=t.dtype, device=t.device)
    # -inf logits: Phi(x_i - (-inf)) = 1 for every finite i, and a -inf entry never wins. They are set to 0
    # before differencing (no inf - inf, no NaN in values or gradients) and masked afterwards.
    finite = torch.isfinite(t)
    tf = torch.where(finite, t, torch.zeros_like(t))
    diff = tf[..., :, None] - tf[..., None, :]  # (..., i, j): x_i - x_j
    logphi = torch.special.log_ndtr(diff[..., None] + eps)  # (..., i, j, node)
    eye = torch.eye(t.shape[-1], dtype=torch.bool, device=t.device)
    skip = (eye | ~finite[..., None, :])[..., None]  # the j = i factor, and every -inf competitor, is 1
    log_prod = torch.where(skip, torch.zeros_like(logphi), logphi).sum(-2)  # (..., i, node)
    log_prod = torch.where(finite[..., None], log_prod, torch.full_like(log_prod, -math.inf))
    p = torch.logsumexp(log_prod + logw, dim=-1).exp()
    return _back(p / p.sum(-1, keepdim=True), numpy)


def perturb_max_mc(x: Array, noise: str, n_samples: int, generator: torch.Generator | None = None) -> Array:
    """Monte Carlo frequencies of ``argmax(x + eps)`` over ``n_samples`` noise draws (``"gumbel"`` or ``"normal"``)."""
    if noise not in ("gumbel", "normal"):
        raise ValueError(f"noise must be 'gumbel' or 'normal', got {noise!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    t, numpy = _logits(x)
    shape = (int(n_samples), *t.shape)
    if noise == "normal":
        eps = torch.randn(shape, generator=generator, dtype=t.dtype, device=t.device)
    else:
        u = torch.rand(shape, generator=generator, dtype=t.dtype, device=t.device).clamp_min(torch.finfo(t.dtype).tiny)
        eps = -torch.log(-torch.log(u))
    winners = (t + eps).argmax(-1)
    counts = torch.nn.functional.one_hot(winners, t.shape[-1]).to(t.dtype).mean(0)
    return _back(counts, numpy)


# -------------------------------------------------------------------- sparsemax, entmax
def _threshold_sorted(z: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Threshold and support size from the sorted (descending) candidates ``z`` (..., k), for alpha 2 or 1.5.

    ``alpha = 2`` (sparsemax): ``tau_k = (sum_{i<=k} z_i - 1) / k``, support ``= #{k: z_k > tau_k}``.
    ``alpha = 1.5`` (on ``z = x / 2``): ``tau_k = mu_k - sqrt(max(1/k - sigma_k^2, 0))``, support
    ``= #{k: tau_k <= z_k}`` — robust to ties, unlike selecting ``z_k >= tau_k > z_{k+1}``.
    """
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    finite = torch.isfinite(z)
    zf = torch.where(finite, z, torch.zeros_like(z))  # -inf candidates never enter the support
    if alpha == 2:
        tau_k = (zf.cumsum(-1) - 1) / k
        support = ((z > tau_k) & finite).sum(-1, keepdim=True)
    else:
        mu = zf.cumsum(-1) / k
        sigma2 = (zf * zf).cumsum(-1) / k - mu * mu
        tau_k = mu - torch.sqrt(torch.clamp(1 / k - sigma2, min=0))
        support = ((tau_k <= z) & finite).sum(-1, keepdim=True)
    tau = tau_k.gather(-1, support - 1)
    return tau, support


def _sparse_threshold(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """Threshold of sparsemax (alpha 2) or entmax-1.5 on rows ``z`` with max 0, via growing top-k."""
    n = z.shape[-1]
    k = min(n, _TOPK_START)
    while True:
        cand = z.topk(k, dim=-1).values if k < n else z.sort(dim=-1, descending=True).values
        tau, support = _threshold_sorted(cand, alpha)
        if k == n or bool((support < k).all()):
            return tau
        k = min(n, 4 * k)


class _SparseMap(torch.autograd.Function):
    """Forward: ``p = relu(z - tau)^(1/(alpha-1))`` with ``z = (alpha - 1) x`` (up to a shift); backward:
    ``dp/dx = diag(s) - s s^T / sum s``, ``s = p^(2 - alpha)`` on the support (``1{p > 0}`` for sparsemax)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, tau: torch.Tensor, alpha: float) -> torch.Tensor:
        p = torch.clamp(z - tau, min=0)
        if alpha != 2:
            p = p ** (1 / (alpha - 1))
        ctx.save_for_backward(p)
        ctx.alpha = alpha
        return p

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (p,) = ctx.saved_tensors
        s = (p > 0).to(p.dtype) if ctx.alpha == 2 else torch.where(p > 0, p ** (2 - ctx.alpha), torch.zeros_like(p))
        gs = g * s  # dp/dz = (diag(s) - s s^T / sum s) / (alpha - 1): z is already (alpha - 1) x
        return (gs - s * gs.sum(-1, keepdim=True) / s.sum(-1, keepdim=True)) / (ctx.alpha - 1), None, None


def sparsemax(x: Array) -> Array:
    """Euclidean projection onto the simplex, ``relu(x - tau(x))`` (Martins & Astudillo 2016); exact on ties."""
    t, numpy = _logits(x)
    z = _shifted(t)
    with torch.no_grad():
        tau = _sparse_threshold(z, 2)
    return _back(_SparseMap.apply(z, tau, 2.0), numpy)


def sparsemax_threshold(x: Array) -> Array:
    """``tau(x)`` with ``sparsemax(x) = relu(x - tau)``, shape ``(..., 1)`` (not differentiated)."""
    t, numpy = _logits(x)
    shift = t.max(-1, keepdim=True).values
    with torch.no_grad():
        return _back(_sparse_threshold(t - shift, 2) + shift, numpy)


def sparsemax_jacobian(p: Array) -> Array:
    """``J = diag(s) - s s^T / |S|`` with ``s = 1{p > 0}``: the identity minus the mean, on the support."""
    return entmax_jacobian(p, 2.0)


def entmax15(x: Array) -> Array:
    """1.5-entmax, ``relu(x/2 - tau)^2``, exact: the threshold solves a quadratic on the support (Peters et al. 2019)."""
    t, numpy = _logits(x)
    z = _shifted(t) / 2
    with torch.no_grad():
        tau = _sparse_threshold(z, 1.5)
    return _back(_SparseMap.apply(z, tau, 1.5), numpy)


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 1:
        raise ValueError(f"alpha must be a finite number >= 1, got {alpha!r}")
    return float(alpha)


def _bisect_threshold(z: torch.Tensor, alpha: float, n_iter: int) -> torch.Tensor:
    """Threshold of ``relu(z - tau)^(1/(alpha-1))`` for rows with max ``z`` = 1, by bisection on the top-k.

    The sum over the ``k`` largest entries equals the full sum once ``tau >= z_(k+1)``; if the
    solution ``tau_k`` of the top-k problem passes that test it is the answer, else ``k`` grows.
    The bracket is ``[0, 1 - k^(1 - alpha)]`` (at 0 the largest term alone is 1).
    """
    n = z.shape[-1]
    k = min(n, _TOPK_START)
    inv = 1 / (alpha - 1)
    while True:
        cand = z.topk(min(n, k + 1), dim=-1).values
        top, nxt = cand[..., :k], (cand[..., k:] if k < n else None)
        lo = torch.zeros_like(top[..., :1])
        hi = torch.full_like(lo, 1 - k ** (1 - alpha))
        resolution = torch.finfo(z.dtype).eps / 2  # the bracket lies in [0, 1): stop at the dtype's resolution
        for _ in range(n_iter):
            if bool(((hi - lo) <= resolution).all()):
                break
            mid = (lo + hi) / 2
            total = torch.clamp(top - mid, min=0).pow(inv).sum(-1, keepdim=True)
            big = total >= 1
            lo = torch.where(big, mid, lo)
            hi = torch.where(big, hi, mid)
        tau = (lo + hi) / 2
        if nxt is None or bool((nxt <= tau).all()):
            return tau
        k = min(n, 4 * k)


def entmax_bisect(x: Array, alpha: float = 1.5, n_iter: int = 60) -> Array:
    """alpha-entmax for any ``alpha >= 1`` by bisection on the threshold (``alpha = 1`` returns softmax).

    With ``z = (alpha - 1)(x - max x) + 1`` the threshold lies in ``[0, 1)``; 60 halvings reach float64
    resolution (the loop stops earlier once the bracket is below the dtype's resolution, after about
    25 halvings in float32), and the result is renormalised to sum to 1 exactly.
    """
    alpha = _check_alpha(alpha)
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if alpha == 1:
        return softmax(x)
    t, numpy = _logits(x)
    z = (alpha - 1) * _shifted(t) + 1
    with torch.no_grad():
        tau = _bisect_threshold(z, alpha, int(n_iter))
    p = _SparseMap.apply(z, tau, alpha)
    return _back(p / p.sum(-1, keepdim=True), numpy)


def entmax_threshold(x: Array, alpha: float) -> Array:
    """``tau`` with ``entmax_alpha(x) = relu((alpha - 1) x - tau)^(1/(alpha - 1))`` (paper's form), shape ``(..., 1)``."""
    alpha = _check_alpha(alpha)
    if alpha == 1:
        raise ValueError("alpha = 1 (softmax) has no threshold")
    t, numpy = _logits(x)
    shift = t.max(-1, keepdim=True).values
    with torch.no_grad():
        if alpha == 2:
            tau = _sparse_threshold(t - shift, 2)
        elif alpha == 1.5:
            tau = _sparse_threshold((t - shift) / 2, 1.5)  # relu((x - shift)/2 - tau')^2
        else:
            tau = _bisect_threshold((alpha - 1) * (t - shift) + 1, alpha, 60) - 1
        return _back(tau + (alpha - 1) * shift, numpy)


def entmax_jacobian(p: Array, alpha: float) -> Array:
    """``J = diag(s) - s s^T / sum s`` with ``s_i = p_i^(2 - alpha)`` on the support (0 off it); ``alpha = 1``: softmax's."""
    alpha = _check_alpha(alpha)
    t, numpy = _to_torch(p, "p")
    s = torch.where(t > 0, t ** (2 - alpha), torch.zeros_like(t))
    return _back(torch.diag_embed(s) - s[..., :, None] * s[..., None, :] / s.sum(-1)[..., None, None], numpy)


def tsallis_entropy(p: Array, alpha: float) -> Array:
    """``H_alpha(p) = sum_j (p_j - p_j^alpha) / (alpha (alpha - 1))``; Shannon ``-sum p log p`` at ``alpha = 1``."""
    alpha = _check_alpha(alpha)
    t, numpy = _to_torch(p, "p")
    if alpha == 1:
        return _back(-torch.where(t > 0, t * torch.log(torch.where(t > 0, t, torch.ones_like(t))), torch.zeros_like(t)).sum(-1), numpy)
    return _back((t - t.clamp(min=0) ** alpha).sum(-1) / (alpha * (alpha - 1)), numpy)


class _FenchelYoung(torch.autograd.Function):
    """A loss value whose gradient in the logits is ``(p - y) * g`` (Fenchel–Young losses)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(p - y)
        return value.clone()

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (diff,) = ctx.saved_tensors
        return diff * g[..., None], None, None, None


def _fy_loss(t: torch.Tensor, target: object, p: torch.Tensor, alpha: float) -> torch.Tensor:
    y = _onehot_or_probs(target, t)
    x0 = torch.where(torch.isfinite(t), t, torch.zeros_like(t)).detach()  # p = 0 and y = 0 where x = -inf
    if ((y > 0) & ~torch.isfinite(t)).any():
        raise ValueError("target puts mass on a class whose logit is -inf")
    value = ((p.detach() - y) * x0).sum(-1) + tsallis_entropy(p.detach(), alpha) - tsallis_entropy(y, alpha)
    return _FenchelYoung.apply(t, value, p.detach(), y)


def sparsemax_loss(x: Array, target: object) -> Array:
    """The sparsemax loss ``1/2 - x_t + 1/2 sum_{i in S} (x_i^2 - tau^2)``; its gradient is ``sparsemax(x) - onehot(t)``.

    Computed as the Fenchel–Young loss ``(p - y).x + H_2(p) - H_2(y)`` (the same value), which also
    accepts soft targets. Zero exactly when the target leads by a margin of at least 1.
    """
    t, numpy = _logits(x)
    return _back(_fy_loss(t, target, sparsemax(t), 2.0), numpy)


def entmax_loss(x: Array, target: object, alpha: float = 1.5) -> Array:
    """Fenchel–Young loss of alpha-entmax, ``(p - y).x + H_alpha(p) - H_alpha(y)``; gradient ``p - y``.

    For a one-hot target, ``alpha = 1`` is cross entropy (for a soft target it is ``KL(y || p)``, cross entropy minus
    ``H(y)``), and ``alpha = 2`` is the sparsemax loss.
    """
    alpha = _check_alpha(alpha)
    t, numpy = _logits(x)
    if alpha == 1:
        p = torch.softmax(t, dim=-1)
    elif alpha == 1.5:
        p = entmax15(t)
    elif alpha == 2:
        p = sparsemax(t)
    else:
        p = entmax_bisect(t, alpha)
    return _back(_fy_loss(t, target, p, alpha), numpy)


def gradient_surrogate_loss(p: torch.Tensor, target: object, x: torch.Tensor) -> torch.Tensor:
    """``stop_gradient(p - onehot(t)) . x``: its value means nothing, its gradient in ``x`` is ``p - onehot(t)``.

    (The article writes ``(p - onehot(t)) . stop_gradient(x)``, whose gradient is ``J^T x`` instead.)
    """
    if not isinstance(p, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError("p and x must be torch tensors (the surrogate is for autograd)")
    y = _onehot_or_probs(target, x)
    return ((p - y).detach() * torch.where(torch.isfinite(x), x, torch.zeros_like(x))).sum(-1)



# -------------------------------------------------------------------- EMO (kexue.fm/9797)
def transport_cost_lp(p: np.ndarray, q: np.ndarray, C: np.ndarray) -> tuple[float, np.ndarray]:
    """Earth mover's cost ``min_{gamma >= 0, gamma 1 = p, gamma^T 1 = q} sum gamma_ij C_ij`` by linear programming (HiGHS).

    Returns ``(cost, plan)``; numpy only.
    """
    import scipy.optimize

    p, q, C = (np.asarray(v, dtype=float) for v in (p, q, C))
    if p.ndim != 1 or q.ndim != 1 or C.shape != (p.size, q.size):
        raise ValueError(f"p (n,), q (m,) and C (n, m) must match, got {p.shape}, {q.shape}, {C.shape}")
    if (p < 0).any() or (q < 0).any() or abs(p.sum() - q.sum()) > 1e-9:
        raise ValueError(f"p and q must be non-negative with equal mass, got {p.sum()} and {q.sum()}")
    n, m = C.shape
    rows = np.kron(np.eye(n), np.ones(m))  # sum_j gamma_ij = p_i
    cols = np.kron(np.ones(n), np.eye(m))  # sum_i gamma_ij = q_j
    res = scipy.optimize.linprog(C.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([p, q]),
                                 bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - a feasible transport problem always solves
        raise RuntimeError(res.message)
    return float(res.fun), res.x.reshape(n, m)


def transport_upper_bound(p: np.ndarray, q: np.ndarray, C: np.ndarray) -> float:
    """``p^T C q``: the cost of the independent coupling ``p q^T``, an upper bound on the transport cost
    (equal to it when ``q`` is one-hot)."""
    p, q, C = (np.asarray(v, dtype=float) for v in (p, q, C))
    if C.shape != (p.size, q.size):
        raise ValueError(f"C must have shape ({p.size}, {q.size}), got {C.shape}")
    return float(p @ C @ q)


def cosine_cost_matrix(E: Array) -> Array:
    """``C = 1 - E^ E^T`` with the rows of ``E`` normalised (the cost between token embeddings)."""
    t, numpy = _to_torch(E, "E")
    norms = t.norm(dim=-1, keepdim=True)
    if t.ndim != 2 or (norms == 0).any():
        raise ValueError("E must be a (V, d) matrix with non-zero rows")
    En = t / norms
    return _back(1 - En @ En.T, numpy)


def emo_loss(logits: Array, target: object, E_hat: Array, normalize: bool = False) -> Array:
    """EMO for one-hot targets: ``1 - <p^T E^, e^_t>`` per sample, ``p = softmax(logits)``.

    Equals the transport cost with the cosine cost ``1 - cos(e_i, e_t)``; costs ``O(V d)``, never the
    ``V x V`` matrix. ``E_hat`` (``(V, d)``) must have unit rows, or pass ``normalize=True``; it is a
    fixed ground metric and is detached.
    """
    x, numpy = _logits(logits, "logits")
    E, _ = _to_torch(E_hat, "E_hat")
    E = E.to(x).detach()
    if E.ndim != 2 or E.shape[0] != x.shape[-1]:
        raise ValueError(f"E_hat must be (V, d) with V = {x.shape[-1]}, got {tuple(E.shape)}")
    if normalize:
        E = torch.nn.functional.normalize(E, dim=-1)
    elif (E.norm(dim=-1) - 1).abs().max() > 1e-6:
        raise ValueError("E_hat must have unit-norm rows (or pass normalize=True)")
    y = _onehot_or_probs(target, x)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("emo_loss takes one-hot targets (for soft labels the formula is only an upper bound)")
    p = torch.softmax(x, dim=-1)
    return _back(1 - ((p @ E) * (y @ E)).sum(-1), numpy)


def emo_mle_mix(logits: Array, target: object, E_hat: Array) -> Array:
    """The official EMO code's objective: ``(MLE + stop_grad(MLE / (EMO + 1e-10)) * EMO) / 2`` per sample."""
    x, numpy = _logits(logits, "logits")
    mle = cross_entropy(x, target)
    emo = emo_loss(x, target, E_hat)
    return _back(0.5 * (mle + (mle / (emo + 1e-10)).detach() * emo), numpy)


def synonym_vocab(V: int = 60, clusters: int = 12, d: int = 16, noise: float = 0.35, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A toy vocabulary of synonyms: ``V`` unit embeddings in ``clusters`` groups of equal size.

    Token ``v`` belongs to cluster ``v // (V // clusters)``; its embedding is its cluster's random unit
    centre plus ``noise * N(0, I_d) / sqrt(d)``, normalised. Returns ``(E, cluster_id)``.
    """
    for name, val in (("V", V), ("clusters", clusters), ("d", d)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if V % clusters:
        raise ValueError(f"V = {V} must be a multiple of clusters = {clusters}")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster_id = np.arange(V) // (V // clusters)
    E = centres[cluster_id] + noise * rng.normal(size=(V, d)) / math.sqrt(d)
    return E / np.linalg.norm(E, axis=1, keepdims=True), cluster_id


def synonym_task(batch: int, cluster_codes: torch.Tensor, cluster_id: np.ndarray, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(inputs, targets)``: a uniform cluster, its code (a row of ``cluster_codes``) plus
    ``N(0, I)`` noise as the input, and a target token drawn uniformly among the cluster's synonyms."""
    cid = torch.as_tensor(cluster_id)
    k = int(cluster_codes.shape[0])
    size = int((cid == 0).sum())
    c = torch.randint(k, (batch,), generator=generator)
    inputs = cluster_codes[c] + torch.randn(batch, cluster_codes.shape[1], generator=generator, dtype=cluster_codes.dtype)
    targets = c * size + torch.randint(size, (batch,), generator=generator)
    return inputs, targets


# ------------------------------------------------------- n tasks of m classes (kexue.fm/9158)
def _nm_inputs(s: Array, t: Array) -> tuple[torch.Tensor, torch.Tensor, bool]:
    st, numpy = _to_torch(s, "s")
    tt, _ = _to_torch(t, "t")
    tt = tt.to(st)
    if st.ndim < 2 or tuple(st.shape) != tuple(tt.shape):
        raise ValueError(f"s and t must have the same shape (..., n, m), got {tuple(st.shape)} and {tuple(tt.shape)}")
    if (tt < 0).any():
        raise ValueError("t must be non-negative")
    return st, tt, numpy


def _log_t(t: torch.Tensor) -> torch.Tensor:
    """``log t`` with ``-inf`` (not NaN, no warning) where ``t = 0``."""
    return torch.where(t > 0, torch.log(torch.where(t > 0, t, torch.ones_like(t))), torch.full_like(t, -math.inf))


def _log1p_sum(logits: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``log(1 + sum exp(logits))`` over ``dims``, stably (a logsumexp with an extra 0)."""
    flat = logits.flatten(start_dim=logits.ndim - len(dims))
    zero = torch.zeros_like(flat[..., :1])
    return torch.logsumexp(torch.cat([zero, flat], dim=-1), dim=-1)


def nm_cross_entropy(s: Array, t: Array) -> Array:
    """``-sum_ij t_ij log softmax(s_i)_j`` for ``s, t`` of shape ``(..., n, m)`` (tasks x classes of one sample)."""
    st, tt, numpy = _nm_inputs(s, t)
    logp = torch.log_softmax(st, dim=-1)
    return _back(-torch.where(tt > 0, tt * logp, torch.zeros_like(logp)).sum((-2, -1)), numpy)


def nm_loss_truncated(s: Array, t: Array) -> Array:
    """The article's first attempt ``l1 = sum_j log(1 + sum_i sum_{k != j} t_ij exp(s_ik - s_ij))``.

    The sum over ``i`` runs over the ``n`` tasks of one sample. Computed as a logsumexp with ``log t``
    offsets (``t = 0`` terms are masked).
    """
    st, tt, numpy = _nm_inputs(s, t)
    m = st.shape[-1]
    # a[..., i, j, k] = log t_ij + s_ik - s_ij, masked at k = j
    a = _log_t(tt)[..., :, :, None] + st[..., :, None, :] - st[..., :, :, None]
    a = torch.where(torch.eye(m, dtype=torch.bool, device=st.device), torch.full_like(a, -math.inf), a)
    per_j = _log1p_sum(a.movedim(-2, -3), (-2, -1))  # (..., j): log(1 + sum_{i, k != j})
    return _back(per_j.sum(-1), numpy)


def nm_loss_centered(s: Array, t: Array) -> Array:
    """The second attempt ``l3 = sum_j log(1 + sum_i t_ij exp(mean_k s_ik - s_ij))``; its optimum is ``t = softmax(s)``."""
    st, tt, numpy = _nm_inputs(s, t)
    a = _log_t(tt) + st.mean(-1, keepdim=True) - st  # (..., i, j)
    return _back(_log1p_sum(a.transpose(-1, -2), (-1,)).sum(-1), numpy)  # for each j: sum over the tasks i


def multilabel_ce(s: Array, t: Array) -> Array:
    """The author's multi-label cross entropy ``log(1 + sum_i t_i e^{-s_i}) + log(1 + sum_i (1 - t_i) e^{s_i})``, ``(..., n)``."""
    st, numpy = _to_torch(s, "s")
    tt, _ = _to_torch(t, "t")
    tt = tt.to(st)
    if tuple(st.shape) != tuple(tt.shape) or st.ndim == 0:
        raise ValueError(f"s and t must have the same shape (..., n), got {tuple(st.shape)} and {tuple(tt.shape)}")
    if (tt < 0).any() or (tt > 1).any():
        raise ValueError("t must lie in [0, 1]")
    pos = _log1p_sum(_log_t(tt) - st, (-1,))
    neg = _log1p_sum(_log_t(1 - tt) + st, (-1,))
    return _back(pos + neg, numpy)


def fit_free_logits(loss_fn, t: np.ndarray, method: str = "L-BFGS-B", tol: float = 1e-12, max_iter: int = 5000) -> np.ndarray:
    """The logits ``s*`` minimising ``loss_fn(s, t)`` (float64, scipy with torch autograd gradients), from ``s = 0``.

    Losses are invariant to per-task shifts, so compare ``softmax(s*)``, not ``s*``.
    """
    import scipy.optimize

    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(s, t)")
    t_np = np.asarray(t, dtype=float)
    tt = torch.from_numpy(t_np.copy())

    def value_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        s = torch.from_numpy(flat.reshape(t_np.shape).copy()).requires_grad_(True)
        loss = loss_fn(s, tt).sum()
        (g,) = torch.autograd.grad(loss, s)
        return float(loss.detach()), g.numpy().ravel()

    res = scipy.optimize.minimize(value_and_grad, np.zeros(t_np.size), jac=True, method=method,
                                  options={"gtol": tol, "ftol": tol * 1e-3, "maxiter": max_iter})
    return res.x.reshape(t_np.shape)
