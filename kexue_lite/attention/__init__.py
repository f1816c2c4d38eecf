"""Attention and its relatives; knows nothing about training loops (``kexue_lite.training`` builds on it).

One module per idea: :mod:`masks` (causal, windowed and sequence-to-sequence masks), :mod:`softmax` (softmax
attention), :mod:`linear` (feature maps and linear attention), :mod:`performer` (random features), :mod:`spectra`
(rank, stable rank, entropy of attention matrices), :mod:`streaming` (attention as an RNN), :mod:`kv_cache` (KV-cache
accounting, model configurations), :mod:`mla` (multi-head latent attention), :mod:`mixers` (non-attention token
mixers) and :mod:`modules` (the attention modules of the shared tiny Transformer).
"""

from .masks import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .performer import *  # noqa: F401,F403
from .spectra import *  # noqa: F401,F403
from .streaming import *  # noqa: F401,F403
from .kv_cache import *  # noqa: F401,F403
from .mla import *  # noqa: F401,F403
from .mixers import *  # noqa: F401,F403
from .modules import *  # noqa: F401,F403
