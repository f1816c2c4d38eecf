"""Causal attention as an RNN: streaming softmax and recomputation without a KV cache (attention-as-quadratic-rnn, 10017).

The notebook ``book/attention/attention-as-quadratic-rnn.md`` uses these functions:

- :func:`streaming_softmax_attention`: one query against a stream of keys and values, with the numerator
  :math:`y` and denominator :math:`z` of :math:`\\sum_j e^{s_j}(v_j, 1)` updated one key at a time and kept
  relative to a running maximum :math:`m` (the recurrence behind memory-efficient attention and FlashAttention).
- :class:`RecomputeAttentionLM`: a tiny causal attention LM that can decode with no KV cache at all, recomputing
  every key and value from the token ids, with counters of the work done and of the working memory.
- :func:`recompute_cost`: the exact number of embedding look-ups of that cache-free decoder,
  :math:`T_N(L)=\\sum_{t<L}C_N(t)` with :math:`C_0=1`, :math:`C_l(t)=C_{l-1}(t)+\\sum_{j\\le t}C_{l-1}(j)`.
- :func:`state_size`: the article's minimal "RNN state" of an attention LM, :math:`2\\cdot\\text{hidden}\\cdot\\text{layers}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["streaming_softmax_attention", "RecomputeAttentionLM", "recompute_cost", "state_size"]


def _float_vector(x: Any, name: str) -> np.ndarray:
    """A finite 1-D floating array (float32 or float64); ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array (float32 or float64), got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _positive_int(x: Any, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {x}")
    return int(x)


def _stream(q: np.ndarray, pairs: Iterator[tuple[np.ndarray, np.ndarray]], scale: float, want_trace: bool,
            ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """The online-softmax recurrence over (key, value) pairs (the article's eq. 2, with a running max).

    ``m_t = max(m_{t-1}, s_t)``, ``y_t = y_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t} v_t``, ``z_t`` likewise with
    ``v_t = 1``; the output is ``y_T / z_T``. Only ``m``, ``y`` and ``z`` are kept between steps.
    """
    m = -np.inf
    y: np.ndarray | None = None
    z = 0.0
    trace: dict[str, list] = {"m": [], "y": [], "z": [], "s": []}
    d = q.shape[0]
    dtype = q.dtype
    for t, (k, v) in enumerate(pairs):
        k = _float_vector(k, f"keys[{t}]")
        v = _float_vector(v, f"values[{t}]")
        if k.shape != (d,):
            raise ValueError(f"keys[{t}] must have the query's shape ({d},), got {k.shape}")
        if y is not None and v.shape != y.shape:
            raise ValueError(f"values[{t}] must have shape {y.shape} like the values before it, got {v.shape}")
        dtype = np.result_type(dtype, k.dtype, v.dtype)
        s = float(q @ k) * scale
        m_new = max(m, s)
        decay = np.exp(m - m_new) if y is not None else 0.0
        w = np.exp(s - m_new)
        y = (w * v).astype(dtype) if y is None else (y * decay + w * v).astype(dtype)
        z = z * decay + w
        m = m_new
        if want_trace:
            trace["m"].append(m)
            trace["y"].append(y.copy())
            trace["z"].append(z)
            trace["s"].append(s)
    if y is None:
        raise ValueError("keys and values must hold at least one (key, value) pair: the history is empty")
    out = (y / z).astype(dtype)
    if not want_trace:
        return out, None
    return out, {"m": np.asarray(trace["m"], dtype=np.float64), "y": np.stack(trace["y"]),
                 "z": np.asarray(trace["z"], dtype=np.float64), "s": np.asarray(trace["s"], dtype=np.float64)}


def _zip_strict(keys: Iterable[Any], values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """Pairs from two iterables, each consumed once; ``ValueError`` if their lengths differ."""
    it_k, it_v = iter(keys), iter(values)
    sentinel = object()
    while True:
        k = next(it_k, sentinel)
        v = next(it_v, sentinel)
        if k is sentinel and v is sentinel:
            return
        if k is sentinel or v is sentinel:
            raise ValueError("keys and values must have the same length")
        yield k, v


def streaming_softmax_attention(q: np.ndarray, keys: Iterable[np.ndarray], values: Iterable[np.ndarray], *,
                                scale: float = 1.0, return_trace: bool = False,
                                ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Softmax attention of one query over a stream, ``sum_j e^{s_j} v_j / sum_j e^{s_j}`` with ``s_j = scale q.k_j``.

    The article's recurrence (its eq. 2) computed online: each key and value is read once and dropped, and only
    the running max ``m``, the numerator ``y`` (shape of a value) and the denominator ``z`` are kept
    (attention-as-quadratic-rnn, 10017). ``keys`` and ``values`` are consumed once, in order.

    Returns ``o`` (the dtype of the inputs, float32 or float64), or ``(o, trace)`` with ``trace`` a dict of arrays
    ``m`` (T,), ``y`` (T, d_v), ``z`` (T,) and the logits ``s`` (T,), row t being the state after key t.
    ``ValueError`` for an empty history, unequal lengths, shape mismatches or non-finite input; ``TypeError`` for
    integer arrays.
    """
    q = _float_vector(q, "q")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a real number, got {type(scale).__name__}")
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    out, trace = _stream(q, _zip_strict(keys, values), float(scale), bool(return_trace))
    return (out, trace) if return_trace else out


class RecomputeAttentionLM:
    """A causal single-head attention LM (numpy) that decodes with a KV cache or with none at all.

    Layer l maps ``x -> x + softmax_causal(x Wq (x Wk)^T * scale) x Wv Wo`` (no FFN, no positions), on top of an
    embedding table; weights are LeCun normal (std ``1/sqrt(d)``), the embedding standard normal, ``scale = 1/sqrt(d)``.

    :meth:`forward_full` is the usual masked computation. :meth:`hidden` computes one hidden state recursively with
    no cache: the query path and every key/value are recomputed from the token ids, down to the embedding, and
    the attention is the streaming recurrence. Counters (reset by :meth:`reset_counters`):

    - ``embedding_calls``: embedding look-ups (the cost :func:`recompute_cost` counts);
    - ``calls[layer, t]``: how often the hidden state (layer, t) was computed (an ``(n_layers+1, L)`` int array
      after the first call, grown as needed);
    - ``peak_frames``: the deepest nesting of :meth:`hidden` (N + 1: one frame per layer);
    - ``peak_live_floats``: the most floats held at once by the open frames, each layer-l >= 1 frame holding
      ``3d + 2`` (running max, ``y``, ``z``, ``q`` and its own input ``x_t``) and the embedding frame ``d``.
      The token ids themselves (O(L) integers) are not counted (attention-as-quadratic-rnn, 10017).
    """

    def __init__(self, vocab_size: int = 11, d: int = 8, n_layers: int = 3, seed: int = 0,
                 dtype: Any = np.float64) -> None:
        self.vocab_size = _positive_int(vocab_size, "vocab_size")
        self.d = _positive_int(d, "d")
        self.n_layers = _positive_int(n_layers, "n_layers")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        std = 1.0 / np.sqrt(self.d)
        self.embedding = rng.standard_normal((self.vocab_size, self.d)).astype(self.dtype)
        self.weights = [{name: (rng.standard_normal((self.d, self.d)) * std).astype(self.dtype)
                         for name in ("q", "k", "v", "o")} for _ in range(self.n_layers)]
        self.scale = float(std)
        self.reset_counters()

    # --- counters -------------------------------------------------------------------------------------------
    def reset_counters(self) -> None:
        """Zero ``embedding_calls``, ``calls``, the peaks and the live counts."""
        self.embedding_calls = 0
        self.calls = np.zeros((self.n_layers + 1, 0), dtype=np.int64)
        self.peak_frames = 0
        self.peak_live_floats = 0
        self._frames = 0
        self._live = 0

    def _frame_floats(self, layer: int) -> int:
        return self.d if layer == 0 else 3 * self.d + 2

    def _enter(self, layer: int, t: int) -> None:
        if t >= self.calls.shape[1]:
            grown = np.zeros((self.n_layers + 1, t + 1), dtype=np.int64)
            grown[:, : self.calls.shape[1]] = self.calls
            self.calls = grown
        self.calls[layer, t] += 1
        self._frames += 1
        self._live += self._frame_floats(layer)
        self.peak_frames = max(self.peak_frames, self._frames)
        self.peak_live_floats = max(self.peak_live_floats, self._live)

    def _exit(self, layer: int) -> None:
        self._frames -= 1
        self._live -= self._frame_floats(layer)

    # --- input checks ---------------------------------------------------------------------------------------
    def _tokens(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(tokens)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"tokens must be a non-empty 1-D sequence of ids, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"tokens must be integer ids, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= self.vocab_size:
            raise ValueError(f"tokens must lie in 0..{self.vocab_size - 1} (vocab_size), got {arr.min()}..{arr.max()}")
        return arr

    # --- the two computations -------------------------------------------------------------------------------
    def forward_full(self, tokens: Sequence[int] | np.ndarray, *, return_all: bool = False) -> np.ndarray:
        """All hidden states of the last layer, ``(L, d)``, by masked (quadratic-memory) attention.

        With ``return_all=True`` returns ``(n_layers + 1, L, d)``: the embedding, then each layer's output.
        """
        ids = self._tokens(tokens)
        x = self.embedding[ids]
        L = len(ids)
        allowed = np.tril(np.ones((L, L), dtype=bool))
        states = [x]
        for w in self.weights:
            logits = (x @ w["q"]) @ (x @ w["k"]).T * self.scale
            logits = np.where(allowed, logits, -np.inf)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            x = x + (p @ (x @ w["v"])) @ w["o"]
            states.append(x)
        return np.stack(states) if return_all else x

    def hidden(self, layer: int, t: int, tokens: Sequence[int] | np.ndarray, *, reuse_input: bool = False,
               ) -> np.ndarray:
        """The hidden state of ``layer`` (0 = embedding, ``n_layers`` = output) at position ``t``, recomputed
        from the token ids with no cache: O(N) frames of O(d) floats, whatever the length (10017).

        With ``reuse_input=True`` the key and value at ``j = t`` are formed from the frame's own input ``x_t``
        (which it holds anyway) instead of recomputing it: same output and memory, cost
        ``recompute_cost(N, L, reuse_input=True)``.
        """
        if not isinstance(reuse_input, (bool, np.bool_)):
            raise TypeError(f"reuse_input must be a bool, got {type(reuse_input).__name__}")
        ids = self._tokens(tokens)
        layer = _positive_int(layer, "layer", allow_zero=True)
        t = _positive_int(t, "t", allow_zero=True)
        if layer > self.n_layers:
            raise ValueError(f"layer must lie in 0..{self.n_layers} (n_layers), got {layer}")
        if t >= len(ids):
            raise ValueError(f"t must lie in 0..{len(ids) - 1} (positions of tokens), got {t}")
        return self._hidden(layer, t, ids, bool(reuse_input))

    def _hidden(self, layer: int, t: int, ids: np.ndarray, reuse: bool = False) -> np.ndarray:
        self._enter(layer, t)
        try:
            if layer == 0:
                self.embedding_calls += 1
                return self.embedding[ids[t]].copy()
            w = self.weights[layer - 1]
            x_t = self._hidden(layer - 1, t, ids, reuse)  # the query path is recomputed too
            q = x_t @ w["q"]

            def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for j in range(t + 1):  # one recomputation per key/value pair, then it is dropped
                    h = x_t if (reuse and j == t) else self._hidden(layer - 1, j, ids, reuse)
                    yield h @ w["k"], h @ w["v"]

            o, _ = _stream(q, pairs(), self.scale, False)
            return x_t + o @ w["o"]
        finally:
            self._exit(layer)

    def kv_cache_floats(self, L: int) -> int:
        """Floats a KV-cache decoder keeps after ``L`` tokens: ``2 N L d`` (a key and a value per layer and token)."""
        L = _positive_int(L, "L", allow_zero=True)
        return 2 * self.n_layers * L * self.d


def recompute_cost(n_layers: int, L: int, *, reuse_input: bool = False) -> int:
    """Embedding look-ups that the cache-free decoder needs to produce ``L`` tokens with ``n_layers`` layers.

    ``T_N(L) = sum_{t<L} C_N(t)`` with ``C_0(t) = 1`` and ``C_l(t) = C_{l-1}(t) + sum_{j<=t} C_{l-1}(j)`` (one
    recomputation for the query path, one per key/value), as exact Python integers (10017).
    With ``reuse_input=True`` the key at ``j = t`` reuses the query path's state, ``C_l(t) = sum_{j<=t} C_{l-1}(j)``
    (then ``C_N(t) = binom(t+N, N)`` and ``T_N(L) = binom(L+N, N+1)``).
    ``ValueError`` for negative inputs.
    """
    n_layers = _positive_int(n_layers, "n_layers", allow_zero=True)
    L = _positive_int(L, "L", allow_zero=True)
    if not isinstance(reuse_input, (bool, np.bool_)):
        raise TypeError(f"reuse_input must be a bool, got {type(reuse_input).__name__}")
    c = [1] * L
    for _ in range(n_layers):
        prefix, nxt = 0, []
        for ct in c:
            prefix += ct
            nxt.append(prefix if reuse_input else ct + prefix)
        c = nxt
    return sum(c)


def state_size(hidden: int, layers: int) -> int:
    """The article's minimal working state of an attention LM read as an RNN, ``2 * hidden * layers`` numbers (10017)."""
    return 2 * _positive_int(hidden, "hidden") * _positive_int(layers, "layers")
