"""Generative models on exact toys, one idea per module; every public name is re-exported here, so
``from kexue_lite import diffusion; diffusion.X`` works for all of them.

* :mod:`.schedules` — noise schedules ``(alpha_t, beta_t)``, their SDE coefficients ``f_t``, ``g_t^2`` and DDPM's
  discrete schedule (notebooks sde-framework, snr-high-resolution);
* :mod:`.log_snr` — Simple diffusion's cosine log-SNR, its resolution shift and interpolation, ``shift_vp``
  (snr-high-resolution);
* :mod:`.multiscale` — the test image, average pooling and the multi-scale loss (snr-high-resolution);
* :mod:`.mixtures` — Gaussian mixtures with exact score, diffused law, CDF and quantiles; the toy data
  (every notebook of the part);
* :mod:`.samplers` — forward and reverse SDE, probability-flow ODE, Euler/Heun/RK4 (sde-framework, rectified-flow);
* :mod:`.denoiser` — denoising score matching and the score of a noise-prediction net (sde-framework);
* :mod:`.nets` — the small float64 MLP, a residual net on a base map, frozen calls;
* :mod:`.metrics` — W1 by CDF and by quantiles, RBF MMD, mode coverage;
* :mod:`.rectified_flow` — exact and learned rectified-flow velocities, reflow, straightness (rectified-flow);
* :mod:`.ign` — idempotent generative networks and the single-loss GAN (idempotent-generative-network);
* :mod:`.sid` — score identity distillation (score-identity-distillation);
* :mod:`.self_consuming` — self-consuming Gaussian and categorical loops (self-consuming-loops).

Sources: kexue.fm/archives/9209, 9497, 10047, 10085, 9969 and 9687; Liu, Gong & Liu, rectified flow,
arXiv:2209.03003; Song et al., score-based SDEs, arXiv:2011.13456; Hoogeboom, Heek & Salimans, Simple diffusion,
arXiv:2301.11093; Zhou et al., score identity distillation, arXiv:2404.04057; Shocher et al., idempotent generative
networks, arXiv:2311.01462.

Conventions (used everywhere)
-----------------------------
* Time runs from ``t = 0`` (data) to ``t = 1`` (noise): ``x_t = alpha_t x_0 + beta_t eps``.
* ``alpha`` is the article's signal **coefficient** ``bar alpha_t`` and ``beta`` its noise standard deviation
  ``bar beta_t``; DDPM's ``alphas_cumprod`` is ``alpha**2`` (see :func:`ddpm_discrete`).
* ``log_snr = log(alpha^2 / beta^2)``; variance preserving (VP) means ``alpha^2 + beta^2 = 1``.
* The forward SDE ``dx = f_t x dt + g_t dw`` has ``f_t = d/dt ln alpha_t`` and
  ``g_t^2 = alpha_t^2 d/dt (beta_t^2 / alpha_t^2)``, computed by autograd in float64.
* Devices: results stay on the device of the input tensors. A :class:`GaussianMixture` lives on one device
  (``device=`` or :meth:`GaussianMixture.to`) and refuses inputs on another. Random draws are made on the device of
  the ``torch.Generator`` passed in (the trainers use a CPU generator), then moved, so one seed gives the same
  numbers on CPU and CUDA.
* Bad input (wrong types, integer or complex where reals are needed, nan/inf, empty samples, out-of-range
  parameters) raises ``ValueError``/``TypeError`` naming the argument.
"""

from .schedules import *  # noqa: F401,F403
from .log_snr import *  # noqa: F401,F403
from .multiscale import *  # noqa: F401,F403
from .mixtures import *  # noqa: F401,F403
from .samplers import *  # noqa: F401,F403
from .nets import *  # noqa: F401,F403
from .denoiser import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .rectified_flow import *  # noqa: F401,F403
from .ign import *  # noqa: F401,F403
from .sid import *  # noqa: F401,F403
from .self_consuming import *  # noqa: F401,F403
from . import (denoiser, ign, log_snr, metrics, mixtures, multiscale, nets, rectified_flow, samplers, schedules,
               self_consuming, sid)

__all__ = [name for module in (schedules, log_snr, multiscale, mixtures, samplers, nets, denoiser, metrics, rectified_flow,
                               ign, sid, self_consuming) for name in module.__all__]
