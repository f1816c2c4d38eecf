"""Tests for kexue_lite.text (tokenize, lcs, summary): notebook t5-pegasus (article 8209).

Reference values come from independent sources: the ``rouge_score`` package (Google's ROUGE implementation used by
summarisation papers, with its own quadratic LCS table), textbook LCS examples (CLRS), published parameter counts
of T5 / mT5 checkpoints, closed forms and brute force.
"""

from __future__ import annotations

import math
import random
from itertools import combinations

import numpy as np
import pytest
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from kexue_lite import text

TEXTS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat today."),
    ("Vector quantization maps each vector to its nearest code.",
     "Each input vector is replaced by the nearest codebook vector; this is vector quantization."),
    ("Straight-through estimators copy gradients, e.g. through rounding!", "Gradients pass straight through rounding."),
    ("no overlap here", "completely different words"),
    ("A B C B D A B", "B D C A B A"),
    ("It's 3.5 times faster -- isn't it?", "Is it 3 times faster? It is."),
]


class _CharTokenizer:
    """rouge_score tokenizer interface: one token per non-space character (the Chinese convention)."""

    def tokenize(self, s: str) -> list[str]:
        return text.tokenize_chars(s)


# ----------------------------------------------------------------------------- tokenize
@pytest.mark.parametrize("pair", TEXTS)
def test_tokenize_words_matches_rouge_score_tokenizer(pair):
    for s in pair:
        assert text.tokenize_words(s, pattern=r"[a-z0-9]+") == rs_tokenize.tokenize(s, None)


def test_tokenize_words_default_keeps_hyphens_and_lowercases():
    assert text.tokenize_words("Straight-Through estimator, K=16!") == ["straight-through", "estimator", "k", "16"]
    assert text.tokenize_words("ABC def", lowercase=False, pattern=r"[A-Za-z]+") == ["ABC", "def"]
    assert text.tokenize_words("") == []


def test_tokenize_words_errors():
    with pytest.raises(TypeError, match="text"):
        text.tokenize_words(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pattern"):
        text.tokenize_words("abc", pattern="")
    with pytest.raises(ValueError, match="pattern"):
        text.tokenize_words("abc", pattern="[a-")


def test_split_sentences():
    s = "First one. Pi is 3.14, roughly!  Really?\nNo end mark\n\n今天天气很好。我们去公园吧！好吗？last"
    assert text.split_sentences(s) == [
        "First one.", "Pi is 3.14, roughly!", "Really?", "No end mark",
        "今天天气很好。", "我们去公园吧！", "好吗？", "last",
    ]
    # a run of end marks and the closing marks after it end ONE sentence
    assert text.split_sentences("他说：“好。”然后走了。") == ["他说：“好。”", "然后走了。"]
    assert text.split_sentences("真的吗？！是的……走吧。") == ["真的吗？！", "是的……走吧。"]
    assert text.split_sentences("（完。）下一句。") == ["（完。）", "下一句。"]
    assert text.split_sentences("") == [] and text.split_sentences(" \n ") == []
    with pytest.raises(TypeError, match="text"):
        text.split_sentences(["a"])  # type: ignore[arg-type]


def test_tokenize_chars():
    assert text.tokenize_chars(" 今天 天气，\n好 ") == ["今", "天", "天", "气", "，", "好"]
    assert text.tokenize_chars("") == [] and text.tokenize_chars(" \t\u3000") == []  # ideographic space too
    with pytest.raises(TypeError, match="text"):
        text.tokenize_chars(["a"])  # type: ignore[arg-type]


def test_rouge_l_never_exceeds_rouge_1_per_sample():
    """LCS <= clipped unigram overlap, so with the same tokens rougeL F <= rouge1 F (checked with rouge_score)."""
    rng = random.Random(7)
    sc = rouge_scorer.RougeScorer(["rougeL", "rouge1"])
    for _ in range(300):
        a = " ".join(rng.choice("abcdef") for _ in range(rng.randint(1, 15)))
        b = " ".join(rng.choice("abcdef") for _ in range(rng.randint(1, 15)))
        r = sc.score(a, b)
        assert r["rougeL"].fmeasure <= r["rouge1"].fmeasure + 1e-12
        assert text.rouge_l(b.split(), a.split())[2] <= text.rouge_1(b.split(), a.split())[2] + 1e-12


def test_build_vocab_and_word_char_tokenize():
    docs = [["the", "cat", "sat"], ["the", "cat"], ["the", "dog"]]
    v0 = text.build_vocab(docs, 0)
    assert v0 == set("thecatsdog")
    v1 = text.build_vocab(docs, 1)
    assert v1 == v0 | {"the"}
    v2 = text.build_vocab(docs, 2)
    assert v2 == v0 | {"the", "cat"}
    words = ["the", "cat", "dog"]
    assert text.word_char_tokenize(words, v0) == list("thecatdog")
    assert text.word_char_tokenize(words, v2) == ["the", "cat", "d", "o", "g"]
    lengths = [len(text.word_char_tokenize(w, text.build_vocab(docs, k))) for k in range(5) for w in [words]]
    assert all(a >= b for a, b in zip(lengths, lengths[1:]))
    for k in range(5):  # every token is in the vocabulary and the characters are preserved
        toks = text.word_char_tokenize(words, text.build_vocab(docs, k))
        assert "".join(toks) == "thecatdog" and all(t in text.build_vocab(docs, k) for t in toks)
    with pytest.raises(ValueError, match="size"):
        text.build_vocab(docs, -1)
    with pytest.raises(TypeError, match="size"):
        text.build_vocab(docs, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token_lists"):
        text.build_vocab([[1, 2]], 1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="vocab"):
        text.word_char_tokenize(["a"], ["a"])  # type: ignore[arg-type]


def test_fmm_tokenize():
    d = {"研究生", "研究", "生命", "起源", "南京", "南京市", "长江", "大桥", "长江大桥", "市长"}
    # the textbook example of forward maximum matching (the greedy longest match wins at each position)
    assert text.fmm_tokenize("研究生命起源", d) == ["研究生", "命", "起源"]
    assert text.fmm_tokenize("南京市长江大桥", d) == ["南京市", "长江大桥"]
    assert text.fmm_tokenize("南京市长江大桥", d, max_len=2) == ["南京", "市长", "江", "大桥"]
    assert text.fmm_tokenize("abc", set(), max_len=1) == ["a", "b", "c"]
    rng = random.Random(0)
    for _ in range(200):
        s = "".join(rng.choice("南京市长江大桥研究生命起源") for _ in range(rng.randint(0, 20)))
        assert "".join(text.fmm_tokenize(s, d)) == s
    with pytest.raises(ValueError, match="max_len"):
        text.fmm_tokenize("abc", d, max_len=0)
    with pytest.raises(TypeError, match="text"):
        text.fmm_tokenize(3, d)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- LCS
def test_lcs_textbook_values():
    assert text.lcs_length("ABCBDAB", "BDCABA") == 4  # CLRS, section 15.4
    assert text.lcs_length("AGGTAB", "GXTXAYB") == 4  # GTAB
    assert text.lcs_length("今天天气很好我们去公园", "天气好去公园") == 6
    assert text.lcs_length([], [1, 2]) == 0 and text.lcs_length("abc", "") == 0
    assert text.lcs_length((1, 2, 3), [3, 2, 1]) == 1


def test_lcs_bit_parallel_equals_rouge_score_table():
    rng = random.Random(0)
    for _ in range(2000):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        ref = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
        assert text.lcs_length(a, b) == ref == text.lcs_length_dp(a, b)


def test_lcs_long_sequences_and_properties():
    rng = random.Random(1)
    a = [rng.randrange(5) for _ in range(300)]
    b = [rng.randrange(5) for _ in range(200)]
    assert text.lcs_length(a, b) == rouge_scorer._lcs_table(a, b)[-1][-1]
    assert text.lcs_length(a, b) == text.lcs_length(b, a)
    assert text.lcs_length(a, a) == len(a)
    assert text.lcs_length(a, b) <= text.lcs_length(a, b + [0]) <= text.lcs_length(a, b) + 1


def test_lcs_table_and_backtrack():
    a, b = "ABCBDAB", "BDCABA"
    t = text.lcs_table(a, b)
    assert t.shape == (8, 7) and t.dtype == np.int64 and t[-1, -1] == 4
    assert np.all(np.diff(t, axis=0) >= 0) and np.all(np.diff(t, axis=1) >= 0)
    path = text.lcs_backtrack(t, a, b)
    assert len(path) == 4 and all(a[i] == b[j] for i, j in path)
    assert all(i1 < i2 and j1 < j2 for (i1, j1), (i2, j2) in zip(path, path[1:]))
    with pytest.raises(ValueError, match="table"):
        text.lcs_backtrack(t[:-1], a, b)


def test_lcs_errors():
    with pytest.raises(TypeError, match="a"):
        text.lcs_length(5, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="b"):
        text.lcs_length([1], [[1]])
    with pytest.raises(TypeError, match="b"):
        text.lcs_length([1], {1, 2})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- ROUGE
@pytest.mark.parametrize("pair", TEXTS)
def test_rouge_l_and_rouge_1_equal_rouge_score(pair):
    cand, ref = pair
    sc = rouge_scorer.RougeScorer(["rougeL", "rouge1"], use_stemmer=False)
    want = sc.score(ref, cand)  # score(target, prediction)
    tc, tr = (text.tokenize_words(s, pattern=r"[a-z0-9]+") for s in (cand, ref))
    got_l, got_1 = text.rouge_l(tc, tr), text.rouge_1(tc, tr)
    for got, key in ((got_l, "rougeL"), (got_1, "rouge1")):
        np.testing.assert_allclose(got, (want[key].precision, want[key].recall, want[key].fmeasure), rtol=0, atol=1e-12)


def test_rouge_l_chinese_characters_equal_rouge_score():
    pairs = [("今天天气很好，我们去公园散步。", "天气很好，适合去公园。"),
             ("向量量化把每个向量映射到最近的码。", "最近的码向量替换每个输入向量。"),
             ("完全不同", "毫无关系")]
    sc = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())
    for cand, ref in pairs:
        s = sc.score(ref, cand)["rougeL"]
        got = text.rouge_l([c for c in cand if not c.isspace()], [c for c in ref if not c.isspace()])
        np.testing.assert_allclose(got, (s.precision, s.recall, s.fmeasure), atol=1e-12)


def test_rouge_l_beta_is_weighted_harmonic_mean():
    tc, tr = list("abcbdab"), list("bdcabaxx")
    for beta in (0.5, 1.0, 2.0, 3.0):
        p, r, f = text.rouge_l(tc, tr, beta=beta)
        w = beta**2 / (1 + beta**2)  # F_beta = 1 / (w / R + (1 - w) / P), van Rijsbergen's form
        assert math.isclose(f, 1 / (w / r + (1 - w) / p), rel_tol=1e-12)
    assert text.rouge_l([], ["a"]) == (0.0, 0.0, 0.0) and text.rouge_l(["a"], ["b"]) == (0.0, 0.0, 0.0)
    assert text.rouge_l(np.array([1, 2, 3]), [1, 2, 3]) == (1.0, 1.0, 1.0)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            text.rouge_l(tc, tr, beta=bad)
    with pytest.raises(TypeError, match="beta"):
        text.rouge_l(tc, tr, beta="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="candidate"):
        text.rouge_l(None, tr)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- pseudo-summaries
def _random_doc(rng: random.Random, n: int) -> list[list[str]]:
    topic = [f"t{i}" for i in range(6)]
    vocab = [f"w{i}" for i in range(20)]
    return [[rng.choice(topic) if rng.random() < 0.5 else rng.choice(vocab) for _ in range(rng.randint(4, 10))]
            for _ in range(n)]


def _brute_force(doc, m):
    """Exhaustive optimum scored with rouge_score's own LCS table (independent of kexue_lite.text)."""
    best, best_s = None, -1
    for sub in combinations(range(len(doc)), m):
        tgt = [t for i in sub for t in doc[i]]
        src = [t for i in range(len(doc)) if i not in sub for t in doc[i]]
        s = rouge_scorer._lcs_table(tgt, src)[-1][-1]
        if s > best_s:
            best, best_s = list(sub), s
    return best, best_s


def test_pseudo_summary_invariants_and_exhaustive_optimum():
    rng = random.Random(3)
    for _ in range(20):
        n = rng.randint(4, 9)
        doc = _random_doc(rng, n)
        m = max(1, round(0.25 * n))
        g = text.pseudo_summary(doc)
        e = text.pseudo_summary(doc, method="exhaustive")
        idx, s = _brute_force(doc, m)
        assert e.score == s and e.target_idx == idx and e.evaluations == math.comb(n, m)
        assert g.score <= e.score
        for res in (g, e):
            assert len(res.target_idx) == m and res.target_idx == sorted(res.target_idx)
            assert set(res.target_idx).isdisjoint(res.source_idx)
            assert sorted(res.target_idx + res.source_idx) == list(range(n))
            assert text.lcs_length(res.target(doc), res.source(doc)) == res.score
        assert g.evaluations == m * (2 * n - m + 1) // 2  # sum_{k<m} (n - k)
        assert [i for i, _ in g.trace] and g.trace[-1][1] == g.score and sorted(i for i, _ in g.trace) == g.target_idx
        # the first greedy step is an exhaustive search over single sentences
        one = text.pseudo_summary(doc, ratio=0.5 / n)
        assert one.score == _brute_force(doc, 1)[1]


def test_pseudo_summary_chinese_and_rouge_criteria():
    doc = [list(s) for s in ["今天天气很好。", "我们去公园散步。", "公园里天气很好，人很多。", "股票下跌了。",
                             "散步以后我们回家。", "回家路上天气很好。", "晚饭吃了面条。", "我们很开心。"]]
    res = text.pseudo_summary(doc, ratio=0.25)
    assert len(res.target_idx) == 2 and 3 not in res.target_idx  # the off-topic sentence is not picked
    rl = text.pseudo_summary(doc, criterion="rougeL")
    r1 = text.pseudo_summary(doc, criterion="rouge1")
    sc = rouge_scorer.RougeScorer(["rougeL", "rouge1"], tokenizer=_CharTokenizer())
    for r, key in ((rl, "rougeL"), (r1, "rouge1")):
        want = sc.score("".join(r.source(doc)), "".join(r.target(doc)))[key].fmeasure
        assert math.isclose(r.score, want, rel_tol=1e-12)


def test_pseudo_summary_independent_is_pegasus_ind_orig():
    """Ind-Orig (Zhang et al. 2020): score each sentence by ROUGE-1 F1 against the rest, keep the top m."""
    rng = random.Random(5)
    sc = rouge_scorer.RougeScorer(["rouge1"])
    for _ in range(20):
        n = rng.randint(4, 10)
        doc = _random_doc(rng, n)
        m = max(1, round(0.25 * n))
        res = text.pseudo_summary(doc, criterion="rouge1", method="independent")
        alone = [round(sc.score(" ".join(t for j in range(n) if j != i for t in doc[j]), " ".join(doc[i]))["rouge1"].fmeasure, 12)
                 for i in range(n)]  # rounded: rouge_score's 2PR/(P+R) differs in the last bit, ties go to the lowest index
        want = sorted(sorted(range(n), key=lambda i: (-alone[i], i))[:m])
        assert res.target_idx == want and res.evaluations == n
        assert sorted(res.target_idx + res.source_idx) == list(range(n))
        assert math.isclose(res.score, text.rouge_1(res.target(doc), res.source(doc))[2], rel_tol=1e-12)
    # by hand: F1 of each sentence against the other 3 is 2*2/(2+7), 2*3/(3+6), 0, 2*2/(2+7); m = 1
    doc = [["a", "b"], ["a", "b", "c"], ["x", "y"], ["c", "a"]]
    assert text.pseudo_summary(doc, criterion="rouge1", method="independent").target_idx == [1]


def test_pseudo_summary_errors():
    doc = [["a", "b"], ["b", "c"], ["c", "d"]]
    with pytest.raises(ValueError, match="sentences"):
        text.pseudo_summary([["a"]])
    for bad in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="ratio"):
            text.pseudo_summary(doc, ratio=bad)
    with pytest.raises(ValueError, match="ratio"):
        text.pseudo_summary(doc, ratio=0.9)  # picks all three sentences
    with pytest.raises(ValueError, match="criterion"):
        text.pseudo_summary(doc, criterion="bleu")
    with pytest.raises(ValueError, match="method"):
        text.pseudo_summary(doc, method="beam")
    with pytest.raises(ValueError, match="max_subsets"):
        text.pseudo_summary([["a"]] * 40, ratio=0.25, method="exhaustive")
    with pytest.raises(TypeError, match="sentences"):
        text.pseudo_summary("abc")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- parameter count
def test_t5_param_count_published_checkpoints():
    # published parameter counts of the Hugging Face checkpoints (tied embeddings and ReLU FFN for T5 v1.0;
    # untied embeddings and gated-GELU for mT5)
    assert text.t5_param_count(32128, d=512, d_ff=2048, layers=6, heads=8, tied=True, gated=False) == 60_506_624
    assert text.t5_param_count(32128, d=768, d_ff=3072, layers=12, heads=12, tied=True, gated=False) == 222_903_552
    assert text.t5_param_count(250112, d=512, d_ff=1024, layers=8, heads=6) == 300_176_768  # mt5-small
    assert text.t5_param_count(250112) == 582_401_280  # mt5-base


def test_t5_param_count_is_affine_in_vocab():
    p0 = text.t5_param_count(1)
    assert text.t5_param_count(50_000) - p0 == 2 * 768 * 49_999
    assert text.t5_param_count(50_000, tied=True) - text.t5_param_count(1, tied=True) == 768 * 49_999
    assert text.t5_param_count(50_000) == 275_029_248  # the article's "2.75亿"
    with pytest.raises(ValueError, match="V"):
        text.t5_param_count(0)
    with pytest.raises(TypeError, match="d_ff"):
        text.t5_param_count(10, d_ff=2.5)  # type: ignore[arg-type]
