"""Tests of kexue_lite.attention.kv_cache (notebook attention/mha-mqa-gqa-mla, 10091).

The reference numbers below are NOT computed by the code under test. They come from the published configurations
(the raw field names of each model's Hugging Face config.json, or the paper's architecture table) and from the
per-token cache formulas of Table 1 of the DeepSeek-V2 paper (arXiv:2405.04434), evaluated here independently:
MHA 2 n_h d_h l, GQA 2 n_g d_h l, MQA 2 d_h l, MLA (d_c + d_h^R) l ~= 9/2 d_h l.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from kexue_lite.attention import MODEL_CONFIGS, MODEL_SOURCES, AttnConfig, decode_cost, kv_cache_bytes, kv_cache_per_token

# Raw published fields, in each source's own naming, and how each naming maps to (layers, d, heads, K/V heads, d_h).
PUBLISHED = {
    # huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
    "llama2-7b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=32),
    # huggingface.co/meta-llama/Llama-2-13b-hf/blob/main/config.json
    "llama2-13b": dict(num_hidden_layers=40, hidden_size=5120, num_attention_heads=40, num_key_value_heads=40),
    # huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json
    "llama2-70b": dict(num_hidden_layers=80, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8),
    # huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
    "llama3-8b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8),
    # huggingface.co/THUDM/chatglm2-6b/blob/main/config.json
    "chatglm2-6b": dict(num_layers=28, hidden_size=4096, num_attention_heads=32, kv_channels=128,
                        multi_query_attention=True, multi_query_group_num=2),
    # huggingface.co/bigcode/starcoder/blob/main/config.json (GPTBigCode)
    "starcoder": dict(n_layer=40, n_embd=6144, n_head=48, multi_query=True),
    # DeepSeek LLM paper (arXiv:2401.02954) Table 2, 67B row (also deepseek-ai/deepseek-llm-67b-base config.json)
    "deepseek-67b": dict(n_layers=95, d_model=8192, n_heads=64, n_kv_heads=8),
}


def _fields(key: str) -> tuple[int, int, int, int, int]:
    """(layers, d_model, heads, K/V heads, head size) from the raw fields of ``PUBLISHED[key]``."""
    src = PUBLISHED[key]
    if "num_hidden_layers" in src:                        # LLaMA naming; head size = hidden / heads
        l, d, h, g = (src[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads"))
        return l, d, h, g, d // h
    if "num_layers" in src:                               # ChatGLM naming
        g = src["multi_query_group_num"] if src["multi_query_attention"] else src["num_attention_heads"]
        return src["num_layers"], src["hidden_size"], src["num_attention_heads"], g, src["kv_channels"]
    if "n_layer" in src:                                  # GPTBigCode naming; multi_query = one K/V head
        return src["n_layer"], src["n_embd"], src["n_head"], 1 if src["multi_query"] else src["n_head"], \
            src["n_embd"] // src["n_head"]
    return src["n_layers"], src["d_model"], src["n_heads"], src["n_kv_heads"], src["d_model"] // src["n_heads"]


# huggingface.co/deepseek-ai/DeepSeek-V2/blob/main/config.json and DeepSeek-V2 paper §3.1.2
DEEPSEEK_V2 = dict(num_hidden_layers=60, hidden_size=5120, num_attention_heads=128, qk_nope_head_dim=128,
                   qk_rope_head_dim=64, v_head_dim=128, kv_lora_rank=512, q_lora_rank=1536)

# No model card and none of the LLaMA 2, StarCoder, ChatGLM2 or DeepSeek LLM papers states a KV-cache size per
# token, so for those seven rows the expected count is Table 1's formula 2 n_g d_h l evaluated on the raw fields
# above (by hand, below, not by the module). The only reported cache numbers are DeepSeek-V2's: Table 1's
# (d_c + d_h^R) l "about 9/2 d_h l" and "equal to GQA with only 2.25 groups", and the abstract's 93.3%.
HAND_COUNTS = {"llama2-7b": 2 * 32 * 128 * 32, "llama2-13b": 2 * 40 * 128 * 40, "llama2-70b": 2 * 8 * 128 * 80,
               "llama3-8b": 2 * 8 * 128 * 32, "chatglm2-6b": 2 * 2 * 128 * 28, "starcoder": 2 * 1 * 128 * 40,
               "deepseek-67b": 2 * 8 * 128 * 95, "deepseek-v2": (512 + 64) * 60}


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_config_matches_published_fields(key):
    cfg = MODEL_CONFIGS[key]
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.head_dim) == _fields(key)


def test_every_row_states_its_source():
    assert set(MODEL_SOURCES) == set(MODEL_CONFIGS)
    assert all(isinstance(v, str) and ("config.json" in v or "arXiv" in v) for v in MODEL_SOURCES.values())


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_cache_matches_table1_formula_on_published_fields(key):
    l, _, _, g, d_h = _fields(key)
    expected = 2 * g * d_h * l   # Table 1: 2 n_g d_h l
    assert kv_cache_per_token(MODEL_CONFIGS[key]) == expected == HAND_COUNTS[key]


def test_deepseek_v2_matches_published_fields_and_table1():
    cfg, src = MODEL_CONFIGS["deepseek-v2"], DEEPSEEK_V2
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads) == (60, 5120, 128)
    assert (cfg.head_dim, cfg.d_r, cfg.v_dim, cfg.d_c, cfg.d_cq) == (
        src["qk_nope_head_dim"], src["qk_rope_head_dim"], src["v_head_dim"], src["kv_lora_rank"], src["q_lora_rank"])
    # Table 1: (d_c + d_h^R) l, "about 9/2 d_h l" (with d_c = 4 d_h and d_h^R = d_h / 2 it is exact)
    per_layer = src["kv_lora_rank"] + src["qk_rope_head_dim"]
    assert kv_cache_per_token(cfg, per_layer=True) == per_layer == 576
    assert kv_cache_per_token(cfg) == Fraction(9, 2) * 128 * 60 == HAND_COUNTS["deepseek-v2"]
    # "equal to GQA with only 2.25 groups": (d_c + d_h^R) / (2 d_h)
    assert Fraction(kv_cache_per_token(cfg, per_layer=True), 2 * cfg.head_dim) == Fraction(9, 4)


def test_reduction_vs_deepseek_67b():
    v2, old = kv_cache_per_token(MODEL_CONFIGS["deepseek-v2"]), kv_cache_per_token(MODEL_CONFIGS["deepseek-67b"])
    assert 1 - v2 / old == pytest.approx(1 - 34_560 / 194_560)
    # the abstract's 93.3% holds with V2's ~6-bit KV quantisation vs 16-bit for 67B (paper §3.2.3)
    ratio = kv_cache_bytes(MODEL_CONFIGS["deepseek-v2"], 1, bits_per_element=6) / kv_cache_bytes(
        MODEL_CONFIGS["deepseek-67b"], 1)
    assert 1 - ratio == pytest.approx(0.933, abs=1e-3)


def test_mqa_divides_cache_by_heads_and_gqa_by_h_over_g():
    base = dict(name="x", n_layers=3, d_model=64, n_heads=8, head_dim=8)
    mha = kv_cache_per_token(AttnConfig(**base))
    assert kv_cache_per_token(AttnConfig(**base, n_kv_heads=1, kind="mqa")) * 8 == mha
    assert kv_cache_per_token(AttnConfig(**base, n_kv_heads=2, kind="gqa")) * 4 == mha
    assert kv_cache_per_token(AttnConfig(**base), per_layer=True) * 3 == mha


def test_kv_cache_bytes_at_128k():
    # LLaMA2-7B at 128K tokens, bf16: 262144 elements * 2 bytes * 131072 = 64 GiB exactly
    assert kv_cache_bytes(MODEL_CONFIGS["llama2-7b"], 131072) == 64 * 2**30
    assert kv_cache_bytes(MODEL_CONFIGS["llama2-70b"], 131072) == 40 * 2**30
    assert kv_cache_bytes(MODEL_CONFIGS["llama2-7b"], 10, batch=3, bits_per_element=8) == 262144 * 30
    assert kv_cache_bytes(MODEL_CONFIGS["deepseek-v2"], 131072, bits_per_element=16.0) / 2**30 == pytest.approx(8.4375)


def test_decode_cost_deepseek_v2_dimensions():
    mha = decode_cost(512, 64, 128, 128, 128, form="mha")
    ab = decode_cost(512, 64, 128, 128, 128, form="absorbed")
    assert mha["intensity"] == 1.0
    assert ab["bytes_per_token"] == 2 * 576
    assert ab["macs_per_token"] == 128 * (2 * 512 + 64)
    assert ab["intensity"] == pytest.approx(float(Fraction(2 * 128 * 1088, 2 * 576)))   # 241.78 FLOP/byte
    assert mha["bytes_per_token"] / ab["bytes_per_token"] == pytest.approx(128 * 320 / 576)   # 71.1x fewer bytes
    assert ab["macs_per_token"] / mha["macs_per_token"] == pytest.approx(1088 / 320)          # 3.4x more MACs


@pytest.mark.parametrize("kwargs, word", [
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(n_kv_heads=2, kind="mha"), "kind"),
    (dict(kind="mla"), "d_c"),
    (dict(kind="mla", d_c=16, d_r=4, n_kv_heads=2), "n_kv_heads"),
    (dict(kind="attn"), "kind"),
    (dict(d_c=16), "d_c"),
    (dict(head_dim=0), "head_dim"),
])
def test_config_errors(kwargs, word):
    base = dict(name="x", n_layers=2, d_model=32, n_heads=4, head_dim=8)
    base.update(kwargs)
    with pytest.raises(ValueError, match=word):
        AttnConfig(**base)


def test_argument_errors():
    cfg = MODEL_CONFIGS["llama2-7b"]
    with pytest.raises(TypeError, match="n_layers"):
        AttnConfig("x", 2.0, 32, 4, 8)
    with pytest.raises(TypeError, match="cfg"):
        kv_cache_per_token({"n_layers": 2})
    with pytest.raises(ValueError, match="seq_len"):
        kv_cache_bytes(cfg, 0)
    with pytest.raises(TypeError, match="seq_len"):
        kv_cache_bytes(cfg, 1.5)
    with pytest.raises(ValueError, match="bits_per_element"):
        kv_cache_bytes(cfg, 4, bits_per_element=float("nan"))
    with pytest.raises(ValueError, match="batch"):
        kv_cache_bytes(cfg, 4, batch=-1)
    with pytest.raises(ValueError, match="form"):
        decode_cost(512, 64, 128, 128, 128, form="mqa")
    with pytest.raises(ValueError, match="d_c"):
        decode_cost(0, 64, 128, 128, 128, form="mha")
