"""Tokenizers and sentence splitting for the notes part.

Serves the notebooks ``t5-pegasus`` (kexue.fm/archives/8209: the word+character tokenizer of T5 PEGASUS, and
forward maximum matching for Chinese) and ``bm25-site-search`` (kexue.fm/archives/10088: ``tokenize_words``).

Conventions
-----------
* ``tokenize_words`` lowercases (by default) and returns the matches of a regular expression, in order. With
  ``pattern=r"[a-z0-9]+"`` it is exactly the tokenizer of the ``rouge_score`` package without stemming (which
  lowercases, replaces everything outside ``[a-z0-9]`` by spaces and splits). The default pattern keeps hyphens,
  so ``"straight-through"`` is one token.
* ``split_sentences`` keeps each sentence's final punctuation. Western ``.!?`` end a sentence only when followed
  by whitespace or the end of the text (so ``3.5`` and ``e.g.x`` stay whole); the full-width Chinese marks
  ``。！？`` always end one, because Chinese puts no space after them; a run of them (``？！``) and the closing
  marks ``”’」』）】`` that follow it stay with the sentence. Newlines always end a sentence.
* ``tokenize_chars`` is the usual tokenization of Chinese for ROUGE: one token per character, whitespace dropped,
  punctuation kept (a full-width comma is a token).
* The word+character tokenizer of T5 PEGASUS: keep a word if it is in the vocabulary, otherwise fall back to its
  characters. ``build_vocab`` always contains every character seen, so nothing is ever out of vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = [
    "tokenize_words",
    "tokenize_chars",
    "split_sentences",
    "build_vocab",
    "word_char_tokenize",
    "fmm_tokenize",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])(?=\s|$)|\n")
# A Chinese sentence end: a run of 。！？ plus the closing marks after it ("？！", "。”" end one sentence, not two).
_ZH_END = re.compile(r"[。！？]+[”’」』）】]*")


def _check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def tokenize_words(text: str, lowercase: bool = True, pattern: str = r"[a-z0-9\-]+") -> list[str]:
    """Word tokens of ``text``: the non-overlapping matches of ``pattern`` after optional lowercasing.

    Notebooks t5-pegasus (8209) and bm25-site-search (10088). ``pattern=r"[a-z0-9]+"`` reproduces the
    ``rouge_score`` tokenizer (no stemming). Raises ``TypeError`` if ``text`` or ``pattern`` is not a str and
    ``ValueError`` if ``pattern`` is empty or does not compile.
    """
    _check_str(text, "text")
    _check_str(pattern, "pattern")
    if not pattern:
        raise ValueError("pattern must be a non-empty regular expression")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern does not compile: {exc}") from None
    if lowercase:
        text = text.lower()
    return [m.group(0) for m in regex.finditer(text) if m.group(0)]


def tokenize_chars(text: str) -> list[str]:
    """Character tokens of ``text`` with whitespace dropped; punctuation is kept as tokens.

    Notebook t5-pegasus (8209): the tokenization of Chinese used for ROUGE and for the character-level LCS.
    Raises ``TypeError`` if ``text`` is not a str.
    """
    _check_str(text, "text")
    return [c for c in text if not c.isspace()]


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (stripped, non-empty), keeping their end punctuation.

    Notebook t5-pegasus (8209). A sentence ends at a newline, after ``.``, ``!`` or ``?`` followed by whitespace or
    the end of the text, and after a run of the Chinese marks ``。！？`` together with the closing marks
    ``”’」』）】`` that follow it. Raises ``TypeError`` if ``text`` is not a str.
    """
    _check_str(text, "text")
    parts = _SENTENCE_END.split(_ZH_END.sub(lambda m: m.group(0) + "\n", text))
    return [p.strip() for p in parts if p and p.strip()]


def build_vocab(token_lists: list[list[str]], size: int) -> set[str]:
    """The ``size`` most frequent word types of ``token_lists`` plus every single character seen.

    Notebook t5-pegasus (8209): the analogue of keeping the 50k most frequent tokens of the corpus while the
    character fallback stays available. Ties in frequency go to the word seen first. ``size=0`` gives a
    character-only vocabulary. Raises ``TypeError`` for non-string tokens or a non-int ``size`` and
    ``ValueError`` if ``size < 0``.
    """
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not isinstance(token_lists, (list, tuple)):
        raise TypeError("token_lists must be a list of lists of str")
    counts: Counter[str] = Counter()
    chars: set[str] = set()
    for tokens in token_lists:
        if not isinstance(tokens, (list, tuple)):
            raise TypeError("token_lists must be a list of lists of str")
        for tok in tokens:
            if not isinstance(tok, str) or not tok:
                raise TypeError(f"token_lists must hold non-empty str tokens, got {tok!r}")
            counts[tok] += 1
            chars.update(tok)
    # Counter.most_common is stable: equal counts keep first-insertion order.
    words = {w for w, _ in counts.most_common(size)} if size > 0 else set()
    return words | chars


def word_char_tokenize(words: list[str], vocab: set[str]) -> list[str]:
    """Keep each word that is in ``vocab``; replace any other word by its characters.

    Notebook t5-pegasus (8209): the tokenizer logic T5 PEGASUS added to BERT's (pre-segment into words, keep a
    word if it is in the vocabulary, else fall back to characters). Characters missing from ``vocab`` are still
    emitted (they would be ``[UNK]`` in a real model). Raises ``TypeError`` for non-string words.
    """
    if not isinstance(vocab, (set, frozenset, dict)):
        raise TypeError(f"vocab must be a set of str, got {type(vocab).__name__}")
    out: list[str] = []
    for w in words:
        if not isinstance(w, str) or not w:
            raise TypeError(f"words must hold non-empty str, got {w!r}")
        if w in vocab:
            out.append(w)
        else:
            out.extend(w)
    return out


def fmm_tokenize(text: str, dictionary: set[str], max_len: int = 4) -> list[str]:
    """Forward maximum matching: at each position take the longest dictionary word (at most ``max_len``
    characters) that starts there, else a single character.

    Notebook t5-pegasus (8209): the simplest dictionary segmenter for Chinese, a stand-in for jieba.
    ``"".join(fmm_tokenize(text, d)) == text`` always. Raises ``TypeError`` for a non-str ``text`` and
    ``ValueError`` if ``max_len < 1``.
    """
    _check_str(text, "text")
    if isinstance(max_len, bool) or not isinstance(max_len, int):
        raise TypeError(f"max_len must be an int, got {type(max_len).__name__}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if not isinstance(dictionary, (set, frozenset, dict)):
        raise TypeError(f"dictionary must be a set of str, got {type(dictionary).__name__}")
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        for k in range(min(max_len, n - i), 0, -1):
            piece = text[i : i + k]
            if k == 1 or piece in dictionary:
                out.append(piece)
                i += k
                break
    return out
