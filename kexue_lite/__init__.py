"""kexue_lite: the small, tested helper package behind the kexue-lite notebooks.

One module per idea: :mod:`env` (mode, device, seeds), :mod:`viz` (plot style and
sliders), :mod:`symbolic` (sympy checks), :mod:`optim` (Adam and SGD with torch.optim's updates, without its import
cost), :mod:`density` (Fourier density model), :mod:`ssm` (HiPPO matrices, discretisation, the S4 kernel),
:mod:`probability` (softmax and its alternatives, their losses), :mod:`positional` (sinusoidal encodings, RoPE),
:mod:`attention` (a subpackage: masks, softmax and linear attention, Performer features, streaming attention, KV-cache
accounting and MLA, non-attention mixers, the attention modules of the tiny Transformer), :mod:`training` (a
subpackage: the shared tiny Transformer, its recorder and training loop, and the experiments of the training part),
:mod:`diffusion` (a subpackage: noise schedules, SDE samplers, rectified flow, SiD, IGN, self-consuming loops),
:mod:`multimodal` (bit counting for image tokenizers, autoregression over patches), :mod:`vq` (vector quantisation:
the straight-through estimator, the rotation trick, SimVQ), :mod:`text` (LCS, ROUGE-L, pseudo-summaries, BM25) and
:mod:`automata` (the projector as a timed automaton); :mod:`claims` and :mod:`prose` serve the contract.
"""

from . import claims, env, symbolic, viz

__all__ = ["claims", "env", "symbolic", "viz"]
__version__ = "0.1.0"
