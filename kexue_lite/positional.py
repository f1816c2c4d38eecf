"""Position encodings: sinusoidal encodings, their frequency schedule, and rotary position embedding (RoPE).

Serves the ``positional`` part (kexue.fm/archives/8231, 8265, 8397, 9948, 10040, 10122; Vaswani et al. 2017;
Su et al., RoFormer, arXiv:2104.09864).

Conventions (used everywhere below)
-----------------------------------
* Frequencies ``theta_i = base^(-2i/d)``, ``i = 0 .. d/2 - 1`` (one per pair of features).
* Sinusoidal layouts: ``"vaswani"`` puts ``sin(k theta_i)`` in column ``2i`` and ``cos`` in ``2i + 1``;
  ``"paired"`` puts ``(cos, sin)``, the vector the article derives. Inner products are the same.
* RoPE rotates each pair by ``+pos * theta_i``: ``(x_a, x_b) -> (x_a cos - x_b sin, x_a sin + x_b cos)``.
  ``layout="interleaved"`` pairs features ``(2i, 2i + 1)`` (the RoFormer paper); ``layout="half"`` pairs
  ``(i, i + d/2)`` (the ``rotate_half`` convention of GPT-NeoX / LLaMA code). The two differ only by a
  fixed permutation of the features. With this convention ``(R_m q)^T (R_n k) = q^T R_{n-m} k``.
* N-D RoPE (``rope_nd_rotate``): the features are cut into one contiguous chunk per position axis,
  and chunk ``a`` is rotated by ``pos[:, a]`` with its own frequencies (``split_freqs``).
* ``rope_rotate`` takes numpy or torch and returns the same type, dtype and device; angles are always
  computed in float64 and cast afterwards (``m theta_0 = m`` is coarse in float32 for large ``m``).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.special
import torch

Array = np.ndarray | torch.Tensor

__all__ = [
    "rope_freqs",
    "sinusoidal_pe",
    "cos_sum",
    "oscillatory_integral",
    "rope_rotate",
    "rope_matrix",
    "rope_decay_curve",
    "split_freqs",
    "rope_nd_rotate",
    "rope_nd_matrix",
    "interleave_permutation",
    "rope_tie_positions",
    "flatten_positions",
    "ci_first_zero",
    "first_violation",
    "base_lower_bound",
    "base_lower_bound_grid",
    "inverse_curve",
    "relative_positions",
    "scores_from_relative",
    "rerope_scores",
    "rotation_turns",
    "pi_freqs",
    "ntk_freqs",
    "yarn_freqs",
    "yarn_logit_scale",
    "logn_scale",
    "dynamic_scale",
    "ood_fraction",
]

_CHUNK = 4_000_000  # elements of the (len(m), len(theta)) table evaluated at once by cos_sum


def _check_dim(d: object, name: str = "d") -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(d).__name__}")
    if d < 2 or d % 2:
        raise ValueError(f"{name} must be an even integer >= 2, got {d}")
    return int(d)


def _check_base(base: object, minimum: float = 0.0) -> float:
    if isinstance(base, bool) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise TypeError(f"base must be a real number, got {type(base).__name__}")
    if not (math.isfinite(base) and base > minimum):
        raise ValueError(f"base must be finite and > {minimum:g}, got {base}")
    return float(base)


def rope_freqs(d: int, base: float = 10000.0) -> np.ndarray:
    """``theta_i = base^(-2i/d)`` for ``i = 0 .. d/2 - 1``, shape ``(d//2,)``."""
    d = _check_dim(d)
    base = _check_base(base)
    return base ** (-2.0 * np.arange(d // 2) / d)


def sinusoidal_pe(n_pos: int, d: int, base: float = 10000.0, layout: str = "vaswani") -> np.ndarray:
    """Sinusoidal encodings of positions ``0 .. n_pos - 1``, shape ``(n_pos, d)`` (layouts in the module docstring)."""
    if isinstance(n_pos, bool) or not isinstance(n_pos, (int, np.integer)) or n_pos < 1:
        raise ValueError(f"n_pos must be a positive integer, got {n_pos!r}")
    if layout not in ("vaswani", "paired"):
        raise ValueError(f"layout must be 'vaswani' or 'paired', got {layout!r}")
    angles = np.outer(np.arange(n_pos), rope_freqs(d, base))
    first, second = (np.sin(angles), np.cos(angles)) if layout == "vaswani" else (np.cos(angles), np.sin(angles))
    return np.stack([first, second], axis=-1).reshape(n_pos, d)


def cos_sum(m: np.ndarray | float, theta: np.ndarray) -> np.ndarray:
    """``sum_i cos(m theta_i)`` for every entry of ``m`` (float64), evaluated in chunks of bounded memory.

    It is the inner product of two sinusoidal encodings ``m`` apart (``<p_a, p_b> = cos_sum(a - b)``).
    """
    m = np.asarray(m, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1 or theta.size == 0:
        raise ValueError(f"theta must be a non-empty 1-D array, got shape {theta.shape}")
    flat = m.ravel()
    out = np.empty(flat.size)
    step = max(1, _CHUNK // theta.size)
    for start in range(0, flat.size, step):
        out[start : start + step] = np.cos(np.outer(flat[start : start + step], theta)).sum(1)
    return out.reshape(m.shape)


def oscillatory_integral(x: np.ndarray | float, base: float) -> np.ndarray:
    """``int_0^1 cos(x base^(-t)) dt = (Ci(|x|) - Ci(|x|/base)) / ln(base)`` (1 at ``x = 0``).

    The continuum limit of ``cos_sum(x, rope_freqs(d, base)) / (d/2)``.
    """
    base = _check_base(base, minimum=1.0)
    ax = np.abs(np.asarray(x, dtype=np.float64))
    safe = np.where(ax > 0, ax, 1.0)
    value = (scipy.special.sici(safe)[1] - scipy.special.sici(safe / base)[1]) / math.log(base)
    return np.where(ax > 0, value, 1.0)


def _pairs(d: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(a, b)`` of the features rotated together, one pair per frequency."""
    if layout == "interleaved":
        return np.arange(0, d, 2), np.arange(1, d, 2)
    if layout == "half":
        return np.arange(d // 2), np.arange(d // 2, d)
    raise ValueError(f"layout must be 'interleaved' or 'half', got {layout!r}")


def rope_rotate(x: Array, pos, theta, layout: str = "interleaved") -> Array:
    """``R_pos x``: rotate each feature pair of ``x`` (``(..., n, d)``) by ``pos_j * theta_i`` (``pos``: ``(n,)``).

    numpy in, numpy out; torch in, torch out on the same device and dtype (autograd flows through ``x``).
    """
    theta64 = np.asarray(theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=np.float64)
    pos64 = np.asarray(pos.detach().cpu() if isinstance(pos, torch.Tensor) else pos, dtype=np.float64)
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
    floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.issubdtype(x.dtype, np.floating)
    if not floating:  # rotating an integer array in place of its dtype would truncate cos and sin to 0
        raise TypeError(f"x must have a floating-point dtype (a rotation of integers is not integer), got {x.dtype}")
    if x.ndim < 2 or x.shape[-1] != 2 * theta64.size:
        raise ValueError(f"x must be (..., n, d) with d = 2 * len(theta) = {2 * theta64.size}, got {tuple(x.shape)}")
    if pos64.ndim != 1 or pos64.size != x.shape[-2]:
        raise ValueError(f"pos must have one entry per position (n = {x.shape[-2]}), got shape {pos64.shape}")
    a, b = _pairs(x.shape[-1], layout)
    angles = np.outer(pos64, theta64)  # (n, d/2), float64
    if isinstance(x, torch.Tensor):
        cos = torch.as_tensor(np.cos(angles), device=x.device).to(x.dtype)
        sin = torch.as_tensor(np.sin(angles), device=x.device).to(x.dtype)
        xa, xb = x[..., a], x[..., b]
        out = torch.empty_like(x)
        out[..., a] = xa * cos - xb * sin
        out[..., b] = xa * sin + xb * cos
        return out
    cos, sin = np.cos(angles).astype(x.dtype, copy=False), np.sin(angles).astype(x.dtype, copy=False)
    xa, xb = x[..., a], x[..., b]
    out = np.empty_like(x)
    out[..., a] = xa * cos - xb * sin
    out[..., b] = xa * sin + xb * cos
    return out


def rope_matrix(pos: float, theta, layout: str = "interleaved") -> np.ndarray:
    """The explicit ``d x d`` orthogonal matrix ``R_pos`` (block-diagonal for the interleaved layout); for teaching and tests."""
    theta = np.asarray(theta, dtype=np.float64)
    d = 2 * theta.size
    a, b = _pairs(d, layout)
    R = np.zeros((d, d))
    c, s = np.cos(pos * theta), np.sin(pos * theta)
    R[a, a], R[a, b], R[b, a], R[b, b] = c, -s, s, c
    return R


def rope_decay_curve(m, d: int = 128, base: float = 10000.0) -> np.ndarray:
    """``D(m) = (2/d) sum_{j=1}^{d/2} |sum_{i<j} exp(i m theta_i)|``: RoPE's long-range bound, up to ``max |h_{i+1} - h_i|``.

    ``D(0) = (d/2 + 1) / 2``.
    """
    theta = rope_freqs(d, base)
    m = np.asarray(m, dtype=np.float64)
    partial = np.cumsum(np.exp(1j * np.multiply.outer(m, theta)), axis=-1)  # S_1 .. S_{d/2}
    return np.abs(partial).mean(-1)


# ------------------------------------------------------------------ N-D RoPE (8397, 10040)
def split_freqs(d: int, base: float = 10000.0, n_axes: int = 2, mode: str = "interleave") -> list[np.ndarray]:
    """Frequencies for each of ``n_axes`` position axes, ``d / n_axes`` features per axis.

    ``"interleave"``: axis ``a`` gets ``theta_a, theta_{a + n_axes}, ...`` of ``rope_freqs(d, base)``, so that
    equal coordinates on all axes reproduce RoPE-1D up to a permutation (``interleave_permutation``).
    ``"same"``: every axis gets ``rope_freqs(d // n_axes, base)`` (exact symmetry between the axes).
    """
    d = _check_dim(d)
    if isinstance(n_axes, bool) or not isinstance(n_axes, (int, np.integer)) or n_axes < 1 or d % (2 * n_axes):
        raise ValueError(f"d = {d} must be a multiple of 2 * n_axes, got n_axes = {n_axes!r}")
    if mode == "interleave":
        theta = rope_freqs(d, base)
        return [theta[a::n_axes] for a in range(n_axes)]
    if mode == "same":
        return [rope_freqs(d // n_axes, base) for _ in range(n_axes)]
    raise ValueError(f"mode must be 'interleave' or 'same', got {mode!r}")


def _chunks(thetas) -> list[np.ndarray]:
    thetas = [np.asarray(t, dtype=np.float64) for t in thetas]
    if not thetas or any(t.ndim != 1 or t.size == 0 for t in thetas):
        raise ValueError("thetas must be a non-empty list of non-empty 1-D frequency arrays")
    return thetas


def rope_nd_rotate(x: Array, pos, thetas, layout: str = "interleaved") -> Array:
    """RoPE for positions with several coordinates: ``pos`` ``(n, n_axes)``; chunk ``a`` of the last axis of ``x``
    (``2 len(thetas[a])`` features) is rotated by ``rope_rotate(chunk, pos[:, a], thetas[a])``. numpy or torch."""
    thetas = _chunks(thetas)
    pos = np.asarray(pos.detach().cpu() if isinstance(pos, torch.Tensor) else pos, dtype=np.float64)
    sizes = [2 * t.size for t in thetas]
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.shape[-1] != sum(sizes):
        raise ValueError(f"x has {x.shape[-1]} features, the frequencies need {sum(sizes)}")
    if pos.ndim != 2 or pos.shape[1] != len(thetas):
        raise ValueError(f"pos must have shape (n, {len(thetas)}), got {pos.shape}")
    edges = np.cumsum([0] + sizes)
    parts = [rope_rotate(x[..., lo:hi], pos[:, a], thetas[a], layout) for a, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    return torch.cat(parts, dim=-1) if isinstance(x, torch.Tensor) else np.concatenate(parts, axis=-1)


def rope_nd_matrix(pos, thetas) -> np.ndarray:
    """The explicit block-diagonal matrix of ``rope_nd_rotate`` at one position ``pos`` (a tuple of coordinates)."""
    thetas = _chunks(thetas)
    pos = tuple(float(p) for p in pos)
    if len(pos) != len(thetas):
        raise ValueError(f"pos needs {len(thetas)} coordinates, got {len(pos)}")
    blocks = [rope_matrix(p, t) for p, t in zip(pos, thetas)]
    return scipy.linalg.block_diag(*blocks)


def interleave_permutation(d: int, n_axes: int = 2) -> np.ndarray:
    """``perm`` with ``rope_nd_rotate(x[..., perm], [n] * n_axes, split_freqs(d)) == rope_rotate(x, n, rope_freqs(d))[..., perm]``.

    New feature ``a * (d / n_axes) + 2j + r`` is old feature ``2 (a + n_axes j) + r``: the pair of frequency
    ``theta_{a + n_axes j}`` moves into chunk ``a``.
    """
    d = _check_dim(d)
    if isinstance(n_axes, bool) or not isinstance(n_axes, (int, np.integer)) or n_axes < 1 or d % (2 * n_axes):
        raise ValueError(f"d = {d} must be a multiple of 2 * n_axes, got n_axes = {n_axes!r}")
    per_axis = d // (2 * n_axes)
    return np.array([2 * (a + n_axes * j) + r for a in range(n_axes) for j in range(per_axis) for r in (0, 1)])


def _segments(segments) -> list[tuple]:
    checked = []
    for seg in segments:
        if not isinstance(seg, tuple) or not seg or seg[0] not in ("text", "image"):
            raise ValueError(f"each segment must be ('text', n) or ('image', h, w), got {seg!r}")
        sizes = seg[1:]
        if len(sizes) != (1 if seg[0] == "text" else 2) or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in sizes):
            raise ValueError(f"segment sizes must be positive integers, got {seg!r}")
        checked.append(seg)
    if not checked:
        raise ValueError("segments must not be empty")
    return checked


def rope_tie_positions(segments, integer: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """RoPE-Tie positions ``(x, y)`` of a sequence of ``("text", n)`` and ``("image", h, w)`` segments (1-based).

    A text token gets ``(k, k)``. An ``h x w`` image after position ``L`` gets ``(L + i s, L + j t)`` for row
    ``i = 1..h`` and column ``j = 1..w``, and the next text token is at ``K = L + (h + 1) s = L + (w + 1) t``, so
    the steps into and out of the image are both ``(s, t)``. ``integer=True``: ``s = w + 1``, ``t = h + 1``;
    otherwise ``s = (wh + 1)/(h + 1)``, ``t = (wh + 1)/(w + 1)`` and the image counts as ``wh`` tokens.
    """
    xs: list[float] = []
    ys: list[float] = []
    nxt = 1.0  # the position of the next text token
    for seg in _segments(segments):
        if seg[0] == "text":
            run = nxt + np.arange(seg[1])
            xs += list(run)
            ys += list(run)
            nxt = run[-1] + 1
            continue
        h, w = seg[1], seg[2]
        L = nxt - 1
        s, t = (w + 1.0, h + 1.0) if integer else ((w * h + 1) / (h + 1), (w * h + 1) / (w + 1))
        for i in range(1, h + 1):
            for j in range(1, w + 1):
                xs.append(L + i * s)
                ys.append(L + j * t)
        nxt = L + (h + 1) * s
    return np.array(xs), np.array(ys)


def flatten_positions(segments) -> np.ndarray:
    """The baseline: every text token and every image patch (row-major) gets the next integer position, from 1."""
    total = sum(seg[1] if seg[0] == "text" else seg[1] * seg[2] for seg in _segments(segments))
    return np.arange(1, total + 1, dtype=float)


# ------------------------------------------------------------- the RoPE base bound (10122)
def ci_first_zero() -> float:
    """The first positive zero ``x_0`` of the cosine integral ``Ci`` (so ``b >~ L / x_0`` as ``d -> infinity``)."""
    import scipy.optimize

    return float(scipy.optimize.brentq(lambda v: scipy.special.sici(v)[1], 0.5, 0.7, xtol=1e-15))


def _check_L(L: object, name: str = "L") -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"{name} must be a positive integer, got {L!r}")
    return int(L)


def first_violation(base: float, L: int, d: int = 128, eps: float = 1e-8, block: int = 1024, group: int = 8) -> int | None:
    """The smallest ``m < L`` with ``f_b(m) = sum_i cos(m theta_i) < -eps``, or ``None`` (the base is feasible for ``L``).

    Evaluated in blocks of ``block`` consecutive ``m`` by the identity
    ``f_b(s + k) = sum_i [cos(s theta_i) cos(k theta_i) - sin(s theta_i) sin(k theta_i)]``: one real matrix
    product per ``group`` blocks, stopping at the first group that contains a violation.
    """
    base = _check_base(base, minimum=1.0)
    L = _check_L(L)
    theta = rope_freqs(d, base)
    k = np.arange(min(block, L))
    R = np.concatenate([np.cos(np.outer(theta, k)), np.sin(np.outer(theta, k))])  # (d, block)
    span = R.shape[1]
    for g0 in range(0, L, span * group):
        starts = np.arange(g0, min(L, g0 + span * group), span)
        W = np.concatenate([np.cos(np.outer(starts, theta)), -np.sin(np.outer(starts, theta))], axis=1)
        F = W @ R  # F[j, k] = f_b(starts[j] + k)
        m = starts[:, None] + k[None, :]
        bad = (F < -eps) & (m < L)
        if bad.any():
            return int(m[bad].min())
    return None


def _f_and_bounds(m: int, u: float, a: np.ndarray) -> tuple[float, float, float, float]:
    """``h(u) = sum_i cos(m e^{-a_i u})``, ``h'(u)``, and the bounds ``|h'| <= L1``, ``|h''| <= L2`` valid for all larger ``u``."""
    psi = m * np.exp(-a * u)
    h = float(np.cos(psi).sum())
    dh = float((a * psi * np.sin(psi)).sum())
    return h, dh, float((a * psi).sum()), float((a * a * psi * (psi + 1)).sum())


def _advance(m: int, u: float, a: np.ndarray, eps: float, stats: dict) -> float:
    """Move ``u = ln b`` forward by certified steps while the single constraint ``m`` is violated.

    While ``h < 0``, neither ``h + L1 delta`` nor ``h + h' delta + L2 delta^2 / 2`` reaches 0 before the step
    taken, so every skipped ``b`` violates constraint ``m``. Stops once ``h >= -eps / 4``.
    """
    while True:
        h, dh, L1, L2 = _f_and_bounds(m, u, a)
        if h >= -eps / 4:
            return u
        step = max(-h / L1, (-dh + math.sqrt(dh * dh - 2 * L2 * h)) / L2)
        u += step
        stats["steps"] += 1


def base_lower_bound(Ls, d: int = 128, eps: float = 1e-8, watch: int = 256, return_stats: bool = False):
    """The smallest RoPE base ``b*(L)`` with ``f_b(m) >= 0`` for all ``m < L``, for every ``L`` in ``Ls`` (certified sweep).

    Feasibility is not monotone in ``b``, so no bisection: starting from ``b = 1`` the sweep moves ``u = ln b``
    forward only past bases that some constraint ``m < L`` certifiably rules out (``_advance``), checks a
    watch list of recently violated constraints first, and accepts a base only after a full scan
    (``first_violation``) finds none. Since ``b*`` is non-decreasing in ``L``, the targets are processed in
    increasing order and each search resumes where the previous stopped. Returns ``{L: b*}`` (and
    statistics: full scans, jumps, certified steps, seconds, and ``seconds_to``: ``{L: seconds}`` elapsed when
    ``b*(L)`` was certified, i.e. what a sweep that stops at ``L`` costs).
    """
    import time

    d = _check_dim(d)
    Ls = sorted({_check_L(L) for L in Ls})
    if not Ls:
        raise ValueError("Ls must hold at least one length")
    # the certified steps approach a root of f_b(m) geometrically and never land on it: with eps = 0 the sweep
    # would take ever smaller steps forever, so a positive tolerance is required
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise ValueError(f"eps must be a finite number > 0 (the sweep stops within eps of a root), got {eps!r}")
    a = 2.0 * np.arange(d // 2) / d
    stats = {"full_scans": 0, "jumps": 0, "steps": 0, "seconds": 0.0, "seconds_to": {}}
    start = time.perf_counter()
    u = 1e-12
    watched: list[int] = []
    out: dict[int, float] = {}
    for L in Ls:
        while True:
            hit = next((m for m in reversed(watched) if m < L and _f_and_bounds(m, u, a)[0] < -eps), None)
            if hit is None:
                stats["full_scans"] += 1
                hit = first_violation(math.exp(u), L, d, eps)
                if hit is None:
                    out[L] = math.exp(u)
                    stats["seconds_to"][L] = time.perf_counter() - start
                    break
                watched = [m for m in watched if m != hit][-(watch - 1):] + [hit]
            stats["jumps"] += 1
            u = _advance(hit, u, a, eps, stats)
    stats["seconds"] = time.perf_counter() - start
    return (out, stats) if return_stats else out


def base_lower_bound_grid(L: int, d: int = 128, rounds: int = 5, start: float | None = None) -> tuple[float, int]:
    """The article's search: from ``B = 1000 L``, for ``k = 1..rounds`` test ``B j / 10^k`` (``j = 1..10^k``) and keep
    the first feasible one. Returns ``(B, evaluations)``: a feasible base, hence an upper bound on ``b*``; it can lie
    well above ``b*`` because feasibility is not monotone in the base. Raises ``ValueError`` when neither the start
    nor any grid point is feasible (the start would otherwise come back as a false "upper bound")."""
    L = _check_L(L)
    B = 1000.0 * L if start is None else _check_base(start, minimum=1.0)
    evaluations, feasible = 0, False
    for k in range(1, rounds + 1):
        for b in np.linspace(0, 1, 10**k + 1)[1:] * B:
            if b <= 1:
                continue
            evaluations += 1
            if first_violation(b, L, d) is None:
                B, feasible = float(b), True
                break
    if not feasible:
        evaluations += 1
        if first_violation(B, L, d) is not None:
            raise ValueError(f"start = {B:g} is infeasible for L = {L}, d = {d}, and no grid point below it is feasible")
    return B, evaluations


def inverse_curve(bases, L_max: int, d: int = 128) -> np.ndarray:
    """``M(b)``: the first violated ``m`` for each base (``L_max`` when there is none below ``L_max``)."""
    L_max = _check_L(L_max, "L_max")
    out = []
    for b in np.asarray(bases, dtype=float):
        m = first_violation(float(b), L_max, d)
        out.append(L_max if m is None else m)
    return np.array(out)


# --------------------------------------------------------------- length extrapolation (9948)
def _check_scale(scale: object, name: str = "scale", minimum: float = 1.0) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or not math.isfinite(scale):
        raise ValueError(f"{name} must be a finite number, got {scale!r}")
    if scale < minimum:
        raise ValueError(f"{name} must be >= {minimum:g} (an extension factor L_test / L_train), got {scale}")
    return float(scale)


def relative_positions(n: int, scheme: str = "rope", *, window: int | None = None, k_leak: float | None = None, scale: float = 1.0) -> np.ndarray:
    """The ``(n, n)`` relative positions ``P[m, j] = m - j`` (query minus key) after a training-free scheme.

    ``"rope"``: unchanged; ``"pi"``: divided by ``scale``; ``"leaky_rerope"``: ``P`` inside the window ``P < w``,
    ``w + (P - w) / k_leak`` outside; ``"rerope"``: ``min(P, w)``. Entries above the diagonal (``P < 0``) are
    left as ``m - j`` for the caller's causal mask.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    P = np.subtract.outer(np.arange(n), np.arange(n)).astype(float)
    if scheme == "rope":
        return P
    if scheme == "pi":
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return P / scale
    if scheme not in ("leaky_rerope", "rerope"):
        raise ValueError(f"scheme must be 'rope', 'pi', 'leaky_rerope' or 'rerope', got {scheme!r}")
    if window is None or window < 1:
        raise ValueError(f"scheme {scheme!r} needs a window >= 1, got {window!r}")
    if scheme == "rerope":
        return np.where(P < window, P, float(window))
    if k_leak is None or not k_leak > 1:
        raise ValueError(f"leaky_rerope needs k_leak > 1, got {k_leak!r}")
    return np.where(P < window, P, window + (P - window) / k_leak)


def _complex_pairs(x: np.ndarray) -> np.ndarray:
    return x[..., 0::2] + 1j * x[..., 1::2]


def scores_from_relative(q: np.ndarray, k: np.ndarray, P: np.ndarray, theta) -> np.ndarray:
    """Reference RoPE scores for an arbitrary relative-position matrix: ``Re sum_i q~_i conj(k~_i) exp(i P theta_i)``.

    ``q``, ``k``: ``(n, d)`` (interleaved pairs); ``O(n^2 d)``. With ``P = m - j`` this is ordinary RoPE.
    """
    theta = np.asarray(theta, dtype=float)
    h = _complex_pairs(np.asarray(q))[:, None, :] * np.conj(_complex_pairs(np.asarray(k)))[None, :, :]
    return np.real((h * np.exp(1j * np.asarray(P)[..., None] * theta)).sum(-1))


def rerope_scores(q: np.ndarray, k: np.ndarray, theta, window: int, k_leak: float = math.inf) -> np.ndarray:
    """(Leaky) ReRoPE scores by two ordinary RoPE passes (valid on the causal part ``j <= m``).

    Pass 1 rotates ``q`` by ``m`` and ``k`` by ``j`` (relative ``m - j``); pass 2 rotates ``q`` by
    ``m / k + w (1 - 1/k)`` and ``k`` by ``j / k`` (relative ``w + (m - j - w)/k``), or for ReRoPE (``k = inf``)
    ``q`` by ``w`` and ``k`` not at all. Each entry takes pass 1 inside the window and pass 2 outside.
    """
    n = q.shape[0]
    m = np.arange(n, dtype=float)
    inside = rope_rotate(q, m, theta) @ rope_rotate(k, m, theta).T
    if math.isinf(k_leak):
        outside = rope_rotate(q, np.full(n, float(window)), theta) @ k.T
    else:
        outside = rope_rotate(q, m / k_leak + window * (1 - 1 / k_leak), theta) @ rope_rotate(k, m / k_leak, theta).T
    return np.where(np.subtract.outer(m, m) < window, inside, outside)


def rotation_turns(theta, L_train: int) -> np.ndarray:
    """``r_i = L_train theta_i / (2 pi)``: how many full turns frequency ``i`` made over the training length."""
    return _check_L(L_train, "L_train") * np.asarray(theta, dtype=float) / (2 * math.pi)


def pi_freqs(theta, scale: float) -> np.ndarray:
    """Position interpolation: every frequency divided by ``scale = L_test / L_train``."""
    return np.asarray(theta, dtype=float) / _check_scale(scale)


def ntk_freqs(d: int, base: float, scale: float) -> np.ndarray:
    """NTK-aware RoPE: the base multiplied by ``kappa = scale^(d / (d - 2))``, so the lowest frequency is divided by ``scale``."""
    d = _check_dim(d)
    return rope_freqs(d, base * _check_scale(scale) ** (d / (d - 2)))


def yarn_freqs(d: int, base: float, L_train: int, scale: float, alpha: float = 1.0, beta: float = 32.0) -> np.ndarray:
    """YaRN's frequencies ``[gamma + (1 - gamma)/s] theta_i`` with ``gamma = clip((r_i - alpha)/(beta - alpha), 0, 1)``:
    frequencies with ``r_i >= beta`` turns are kept, those with ``r_i <= alpha`` interpolated, a linear ramp between."""
    scale = _check_scale(scale)
    if not beta > alpha:
        raise ValueError(f"beta must exceed alpha, got alpha = {alpha}, beta = {beta}")
    theta = rope_freqs(d, base)
    gamma = np.clip((rotation_turns(theta, L_train) - alpha) / (beta - alpha), 0, 1)
    return (gamma + (1 - gamma) / scale) * theta


def yarn_logit_scale(scale: float) -> float:
    """YaRN's attention-logit factor ``(1 + 0.1 ln s)^2`` (``0.1 ln s + 1`` applied to both q and k)."""
    return (1 + 0.1 * math.log(_check_scale(scale))) ** 2


def logn_scale(pos, L_train: int) -> np.ndarray:
    """The entropy-invariance factor ``max(1, ln pos / ln L_train)`` (positions from 1)."""
    L_train = _check_L(L_train, "L_train")
    p = np.maximum(np.asarray(pos, dtype=float), 1.0)
    return np.maximum(1.0, np.log(p) / math.log(L_train))


def dynamic_scale(pos, L_train: int) -> np.ndarray:
    """Dynamic scaling: ``s(pos) = max(L_train, pos + 1) / L_train`` (positions from 0)."""
    L_train = _check_L(L_train, "L_train")
    return np.maximum(L_train, np.asarray(pos, dtype=float) + 1) / L_train


def ood_fraction(theta_new, theta_train, L_train: int, L_test: int, P: np.ndarray | None = None) -> np.ndarray:
    """Per frequency, the fraction of test relative positions whose rotation was never seen in training.

    Training at length ``L_train`` realises the angles ``[0, L_train theta_i]`` (every angle once that
    reaches a full turn). A test position ``P`` (default ``0 .. L_test - 1``) is out of distribution for
    frequency ``i`` when ``P theta'_i`` taken modulo ``2 pi`` falls outside that arc: the rotation matrix
    only depends on the angle modulo ``2 pi``.
    """
    theta_new = np.asarray(theta_new, dtype=float)
    arc = _check_L(L_train, "L_train") * np.asarray(theta_train, dtype=float)
    P = np.arange(_check_L(L_test, "L_test"), dtype=float) if P is None else np.asarray(P, dtype=float).ravel()
    angle = np.mod(np.outer(P, theta_new), 2 * math.pi)
    out = (angle > arc[None, :]) & (arc[None, :] < 2 * math.pi)
    return out.mean(0)
