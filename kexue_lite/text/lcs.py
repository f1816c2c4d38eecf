"""Longest common subsequence (LCS) and the ROUGE-L / ROUGE-1 scores built on token overlap.

Serves the notebook ``t5-pegasus`` (kexue.fm/archives/8209), whose pseudo-summaries maximise the LCS between the
picked sentences and the rest of the document.

Conventions
-----------
* Tokens are any hashable objects: word strings for English, single characters for Chinese (``list(text)``).
  A ``str`` argument is a sequence of characters.
* ``lcs_length`` is the bit-parallel algorithm (Allison & Dix 1986; Hyyro 2004) on Python integers: the state
  ``V`` is a bit-vector over ``a``; for each symbol ``c`` of ``b``, ``U = V & M[c]`` and
  ``V = ((V + U) | (V - U)) & mask``; at the end ``LCS = len(a) - popcount(V)``. Cost ``O(len(b) len(a) / w)``.
* ``rouge_l(candidate, reference)`` follows Lin (2004) and the ``rouge_score`` package:
  ``P = LCS / len(candidate)``, ``R = LCS / len(reference)``,
  ``F_beta = (1 + beta^2) P R / (R + beta^2 P) = (1 + beta^2) LCS / (len(candidate) + beta^2 len(reference))``;
  everything is 0 when the LCS is 0 (in particular when either side is empty).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

__all__ = [
    "lcs_length",
    "lcs_length_dp",
    "lcs_table",
    "lcs_backtrack",
    "rouge_l",
    "rouge_1",
]


def _as_tokens(x: object, name: str) -> list[Hashable]:
    if isinstance(x, (str, list, tuple)) or (isinstance(x, Sequence) and not isinstance(x, (bytes, bytearray))):
        tokens = list(x)
    elif isinstance(x, np.ndarray) and x.ndim == 1:
        tokens = x.tolist()
    else:
        raise TypeError(f"{name} must be a sequence of hashable tokens (list, tuple or str), got {type(x).__name__}")
    for t in tokens:
        try:
            hash(t)
        except TypeError:
            raise TypeError(f"{name} must hold hashable tokens, got {type(t).__name__}") from None
    return tokens


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of a longest common subsequence of ``a`` and ``b``, bit-parallel (notebook t5-pegasus, 8209).

    ``V`` starts as ``len(a)`` one-bits; per symbol ``c`` of ``b``: ``U = V & M[c]``,
    ``V = ((V + U) | (V - U)) & mask``; the answer is the number of zero bits of ``V``. Either argument empty
    gives 0. Raises ``TypeError`` if an argument is not a sequence of hashable tokens.
    """
    ta, tb = _as_tokens(a, "a"), _as_tokens(b, "b")
    if not ta or not tb:
        return 0
    if len(ta) < len(tb):  # the Python loop runs over the shorter sequence, the bit-vector spans the longer
        ta, tb = tb, ta
    masks: dict[Hashable, int] = {}
    for i, c in enumerate(ta):
        masks[c] = masks.get(c, 0) | (1 << i)
    full = (1 << len(ta)) - 1
    v = full
    for c in tb:
        m = masks.get(c)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(ta) - v.bit_count()


def lcs_table(a: Sequence[Hashable], b: Sequence[Hashable]) -> np.ndarray:
    """The dynamic-programming table ``T[i, j] = LCS(a[:i], b[:j])``, shape ``(len(a) + 1, len(b) + 1)``, int64.

    ``T[i, j] = T[i-1, j-1] + 1`` if ``a[i-1] == b[j-1]`` else ``max(T[i-1, j], T[i, j-1])``; ``O(len(a) len(b))``
    (notebook t5-pegasus, 8209; for plots and for checking ``lcs_length``).
    """
    ta, tb = _as_tokens(a, "a"), _as_tokens(b, "b")
    t = np.zeros((len(ta) + 1, len(tb) + 1), dtype=np.int64)
    for i in range(1, len(ta) + 1):
        ai = ta[i - 1]
        row, prev = t[i], t[i - 1]
        for j in range(1, len(tb) + 1):
            row[j] = prev[j - 1] + 1 if ai == tb[j - 1] else max(prev[j], row[j - 1])
    return t


def lcs_length_dp(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """``lcs_table(a, b)[-1, -1]``: the quadratic reference for :func:`lcs_length` (notebook t5-pegasus)."""
    return int(lcs_table(a, b)[-1, -1])


def lcs_backtrack(table: np.ndarray, a: Sequence[Hashable], b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Matched index pairs ``(i, j)`` (0-based, ``a[i] == b[j]``) of one LCS, in increasing order.

    Walks back from ``table[-1, -1]``: a match moves diagonally, otherwise it moves up when
    ``table[i-1, j] >= table[i, j-1]`` and left else. The result has ``table[-1, -1]`` pairs (notebook
    t5-pegasus, 8209). Raises ``ValueError`` if ``table`` does not have shape ``(len(a) + 1, len(b) + 1)``.
    """
    ta, tb = _as_tokens(a, "a"), _as_tokens(b, "b")
    table = np.asarray(table)
    if table.shape != (len(ta) + 1, len(tb) + 1):
        raise ValueError(f"table must have shape {(len(ta) + 1, len(tb) + 1)}, got {table.shape}")
    i, j = len(ta), len(tb)
    path: list[tuple[int, int]] = []
    while i > 0 and j > 0:
        if ta[i - 1] == tb[j - 1] and table[i, j] == table[i - 1, j - 1] + 1:
            path.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif table[i - 1, j] >= table[i, j - 1]:
            i -= 1
        else:
            j -= 1
    return path[::-1]


def _check_beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise TypeError(f"beta must be a real number, got {type(beta).__name__}")
    b = float(beta)
    if not math.isfinite(b) or b <= 0:
        raise ValueError(f"beta must be finite and > 0, got {beta}")
    return b


def _prf(overlap: int, m: int, n: int, beta: float) -> tuple[float, float, float]:
    if overlap == 0:
        return 0.0, 0.0, 0.0
    p, r = overlap / m, overlap / n
    return p, r, (1 + beta**2) * overlap / (m + beta**2 * n)


def rouge_l(
    candidate: Sequence[Hashable], reference: Sequence[Hashable], beta: float = 1.0
) -> tuple[float, float, float]:
    """ROUGE-L ``(P, R, F_beta)`` of ``candidate`` against ``reference`` (Lin 2004; notebook t5-pegasus, 8209).

    ``P = LCS/len(candidate)``, ``R = LCS/len(reference)``, ``F_beta = (1+beta^2) LCS/(len(candidate) +
    beta^2 len(reference))``; all 0 if the LCS is 0. With ``beta = 1`` it equals ``rouge_score``'s ``rougeL``
    (prediction = candidate, target = reference) on the same tokens. Raises ``ValueError`` if ``beta <= 0``.
    """
    b = _check_beta(beta)
    tc, tr = _as_tokens(candidate, "candidate"), _as_tokens(reference, "reference")
    return _prf(lcs_length(tc, tr), len(tc), len(tr), b)


def rouge_1(
    candidate: Sequence[Hashable], reference: Sequence[Hashable], beta: float = 1.0
) -> tuple[float, float, float]:
    """ROUGE-1 ``(P, R, F_beta)``: as :func:`rouge_l` with the LCS replaced by the clipped unigram overlap
    ``sum_w min(count_c(w), count_r(w))`` (the PEGASUS paper's sentence score; notebook t5-pegasus, 8209).
    """
    b = _check_beta(beta)
    tc, tr = _as_tokens(candidate, "candidate"), _as_tokens(reference, "reference")
    overlap = sum((Counter(tc) & Counter(tr)).values())
    return _prf(overlap, len(tc), len(tr), b)
