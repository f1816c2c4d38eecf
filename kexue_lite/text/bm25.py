"""An inverted index and BM25 scoring, with the conventions of tantivy and bm25s made explicit.

Notebook ``book/notes/bm25-site-search.md`` (article 10088, Cool Papers' site search). Notation: a query term ``t``
has document frequency ``df`` among ``N`` documents; a document of length ``dl`` contains it ``tf`` times; ``avgdl``
is the mean document length. The BM25 score of a document is the sum over the (distinct) query terms of

    idf(df, N) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))        (BM25, Robertson et al. 1994)

tantivy keeps the factor ``k1 + 1``, Lucene >= 8 and bm25s ``method='lucene'`` drop it (a constant factor, so the
ranking is the same); tantivy also stores ``dl`` in one byte (:func:`tantivy_fieldnorm`) while ``avgdl`` is exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .tokenize import tokenize_words

__all__ = [
    "TANTIVY_FIELDNORM_TABLE",
    "SEARCH_PATTERN",
    "InvertedIndex",
    "bm25_idf",
    "bm25_tf",
    "bm25_scores",
    "bm25_term_scores",
    "tantivy_fieldnorm",
    "tantivy_fieldnorm_id",
    "sanitize_query",
    "search_tokens",
    "top_k",
]

SEARCH_PATTERN = r"[a-z0-9]+"
IDF_VARIANTS = ("lucene", "robertson", "robertson_clipped", "atire")


def _decode_fieldnorm_byte(code: int) -> int:
    """Length represented by the one-byte code ``code`` (0..255) in tantivy's (and Lucene's) field-norm scheme.

    Codes below 24 stand for themselves; above, ``c = code - 24`` is a tiny float: 3 mantissa bits ``c & 7`` and an
    exponent ``c >> 3``; with exponent 0 the value is ``24 + (c & 7)``, else ``24 + ((c & 7) | 8) << (exponent - 1)``.
    """
    if code < 24:
        return code
    c = code - 24
    mantissa, exponent = c & 7, c >> 3
    return 24 + (mantissa if exponent == 0 else (mantissa | 8) << (exponent - 1))


#: The 256 lengths tantivy can store (its field-norm decode table), increasing; exact for every length <= 40.
TANTIVY_FIELDNORM_TABLE: np.ndarray = np.array([_decode_fieldnorm_byte(i) for i in range(256)], dtype=np.int64)
TANTIVY_FIELDNORM_TABLE.setflags(write=False)


def _as_count_array(x, name: str) -> np.ndarray:
    """Non-negative integer counts (Python ints, integer arrays, or floats holding whole numbers are refused: counts)."""
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers (counts), got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got min {arr.min()}")
    return arr.astype(np.int64)


def _as_real_array(x, name: str, *, positive: bool = False) -> np.ndarray:
    """A finite, non-negative (or positive) real array; integer counts are accepted and promoted to float64."""
    arr = np.asarray(x)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a real number or array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if positive and arr.size and arr.min() <= 0:
        raise ValueError(f"{name} must be positive, got min {arr.min()}")
    if not positive and arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got min {arr.min()}")
    return arr


def _check_params(k1: float, b: float) -> None:
    if isinstance(k1, bool) or not isinstance(k1, (int, float, np.integer, np.floating)):
        raise TypeError(f"k1 must be a real number, got {type(k1).__name__}")
    if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)):
        raise TypeError(f"b must be a real number, got {type(b).__name__}")
    if not np.isfinite(k1) or k1 < 0:
        raise ValueError(f"k1 must be finite and >= 0, got {k1}")
    if not np.isfinite(b) or not 0 <= b <= 1:
        raise ValueError(f"b must lie in [0, 1], got {b}")


def tantivy_fieldnorm_id(lengths: np.ndarray | int) -> np.ndarray:
    """The one-byte code tantivy stores for a document length: the largest table entry <= the length (floor lookup).

    Lengths beyond the last entry (2013265944) get code 255, as in tantivy. Notebook bm25-site-search.
    """
    arr = _as_count_array(lengths, "lengths")
    return (np.searchsorted(TANTIVY_FIELDNORM_TABLE, arr, side="right") - 1).astype(np.int64)


def tantivy_fieldnorm(lengths: np.ndarray | int) -> np.ndarray:
    """The document length tantivy uses in BM25: ``length`` rounded *down* to its 256-entry table.

    Exact for lengths 0..40; above that the spacing grows geometrically (42, 44, ..., 56, 60, 64, ..., 88, 96, ...),
    so a length of 157 is scored as 152. ``avgdl`` is *not* quantised (tantivy divides the exact token total by N).
    Notebook bm25-site-search.
    """
    return TANTIVY_FIELDNORM_TABLE[tantivy_fieldnorm_id(lengths)]


class InvertedIndex:
    """Postings ``term -> (doc_ids, tf)`` for a tokenised corpus (notebook bm25-site-search).

    ``docs`` is a list of token lists. Attributes: ``N`` (documents), ``doc_len`` (int64 token counts), ``avgdl``
    (exact mean length, float), ``postings`` (doc ids sorted ascending, int64, with the matching term frequencies,
    int64). Documents may be empty; the corpus may not, and must hold at least one token.
    """

    def __init__(self, docs: Sequence[Sequence[str]]):
        if isinstance(docs, (str, bytes)) or not isinstance(docs, Sequence):
            raise TypeError(f"docs must be a list of token lists, got {type(docs).__name__}")
        if len(docs) == 0:
            raise ValueError("docs must not be empty")
        lists: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(len(docs), dtype=np.int64)
        for i, doc in enumerate(docs):
            if isinstance(doc, (str, bytes)) or not isinstance(doc, Sequence):
                raise TypeError(f"docs[{i}] must be a list of str tokens (tokenise first), got {type(doc).__name__}")
            counts: dict[str, int] = {}
            for tok in doc:
                if not isinstance(tok, str) or not tok:
                    raise TypeError(f"docs[{i}] must hold non-empty str tokens, got {tok!r}")
                counts[tok] = counts.get(tok, 0) + 1
            lengths[i] = len(doc)
            for tok, c in counts.items():
                ids, tfs = lists.setdefault(tok, ([], []))
                ids.append(i)
                tfs.append(c)
        if lengths.sum() == 0:
            raise ValueError("docs must contain at least one token in total (avgdl would be 0)")
        self.N: int = len(docs)
        self.doc_len: np.ndarray = lengths
        self.avgdl: float = float(lengths.sum() / self.N)
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {
            t: (np.asarray(ids, dtype=np.int64), np.asarray(tfs, dtype=np.int64)) for t, (ids, tfs) in lists.items()
        }

    def df(self, term: str) -> int:
        """Document frequency: how many documents contain ``term`` (0 if none)."""
        if not isinstance(term, str):
            raise TypeError(f"term must be a str, got {type(term).__name__}")
        entry = self.postings.get(term)
        return 0 if entry is None else int(entry[0].size)

    @property
    def vocabulary(self) -> list[str]:
        """The indexed terms, sorted."""
        return sorted(self.postings)

    def tf_matrix(self, terms: Sequence[str]) -> np.ndarray:
        """Dense ``(len(terms), N)`` int64 term-frequency matrix (for checks; the index exists to avoid it)."""
        out = np.zeros((len(terms), self.N), dtype=np.int64)
        for r, t in enumerate(terms):
            if t in self.postings:
                ids, tfs = self.postings[t]
                out[r, ids] = tfs
        return out

    def __repr__(self) -> str:
        return f"InvertedIndex(N={self.N}, terms={len(self.postings)}, avgdl={self.avgdl:.3f})"


def bm25_idf(df: np.ndarray | int, N: int, variant: str = "lucene") -> np.ndarray:
    """BM25 inverse document frequency (float64), notebook bm25-site-search.

    ``'robertson'``: the Robertson-Sparck Jones weight with no relevance information, ``ln((N - df + 1/2)/(df + 1/2))``
    (negative once ``df > N/2``); ``'lucene'`` (tantivy, Lucene, bm25s default): ``ln(1 + (N - df + 1/2)/(df + 1/2))``
    ``= ln((N + 1)/(df + 1/2)) > 0``; ``'robertson_clipped'`` (bm25s ``method='robertson'``): ``max(0, robertson)``;
    ``'atire'`` (bm25s ``method='atire'``): ``ln(N/df)``, which needs ``df >= 1``.
    """
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"N must be an int, got {type(N).__name__}")
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    if variant not in IDF_VARIANTS:
        raise ValueError(f"variant must be one of {IDF_VARIANTS}, got {variant!r}")
    d = _as_count_array(df, "df").astype(np.float64)
    if d.size and d.max() > N:
        raise ValueError(f"df must be <= N = {N}, got max {d.max():.0f}")
    if variant == "lucene":
        return np.log1p((N - d + 0.5) / (d + 0.5))
    if variant == "atire":
        if d.size and d.min() < 1:
            raise ValueError("df must be >= 1 for variant='atire' (ln(N/df) is infinite at df = 0)")
        return np.log(N / d)
    rsj = np.log((N - d + 0.5) / (d + 0.5))
    return np.maximum(rsj, 0.0) if variant == "robertson_clipped" else rsj


def bm25_tf(tf, dl, avgdl, k1: float = 1.2, b: float = 0.75, with_k1p1: bool = True) -> np.ndarray:
    """The BM25 term-frequency factor ``tf (k1 + 1) / (tf + K)``, ``K = k1 (1 - b + b dl/avgdl)`` (notebook bm25-site-search).

    ``with_k1p1=False`` drops the constant ``k1 + 1`` (Lucene >= 8, bm25s 'lucene' and 'robertson'). ``tf = 0`` gives 0
    (also at ``k1 = 0``, where the factor is 1 for every ``tf > 0``). Broadcasts; float32 inputs stay float32,
    integers become float64.
    """
    _check_params(k1, b)
    t = _as_real_array(tf, "tf")
    d = _as_real_array(dl, "dl")
    a = _as_real_array(avgdl, "avgdl", positive=True)
    dtype = np.result_type(t.dtype, d.dtype, a.dtype)
    t, d, a = t.astype(dtype), d.astype(dtype), a.astype(dtype)
    K = dtype.type(k1) * (dtype.type(1 - b) + dtype.type(b) * d / a)
    scale = dtype.type(k1 + 1) if with_k1p1 else dtype.type(1)
    den = t + K
    safe = np.where(den > 0, den, dtype.type(1))
    return np.where(t > 0, scale * t / safe, dtype.type(0)).astype(dtype)


def _query_terms(query_tokens: Sequence[str], dedupe: bool) -> list[str]:
    if isinstance(query_tokens, (str, bytes)) or not isinstance(query_tokens, Sequence):
        raise TypeError(f"query_tokens must be a list of str tokens, got {type(query_tokens).__name__}")
    for tok in query_tokens:
        if not isinstance(tok, str) or not tok:
            raise TypeError(f"query_tokens must hold non-empty str tokens, got {tok!r}")
    return list(dict.fromkeys(query_tokens)) if dedupe else list(query_tokens)


def bm25_term_scores(index: InvertedIndex, query_tokens: Sequence[str], k1: float = 1.2, b: float = 0.75,
                     idf: str = "lucene", length_norm: str | None = None, dedupe: bool = True,
                     with_k1p1: bool = True) -> np.ndarray:
    """Per-term BM25 contributions, shape ``(len(terms), N)`` float64; row ``j`` is query term ``j``'s part.

    Term-at-a-time: only the postings of the query terms are read. Terms absent from the index contribute a zero
    row. ``length_norm='tantivy'`` replaces each ``dl`` by :func:`tantivy_fieldnorm` (``avgdl`` stays exact).
    ``dedupe=True`` keeps the first occurrence of each repeated term, as tantivy's query parser does. Notebook
    bm25-site-search.
    """
    if not isinstance(index, InvertedIndex):
        raise TypeError(f"index must be an InvertedIndex, got {type(index).__name__}")
    _check_params(k1, b)
    if length_norm not in (None, "tantivy"):
        raise ValueError(f"length_norm must be None or 'tantivy', got {length_norm!r}")
    terms = _query_terms(query_tokens, dedupe)
    dl = tantivy_fieldnorm(index.doc_len) if length_norm == "tantivy" else index.doc_len
    out = np.zeros((len(terms), index.N), dtype=np.float64)
    for r, t in enumerate(terms):
        if t not in index.postings:
            continue
        ids, tfs = index.postings[t]
        w = bm25_idf(ids.size, index.N, idf)
        out[r, ids] = w * bm25_tf(tfs, dl[ids], index.avgdl, k1, b, with_k1p1)
    return out


def bm25_scores(index: InvertedIndex, query_tokens: Sequence[str], k1: float = 1.2, b: float = 0.75,
                idf: str = "lucene", length_norm: str | None = None, dedupe: bool = True,
                with_k1p1: bool = True) -> np.ndarray:
    """BM25 scores of all ``N`` documents for a bag-of-words query (OR semantics: per-term scores are summed).

    float64, shape ``(N,)``; documents without any query term score 0, and so does every document for an empty query
    (a sum over no terms). See :func:`bm25_term_scores` for the options. Notebook bm25-site-search.
    """
    return bm25_term_scores(index, query_tokens, k1, b, idf, length_norm, dedupe, with_k1p1).sum(axis=0)


def sanitize_query(q: str) -> str:
    """Cool Papers' query rule: lowercase, every character other than ``a-z``/``0-9`` becomes a space, spaces collapse.

    ``"Gaussian-Mixture!!"`` -> ``"gaussian mixture"``. Non-ASCII letters are removed too (the rule keeps English
    letters and digits only). Notebook bm25-site-search.
    """
    if not isinstance(q, str):
        raise TypeError(f"q must be a str, got {type(q).__name__}")
    return re.sub(r"[^a-z0-9]+", " ", q.lower()).strip()


def search_tokens(text: str) -> list[str]:
    """Tokens for search: ``tokenize_words(text, pattern=SEARCH_PATTERN)``, the lowercase ``[a-z0-9]+`` runs.

    The same tokens as ``sanitize_query(text).split()``.

    On ASCII text this equals tantivy's default tokenizer (split on non-alphanumerics, lowercase) except that tantivy
    also drops tokens of 40 bytes or more (and leaves them out of the document length). On non-ASCII text they
    differ: tantivy keeps Unicode letters inside a token (``naïve``), this splits there (``na``, ``ve``), as Cool
    Papers' query rule does. Notebook bm25-site-search.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return tokenize_words(text, pattern=SEARCH_PATTERN)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first; ties go to the smaller document id (a stable sort).

    ``k`` larger than ``len(scores)`` returns all of them. Notebook bm25-site-search.
    """
    s = np.asarray(scores)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)) or s.dtype == bool:
        raise TypeError(f"scores must be real, got dtype {s.dtype}")
    if np.issubdtype(s.dtype, np.floating) and not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (no NaN or inf)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return np.argsort(-s.astype(np.float64), kind="stable")[: min(int(k), s.size)].astype(np.int64)
