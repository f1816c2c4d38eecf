"""kexue_lite: the small, tested helper package behind the kexue-lite notebooks.

One module per idea: :mod:`env` (mode, device, seeds), :mod:`viz` (plot style and
sliders), :mod:`symbolic` (sympy checks), :mod:`density` (Fourier density model),
:mod:`ssm` (HiPPO matrices, discretisation, the S4 kernel), :mod:`probability` (softmax and
its alternatives, their losses), :mod:`positional` (sinusoidal encodings, RoPE), :mod:`attention` (linear and masked softmax
attention) and :mod:`diffusion` (noise schedules, SDE samplers, rectified flow, SiD, IGN, self-consuming loops).
"""

from . import claims, env, symbolic, viz

__all__ = ["claims", "env", "symbolic", "viz"]
__version__ = "0.1.0"
