"""Pseudo-summary pre-training pairs (T5 PEGASUS) and the T5 parameter count.

Serves the notebook ``t5-pegasus`` (kexue.fm/archives/8209; PEGASUS: Zhang et al., arXiv:1912.08777; T5: Raffel
et al. 2020; mT5: Xue et al. 2021).

Conventions
-----------
* A document is a list of sentences, each a list of tokens (words for English, characters for Chinese).
* ``pseudo_summary`` picks ``m = max(1, round(ratio * n))`` sentences as the target ("summary"); the others are
  the source. Both sides are concatenated **in document order**, and the score compares the two
  concatenations: ``'lcs'`` is the raw LCS length (T5 PEGASUS), ``'rougeL'`` the ROUGE-L F1 and ``'rouge1'``
  the ROUGE-1 F1 (PEGASUS's sentence score) of target against source.
* ``method='greedy'`` adds one sentence at a time, the one that maximises the score of the enlarged target
  against the remaining source (the article's algorithm); ``'exhaustive'`` tries all ``C(n, m)`` subsets.
  Ties go to the lowest sentence index (greedy) or the lexicographically first subset (exhaustive).
  ``'independent'`` scores each sentence alone against the rest of the document and keeps the top ``m`` (ties to
  the lowest index); with ``criterion='rouge1'`` this is PEGASUS's default selection, "Ind-Orig" (Zhang et al.
  2020, sections 3.1 and 6.1.2), while greedy with ``'rouge1'`` is their sequential variant "Seq-Orig".
* ``t5_param_count`` counts a T5 encoder-decoder exactly: attention ``q, k, v, o`` (no biases), a gated
  (3-matrix) or plain (2-matrix) feed-forward block, RMSNorm weight vectors (2 per encoder layer, 3 per decoder
  layer, 1 final per stack), one relative-position bias table ``buckets x heads`` per stack, and the embeddings:
  ``2 d V`` untied (input embedding + LM head, mT5 and T5 PEGASUS) or ``d V`` tied (the original T5).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from .lcs import _as_tokens, lcs_length, rouge_1, rouge_l

__all__ = ["PseudoSummary", "pseudo_summary", "pair_score", "t5_param_count"]

_CRITERIA = ("lcs", "rougeL", "rouge1")


@dataclass
class PseudoSummary:
    """Result of :func:`pseudo_summary`.

    ``target_idx``: the picked sentences (sorted); ``source_idx``: the others (sorted); ``score``: the criterion
    of the final pair; ``trace``: ``(added index, score after adding it)`` per greedy step (empty for
    ``'exhaustive'``); ``evaluations``: how many candidate targets were scored.
    """

    target_idx: list[int]
    source_idx: list[int]
    score: float
    trace: list[tuple[int, float]] = field(default_factory=list)
    evaluations: int = 0

    def target(self, sentences: Sequence[Sequence[Hashable]]) -> list[Hashable]:
        """The target tokens: the picked sentences concatenated in document order."""
        return [t for i in self.target_idx for t in sentences[i]]

    def source(self, sentences: Sequence[Sequence[Hashable]]) -> list[Hashable]:
        """The source tokens: the remaining sentences concatenated in document order."""
        return [t for i in self.source_idx for t in sentences[i]]


def pair_score(target: Sequence[Hashable], source: Sequence[Hashable], criterion: str = "lcs") -> float:
    """Score of a (target, source) pair: ``'lcs'`` (LCS length, an int), ``'rougeL'`` or ``'rouge1'`` (F1 of
    target against source). Notebook t5-pegasus (8209). Raises ``ValueError`` for an unknown ``criterion``.
    """
    if criterion == "lcs":
        return lcs_length(target, source)
    if criterion == "rougeL":
        return rouge_l(target, source)[2]
    if criterion == "rouge1":
        return rouge_1(target, source)[2]
    raise ValueError(f"criterion must be one of {_CRITERIA}, got {criterion!r}")


def _concat(sents: list[list[Hashable]], idx: Sequence[int]) -> list[Hashable]:
    return [t for i in idx for t in sents[i]]


def pseudo_summary(
    sentences: list[list[str]],
    ratio: float = 0.25,
    criterion: str = "lcs",
    method: str = "greedy",
    max_subsets: int = 100_000,
) -> PseudoSummary:
    """Pick ``m = max(1, round(ratio n))`` of the ``n`` sentences as a pseudo-summary (T5 PEGASUS, article 8209).

    Greedy (the article): step ``k`` adds the sentence that maximises ``criterion(target + it, rest)`` with both
    sides in document order; ties go to the lowest index. ``method='exhaustive'`` maximises over all subsets.
    ``method='independent'`` scores each sentence alone against the rest and keeps the ``m`` best (PEGASUS's
    Ind-Orig with ``criterion='rouge1'``); its ``score`` is the criterion of the resulting pair and
    ``evaluations`` is ``n``.
    The target and source index sets are disjoint and cover ``range(n)``. Raises ``ValueError`` if ``n < 2``,
    ``ratio`` is not in (0, 1), ``criterion``/``method`` is unknown, ``m == n``, or the exhaustive search would
    score more than ``max_subsets`` subsets; ``TypeError`` if ``sentences`` is not a list of token sequences.
    """
    if not isinstance(sentences, (list, tuple)):
        raise TypeError(f"sentences must be a list of token lists, got {type(sentences).__name__}")
    sents = [_as_tokens(s, f"sentences[{k}]") for k, s in enumerate(sentences)]
    n = len(sents)
    if n < 2:
        raise ValueError(f"sentences must hold at least 2 sentences, got {n}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"ratio must be a real number, got {type(ratio).__name__}")
    if not (math.isfinite(ratio) and 0 < ratio < 1):
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}, got {criterion!r}")
    if method not in ("greedy", "exhaustive", "independent"):
        raise ValueError(f"method must be 'greedy', 'exhaustive' or 'independent', got {method!r}")
    m = max(1, round(ratio * n))
    if m >= n:
        raise ValueError(f"ratio={ratio} picks all {n} sentences; the source would be empty")

    def score_of(target: Sequence[int]) -> float:
        chosen = set(target)
        rest = [i for i in range(n) if i not in chosen]
        return pair_score(_concat(sents, sorted(target)), _concat(sents, rest), criterion)

    if method == "independent":
        alone = [score_of([i]) for i in range(n)]
        top = sorted(sorted(range(n), key=lambda i: (-alone[i], i))[:m])
        return PseudoSummary(top, [i for i in range(n) if i not in top], score_of(top), [], n)

    if method == "exhaustive":
        total = math.comb(n, m)
        if total > max_subsets:
            raise ValueError(f"exhaustive search needs C({n},{m}) = {total} subsets > max_subsets = {max_subsets}")
        best: tuple[int, ...] | None = None
        best_score = -math.inf
        for subset in combinations(range(n), m):
            s = score_of(subset)
            if s > best_score:
                best, best_score = subset, s
        assert best is not None
        target = list(best)
        return PseudoSummary(target, [i for i in range(n) if i not in best], best_score, [], total)

    target: list[int] = []
    trace: list[tuple[int, float]] = []
    evaluations = 0
    score: float = 0
    for _ in range(m):
        best_i, best_s = -1, -math.inf
        for i in range(n):
            if i in target:
                continue
            s = score_of(target + [i])
            evaluations += 1
            if s > best_s:
                best_i, best_s = i, s
        target.append(best_i)
        score = best_s
        trace.append((best_i, best_s))
    chosen = sorted(target)
    return PseudoSummary(chosen, [i for i in range(n) if i not in target], score, trace, evaluations)


def t5_param_count(
    V: int,
    d: int = 768,
    d_ff: int = 2048,
    layers: int = 12,
    heads: int = 12,
    d_kv: int = 64,
    buckets: int = 32,
    tied: bool = False,
    gated: bool = True,
    decoder_layers: int | None = None,
) -> int:
    """Exact parameter count of a T5 / mT5 encoder-decoder with vocabulary ``V`` (notebook t5-pegasus, 8209).

    ``P(V) = L_e (4 d h d_kv + f d d_ff + 2 d) + L_d (8 d h d_kv + f d d_ff + 3 d) + 2 d + 2 buckets h + e d V``
    with ``f = 3`` (gated-GELU, T5 v1.1 / mT5) or 2 (ReLU, original T5) and ``e = 2`` untied or 1 tied. The
    defaults are mT5-base: ``P(50000) = 275 029 248`` (T5 PEGASUS), ``P(250112) = 582 401 280`` (mT5-base).
    ``decoder_layers`` defaults to ``layers``. Raises ``ValueError`` for non-positive sizes.
    """
    dec = layers if decoder_layers is None else decoder_layers
    for name, val in (("V", V), ("d", d), ("d_ff", d_ff), ("layers", layers), ("heads", heads), ("d_kv", d_kv),
                      ("buckets", buckets), ("decoder_layers", dec)):
        if isinstance(val, bool) or not isinstance(val, int):
            raise TypeError(f"{name} must be an int, got {type(val).__name__}")
        if val < 1:
            raise ValueError(f"{name} must be >= 1, got {val}")
    attn = 4 * d * heads * d_kv
    ffn = (3 if gated else 2) * d * d_ff
    encoder = layers * (attn + ffn + 2 * d) + d + buckets * heads
    decoder = dec * (2 * attn + ffn + 3 * d) + d + buckets * heads
    embeddings = (1 if tied else 2) * d * V
    return encoder + decoder + embeddings
