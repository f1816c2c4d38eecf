"""KV-cache accounting for MHA, GQA, MQA and MLA with published model configurations (mha-mqa-gqa-mla, 10091).

Serves the notebook ``attention/mha-mqa-gqa-mla`` (kexue.fm/archives/10091) and ``attention/attention-as-quadratic-rnn``
(10017). The counting rule is Table 1 of the DeepSeek-V2 paper (arXiv:2405.04434), in elements per token:

* MHA  ``2 * n_h * d_h * l``  (a key and a value of every head, every layer);
* GQA  ``2 * n_g * d_h * l``  (``n_g`` = number of K/V heads = groups);
* MQA  ``2 * d_h * l``        (one shared K/V head);
* MLA  ``(d_c + d_h^R) * l``  (the latent ``c_i`` serves keys *and* values, plus one shared RoPE key).

Notation: paper ``d_h`` = article ``d_k`` = :attr:`AttnConfig.head_dim`; ``d_h^R`` = ``d_r``; ``n_h`` = ``h``;
``l`` = layers.

Sources of :data:`MODEL_CONFIGS` (the fields each row uses; quoted from the cited config or paper):

* ``llama2-7b``: HF ``meta-llama/Llama-2-7b-hf`` config.json: num_hidden_layers 32, hidden_size 4096,
  num_attention_heads 32, num_key_value_heads 32 (Touvron et al. 2023, arXiv:2307.09288, Table 1: MHA up to 13B).
* ``llama2-13b``: HF ``meta-llama/Llama-2-13b-hf`` config.json: 40 layers, hidden 5120, 40 heads, 40 K/V heads.
* ``llama2-70b``: HF ``meta-llama/Llama-2-70b-hf`` config.json: 80 layers, hidden 8192, 64 heads, 8 K/V heads
  (Llama 2 paper: GQA for 34B and 70B).
* ``llama3-8b``: HF ``meta-llama/Meta-Llama-3-8B`` config.json: 32 layers, hidden 4096, 32 heads, 8 K/V heads.
* ``chatglm2-6b``: HF ``THUDM/chatglm2-6b`` config.json: num_layers 28, hidden_size 4096, num_attention_heads 32,
  kv_channels 128, multi_query_attention true, multi_query_group_num 2.
* ``starcoder``: HF ``bigcode/starcoder`` config.json (GPTBigCode): n_layer 40, n_embd 6144, n_head 48,
  multi_query true (Li et al. 2023, arXiv:2305.06161: 15.5B, MQA).
* ``deepseek-67b``: DeepSeek LLM paper (arXiv:2401.02954) Table 2 and HF ``deepseek-ai/deepseek-llm-67b-base``
  config.json: 95 layers, hidden 8192, 64 heads, 8 K/V heads.
* ``deepseek-v2``: DeepSeek-V2 paper (arXiv:2405.04434) §3.1.2 and HF ``deepseek-ai/DeepSeek-V2`` config.json:
  num_hidden_layers 60, hidden_size 5120, num_attention_heads 128, qk_nope_head_dim 128, qk_rope_head_dim 64,
  v_head_dim 128, kv_lora_rank 512, q_lora_rank 1536.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["AttnConfig", "MODEL_CONFIGS", "MODEL_SOURCES", "kv_cache_per_token", "kv_cache_bytes", "decode_cost"]

_KINDS = ("mha", "gqa", "mqa", "mla")


def _pos_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _pos_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


@dataclass(frozen=True)
class AttnConfig:
    """Attention shape of one model, enough to count its KV cache (notebook mha-mqa-gqa-mla, 10091).

    ``kind`` is "mha" (n_kv_heads = n_heads), "gqa" (1 < n_kv_heads < n_heads, dividing it), "mqa"
    (n_kv_heads = 1) or "mla" (needs ``d_c`` and ``d_r``; ``n_kv_heads`` must stay None). ``head_dim`` is the
    per-head key size without the RoPE part (paper ``d_h``); ``v_head_dim`` defaults to ``head_dim``.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    head_dim: int
    n_kv_heads: int | None = None
    kind: str = "mha"
    d_c: int | None = None
    d_r: int | None = None
    d_cq: int | None = None
    v_head_dim: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name must be a non-empty string")
        for field in ("n_layers", "d_model", "n_heads", "head_dim"):
            _pos_int(getattr(self, field), field)
        for field in ("n_kv_heads", "d_c", "d_r", "d_cq", "v_head_dim"):
            if getattr(self, field) is not None:
                _pos_int(getattr(self, field), field)
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "mla":
            if self.d_c is None or self.d_r is None:
                raise ValueError("kind 'mla' needs d_c and d_r")
            if self.n_kv_heads is not None:
                raise ValueError("n_kv_heads must be None for kind 'mla' (the latent c_i has no heads)")
            return
        if self.d_c is not None or self.d_r is not None or self.d_cq is not None:
            raise ValueError(f"d_c, d_r and d_cq are only for kind 'mla', not {self.kind!r}")
        g = self.kv_heads
        if self.n_heads % g:
            raise ValueError(f"n_kv_heads={g} must divide n_heads={self.n_heads}")
        expected = "mha" if g == self.n_heads else ("mqa" if g == 1 else "gqa")
        if self.kind != expected:
            raise ValueError(f"kind {self.kind!r} does not match n_kv_heads={g} with n_heads={self.n_heads} "
                             f"(that is {expected!r})")

    @property
    def kv_heads(self) -> int:
        """Number of cached K/V heads (n_heads when ``n_kv_heads`` is None); 0 for MLA."""
        if self.kind == "mla":
            return 0
        return self.n_heads if self.n_kv_heads is None else int(self.n_kv_heads)

    @property
    def v_dim(self) -> int:
        """Per-head value size (``v_head_dim`` or ``head_dim``)."""
        return self.head_dim if self.v_head_dim is None else int(self.v_head_dim)


MODEL_CONFIGS: dict[str, AttnConfig] = {
    # HF meta-llama/Llama-2-7b-hf config.json
    "llama2-7b": AttnConfig("LLaMA2-7B", 32, 4096, 32, 128, 32, "mha"),
    # HF meta-llama/Llama-2-13b-hf config.json
    "llama2-13b": AttnConfig("LLaMA2-13B", 40, 5120, 40, 128, 40, "mha"),
    # HF meta-llama/Llama-2-70b-hf config.json (GQA, 8 K/V heads)
    "llama2-70b": AttnConfig("LLaMA2-70B", 80, 8192, 64, 128, 8, "gqa"),
    # HF meta-llama/Meta-Llama-3-8B config.json (GQA, 8 K/V heads)
    "llama3-8b": AttnConfig("LLaMA3-8B", 32, 4096, 32, 128, 8, "gqa"),
    # HF THUDM/chatglm2-6b config.json (multi_query_group_num 2, kv_channels 128)
    "chatglm2-6b": AttnConfig("ChatGLM2-6B", 28, 4096, 32, 128, 2, "gqa"),
    # HF bigcode/starcoder config.json (GPTBigCode, multi_query true); 6144 / 48 = 128
    "starcoder": AttnConfig("StarCoder-15.5B", 40, 6144, 48, 128, 1, "mqa"),
    # DeepSeek LLM paper (arXiv:2401.02954) Table 2; HF deepseek-ai/deepseek-llm-67b-base config.json
    "deepseek-67b": AttnConfig("DeepSeek-67B", 95, 8192, 64, 128, 8, "gqa"),
    # DeepSeek-V2 paper (arXiv:2405.04434) §3.1.2; HF deepseek-ai/DeepSeek-V2 config.json
    "deepseek-v2": AttnConfig("DeepSeek-V2", 60, 5120, 128, 128, None, "mla", d_c=512, d_r=64, d_cq=1536,
                              v_head_dim=128),
}


# Where each row of MODEL_CONFIGS comes from, one line per row (shown as the "source" column of the notebook's table).
# None of these sources states a KV-cache size except the DeepSeek-V2 paper (Table 1: (d_c + d_h^R) l, "about
# 9/2 d_h l", "equal to GQA with only 2.25 groups"); for the other rows the cache follows from the published fields.
MODEL_SOURCES: dict[str, str] = {
    "llama2-7b": "HF meta-llama/Llama-2-7b-hf config.json",
    "llama2-13b": "HF meta-llama/Llama-2-13b-hf config.json",
    "llama2-70b": "HF meta-llama/Llama-2-70b-hf config.json",
    "llama3-8b": "HF meta-llama/Meta-Llama-3-8B config.json",
    "chatglm2-6b": "HF THUDM/chatglm2-6b config.json",
    "starcoder": "HF bigcode/starcoder config.json",
    "deepseek-67b": "DeepSeek LLM paper (arXiv:2401.02954) Table 2",
    "deepseek-v2": "DeepSeek-V2 paper (arXiv:2405.04434) §3.1.2, Table 1",
}


def kv_cache_per_token(cfg: AttnConfig, *, per_layer: bool = False) -> int:
    """Elements cached per token (DeepSeek-V2 Table 1): over all layers, or for one layer with ``per_layer``.

    MHA/GQA/MQA store a key and a value per K/V head, ``2 * n_kv * head_dim`` (keys of ``head_dim`` and values of
    ``v_head_dim`` in general); MLA stores the latent and the shared RoPE key, ``d_c + d_r``.
    """
    if not isinstance(cfg, AttnConfig):
        raise TypeError(f"cfg must be an AttnConfig, got {type(cfg).__name__}")
    if not isinstance(per_layer, bool):
        raise TypeError("per_layer must be a bool")
    if cfg.kind == "mla":
        layer = int(cfg.d_c) + int(cfg.d_r)
    else:
        layer = cfg.kv_heads * (cfg.head_dim + cfg.v_dim)
    return layer if per_layer else layer * cfg.n_layers


def kv_cache_bytes(cfg: AttnConfig, seq_len: int, batch: int = 1, bits_per_element: float = 16) -> float:
    """Bytes of KV cache for ``batch`` sequences of ``seq_len`` tokens at ``bits_per_element`` (16 = bf16/fp16)."""
    seq_len = _pos_int(seq_len, "seq_len")
    batch = _pos_int(batch, "batch")
    bits = _pos_real(bits_per_element, "bits_per_element")
    return kv_cache_per_token(cfg) * seq_len * batch * bits / 8.0


def decode_cost(d_c: int, d_r: int, n_heads: int, d_head: int, d_v: int, *, form: str,
                bytes_per_element: float = 2) -> dict[str, float]:
    """Multiply-adds and bytes read per cached token when one new token attends to it, for one MLA layer.

    ``form="mha"``: the cache holds the up-projected per-head keys ``[k_c, k_r]`` (``d_head + d_r``) and values
    (``d_v``), ``h (d_head + d_r + d_v)`` elements, and the new token does one MAC per element (score + weighted
    sum). ``form="absorbed"``: the cache holds ``[c_i, k_r]`` (``d_c + d_r`` elements, shared by all heads), and
    every head does ``d_c + d_r`` MACs for its score and ``d_c`` for its weighted sum, ``h (2 d_c + d_r)``.
    Returns ``macs_per_token``, ``bytes_per_token`` and ``intensity`` = 2 MACs (FLOPs) per byte.
    """
    d_c = _pos_int(d_c, "d_c")
    d_r = _pos_int(d_r, "d_r")
    n_heads = _pos_int(n_heads, "n_heads")
    d_head = _pos_int(d_head, "d_head")
    d_v = _pos_int(d_v, "d_v")
    bpe = _pos_real(bytes_per_element, "bytes_per_element")
    if form == "mha":
        elements = n_heads * (d_head + d_r + d_v)
        macs = elements
    elif form == "absorbed":
        elements = d_c + d_r
        macs = n_heads * (2 * d_c + d_r)
    else:
        raise ValueError(f"form must be 'mha' or 'absorbed', got {form!r}")
    nbytes = elements * bpe
    return {"macs_per_token": float(macs), "bytes_per_token": float(nbytes), "intensity": 2.0 * macs / nbytes}
