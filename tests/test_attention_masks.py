"""Tests of the sequence-to-sequence masks of kexue_lite.attention (univae-attention-masks, 8475).

The references are written from the masks' meaning (who may see whom), not from the cumsum formula the module uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_lite import attention

PROPS = settings(max_examples=40, deadline=None, derandomize=True)


def reference_mask(a: int, b: int, kind: str) -> np.ndarray:
    """Loops over (query, key) from the definitions in words: the source (positions < a) is bidirectional; a target
    token sees its own prefix of the target; UniLM's target also sees the whole source; UniAE's target sees [CLS]."""
    n = a + b
    m = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if i < a:
                m[i, j] = j < a or (kind == "uniae" and j == 0)
            elif j >= a:
                m[i, j] = j <= i
            else:
                m[i, j] = kind == "unilm" or (kind == "uniae" and j == 0)
    return m


@given(st.integers(1, 9), st.integers(0, 9), st.sampled_from(attention.MASK_KINDS))
@PROPS
def test_masks_match_their_definition_and_counts(a, b, kind):
    seg = np.array([0] * a + [1] * b)
    m = attention.seq2seq_mask(seg, kind)
    assert m.dtype == np.bool_ and m.shape == (a + b, a + b)
    np.testing.assert_array_equal(m, reference_mask(a, b, kind))
    assert int(m.sum()) == int(reference_mask(a, b, kind).sum()) == attention.mask_allowed_counts(a, b, kind)
    assert m.any(-1).all() and m.diagonal().all()  # every query sees at least itself


def test_counts_against_hand_values():
    # a = b = 5 drawn by hand: UniLM 25 + 25 + 15, independent 25 + 15, UniAE 25 + 5 + 15
    assert [attention.mask_allowed_counts(5, 5, k) for k in ("unilm", "independent", "uniae")] == [65, 40, 45]
    assert attention.mask_allowed_counts(3, 0, "unilm") == 9 and attention.mask_allowed_counts(0, 4, "unilm") == 10


def test_only_path_from_source_to_target():
    seg = np.array([0] * 4 + [1] * 3)
    uni, ind = attention.seq2seq_mask(seg, "uniae"), attention.seq2seq_mask(seg, "independent")
    assert (uni[4:, :4] == np.array([True, False, False, False])).all()
    assert not ind[4:, :4].any() and not ind[:4, 4:].any()
    # the source rows of UniAE equal the independent ones: the opened column 0 is already a source key for them
    np.testing.assert_array_equal(uni[:4], ind[:4])
    # masked softmax weights are exactly zero, so changing a source value other than slot 0 changes nothing
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 7, 4))
    v2 = v.copy()
    v2[1:4] += rng.normal(size=(3, 4))
    out, out2 = (attention.softmax_attention(q, k, vv, mask=uni) for vv in (v, v2))
    assert np.abs(out[4:] - out2[4:]).max() == 0.0 and np.abs(out[:4] - out2[:4]).max() > 1e-3


def test_torch_batched_and_cls_index():
    seg = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]])
    m = attention.seq2seq_mask(seg, "uniae")
    assert m.dtype == torch.bool and m.shape == (2, 5, 5)
    for row, a in zip(m, (3, 2)):
        np.testing.assert_array_equal(row.numpy(), reference_mask(a, 5 - a, "uniae"))
    m2 = attention.seq2seq_mask(seg[0], "uniae", cls_index=2)
    assert m2[3:, 2].all() and not m2[3:, :2].any()
    np.testing.assert_array_equal(attention.seq2seq_mask(seg.bool(), "unilm").numpy(),
                                  attention.seq2seq_mask(seg.numpy(), "unilm"))


def test_key_valid_closes_padding_columns():
    seg = np.array([0, 0, 0, 0, 1, 1])
    valid = np.array([True, True, False, False, True, True])
    m = attention.seq2seq_mask(seg, "uniae", key_valid=valid)
    assert not m[:, 2:4].any() and m[:, 0].all()
    with pytest.raises(ValueError, match="key_valid"):
        attention.seq2seq_mask(seg, "independent", key_valid=np.array([False] * 4 + [True] * 2))
    with pytest.raises(ValueError, match="key_valid"):
        attention.seq2seq_mask(seg, "unilm", key_valid=valid[:3])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        attention.seq2seq_mask(np.array([0, 1]), "bert")
    with pytest.raises(ValueError, match="segment_ids"):
        attention.seq2seq_mask(np.array([0, 2]), "unilm")
    with pytest.raises(ValueError, match="segment_ids"):
        attention.seq2seq_mask(np.array([0, 1, 0]), "unilm")  # the source must come first
    with pytest.raises(ValueError, match="segment_ids"):
        attention.seq2seq_mask(np.array([], dtype=int), "unilm")
    with pytest.raises(TypeError, match="segment_ids"):
        attention.seq2seq_mask(np.array([0.0, 1.0]), "unilm")
    with pytest.raises(TypeError, match="segment_ids"):
        attention.seq2seq_mask(torch.tensor([0.0, 1.0]), "unilm")
    with pytest.raises(ValueError, match="cls_index"):
        attention.seq2seq_mask(np.array([1, 1]), "uniae")  # no source, so no [CLS]
    with pytest.raises(ValueError, match="cls_index"):
        attention.seq2seq_mask(np.array([0, 1]), "uniae", cls_index=5)
    with pytest.raises(ValueError, match="kind"):
        attention.mask_allowed_counts(2, 2, "causal")
    with pytest.raises(ValueError, match="a must"):
        attention.mask_allowed_counts(-1, 2, "unilm")
    with pytest.raises(ValueError, match="b must"):
        attention.mask_allowed_counts(1, 2.5, "unilm")
    with pytest.raises(ValueError, match="a must"):
        attention.mask_allowed_counts(0, 3, "uniae")
    with pytest.raises(ValueError, match="a \\+ b"):
        attention.mask_allowed_counts(0, 0, "unilm")


def reference_code_mask(s, first: bool) -> np.ndarray:
    """bojone/univae (univae.py, ``UniAE_Mask.compute_attention_bias``), transcribed from Keras to numpy:
    ``mask1 = s_j == s_i``, ``mask2 = idxs_j <= idxs_i`` on a ``[batch, query, key]`` array, ``mask1 & mask2``, and
    with ``first=True`` the key column 0 (``mask[..., :1]``) replaced by ones. bert4keras's UniLM mask is ``mask2``."""
    s = np.asarray(s)[None]
    idxs = np.cumsum(s, axis=1)
    mask2 = idxs[:, None, :] <= idxs[:, :, None]
    mask = (s[:, None, :] == s[:, :, None]) & mask2
    if first:
        mask = np.concatenate([np.ones_like(mask[..., :1]), mask[..., 1:]], axis=2)
    return mask[0], mask2[0]


@pytest.mark.parametrize("a,b", [(1, 0), (1, 4), (3, 3), (5, 5), (8, 2), (2, 9)])
def test_masks_match_the_reference_code(a, b):
    seg = [0] * a + [1] * b
    uniae, unilm = reference_code_mask(seg, True)
    independent, _ = reference_code_mask(seg, False)
    np.testing.assert_array_equal(attention.seq2seq_mask(seg, "uniae"), uniae)
    np.testing.assert_array_equal(attention.seq2seq_mask(seg, "independent"), independent)
    np.testing.assert_array_equal(attention.seq2seq_mask(seg, "unilm"), unilm)
    # the opened column is the key axis: every query row (source and target) may read key 0
    assert uniae[:, 0].all() and (b == 0 or not uniae[a:, 1:a].any())
