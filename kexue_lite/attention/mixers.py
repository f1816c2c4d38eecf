"""Token mixers that are attention with a fixed or learned matrix: FNet, MLP-Mixer, gMLP, Synthesizer, external attention (non-transformer-roundup, 8431).

Read as attention, ``O = A V`` with ``A = softmax(Q K^T)``, the non-Transformer mixers of May 2021 change one piece:

- :class:`SynthesizerRandom` learns the logits ``B`` (an ``n x n`` parameter), ``A = softmax(B)``;
- :class:`TokenMixingMLP` (MLP-Mixer, ResMLP, "a stack of FFNs") learns ``A`` itself, as a two-layer MLP along tokens;
- :class:`ExternalAttention` makes the keys and values parameter matrices of a fixed size ``S``;
- :func:`fnet_mixing` (FNet) replaces ``A`` by the real part of a DFT over tokens *and* channels, no parameters;
- :class:`SpatialGatingUnit` (gMLP) gates half the channels with a token-mixing projection of the other half.

:func:`fnet_operator` and :func:`fnet_rank` give FNet's mixing as a matrix and its rank (``E_n E_d + O_n O_d``),
:func:`dft_as_attention` the ``Q, K`` that make ``exp(-i Q K^T)`` the DFT matrix, and
:func:`pairwise_jacobian_norms` the ``n x n`` map of ``||dO_i/dX_j||_F`` used to see which mixers couple tokens,
:func:`conv_receptive_field` the reach of a (dilated) convolution stack, the article's pretrained-CNN argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "fnet_mixing", "fnet_operator", "fnet_rank", "dft_as_attention", "FNetMixing", "TokenMixingMLP",
    "SynthesizerRandom", "SpatialGatingUnit", "ExternalAttention", "pairwise_jacobian_norms", "conv_receptive_field",
]


def _pos_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _check_input(x: object, name: str = "x", *, min_dim: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be a real floating tensor (float32 or float64), got {x.dtype}")
    if x.dim() < min_dim or any(s == 0 for s in x.shape):
        raise ValueError(f"{name} must have shape (..., n, d) with n, d >= 1, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _check_length(x: torch.Tensor, n_tokens: int, who: str) -> None:
    if x.shape[-2] != n_tokens:
        raise ValueError(f"x has {x.shape[-2]} tokens but this {who} was built for n_tokens={n_tokens}: "
                         "its token-mixing parameters have a fixed size (pad or truncate the input)")


# --- FNet --------------------------------------------------------------------------------------------------------
def fnet_mixing(x: torch.Tensor) -> torch.Tensor:
    """FNet's token mixing: ``Re(fft2(x))`` over the last two axes (tokens and channels), ``Re(F_n X F_d)``.

    Any length works; the cost is O(nd log(nd)). Returns the input's real dtype (non-transformer-roundup, 8431).
    """
    x = _check_input(x)
    return torch.fft.fft2(x).real.to(x.dtype)


def fnet_operator(n: int, d: int) -> torch.Tensor:
    """The linear map ``vec(X) -> vec(Re(F_n X F_d))`` (row-major vec) as an ``(nd, nd)`` float64 matrix, built by
    applying :func:`fnet_mixing` to the basis inputs. It equals ``C_n (x) C_d - S_n (x) S_d`` (8431)."""
    n, d = _pos_int(n, "n"), _pos_int(d, "d")
    basis = torch.eye(n * d, dtype=torch.float64).reshape(n * d, n, d)
    return fnet_mixing(basis).reshape(n * d, n * d).T.contiguous()


def fnet_rank(n: int, d: int) -> int:
    """Rank of FNet's mixing on ``n x d`` inputs: ``E_n E_d + O_n O_d`` with ``E_k = floor(k/2) + 1`` (even vectors,
    ``x_j = x_{-j}``) and ``O_k = ceil(k/2) - 1`` (odd ones); about half of ``nd`` (8431, derivation 2)."""
    n, d = _pos_int(n, "n"), _pos_int(d, "d")
    even = lambda k: k // 2 + 1  # noqa: E731
    odd = lambda k: (k + 1) // 2 - 1  # noqa: E731
    return even(n) * even(d) + odd(n) * odd(d)


def dft_as_attention(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q = K = sqrt(2 pi / n) (0, 1, ..., n-1)^T`` (float64, shape (n, 1)), so that ``exp(-1j * Q @ K.T)`` is the
    DFT matrix ``F_n``: FNet as attention with ``A = exp(-i Q K^T)`` (the article omits the ``2 pi / n``) (8431)."""
    n = _pos_int(n, "n")
    q = torch.arange(n, dtype=torch.float64)[:, None] * math.sqrt(2 * math.pi / n)
    return q, q.clone()


class FNetMixing(nn.Module):
    """A module around :func:`fnet_mixing` (no parameters, any length)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fnet_mixing(x)


# --- learned token mixing ------------------------------------------------------------------------------------------
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": nn.functional.gelu, "relu": torch.relu, "identity": lambda t: t,
}


class TokenMixingMLP(nn.Module):
    """MLP-Mixer's token-mixing MLP: ``O = (W_2 act(W_1 X + b_1) + b_2)`` along the token axis, ``W_1``: hidden x n.

    With ``activation="identity"`` it is the fixed matrix ``A = W_2 W_1`` (rank <= hidden) plus a bias: the
    article's "Synthesizer-Random without softmax" is exact only for that linearisation. Parameters:
    ``2 n hidden + n + hidden``. ``ValueError`` for an input of another length (8431).
    """

    def __init__(self, n_tokens: int, hidden: int, activation: str = "gelu", *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.n_tokens, self.hidden = _pos_int(n_tokens, "n_tokens"), _pos_int(hidden, "hidden")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.fc1 = nn.Linear(self.n_tokens, self.hidden, dtype=dtype)
        self.fc2 = nn.Linear(self.hidden, self.n_tokens, dtype=dtype)

    def mixing_matrix(self) -> torch.Tensor:
        """``W_2 W_1`` (n x n): the token-mixing matrix of the linearised (identity-activation) layer."""
        return (self.fc2.weight @ self.fc1.weight).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x)
        _check_length(x, self.n_tokens, "TokenMixingMLP")
        h = _ACTIVATIONS[self.activation](self.fc1(x.transpose(-1, -2)))
        return self.fc2(h).transpose(-1, -2)


class SynthesizerRandom(nn.Module):
    """Synthesizer (Random): ``O = softmax(R) X W_v`` with a learned ``n x n`` logit matrix ``R`` that does not depend
    on the input (``softmax=False``: ``A = R``, MLP-Mixer's single-layer form). ``ValueError`` for another length (8431)."""

    def __init__(self, n_tokens: int, d_model: int, softmax: bool = True, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.n_tokens, self.d_model = _pos_int(n_tokens, "n_tokens"), _pos_int(d_model, "d_model")
        self.softmax = bool(softmax)
        self.logits = nn.Parameter(torch.randn(self.n_tokens, self.n_tokens, dtype=dtype))
        self.v_proj = nn.Linear(self.d_model, self.d_model, dtype=dtype)

    def mixing_matrix(self) -> torch.Tensor:
        """``A`` = softmax(R) (row-stochastic) or R."""
        return (torch.softmax(self.logits, -1) if self.softmax else self.logits).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x)
        _check_length(x, self.n_tokens, "SynthesizerRandom")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must have d_model={self.d_model} channels, got {x.shape[-1]}")
        a = torch.softmax(self.logits, -1) if self.softmax else self.logits
        return a @ self.v_proj(x)


class SpatialGatingUnit(nn.Module):
    """gMLP's spatial gating unit: ``[Z_1, Z_2] = Z``, ``s(Z) = Z_1 * (W LayerNorm(Z_2) + b)`` with W (n x n) along
    tokens, ``W ~ U(-init_eps, init_eps)`` and ``b = 1`` (so it starts near the identity on ``Z_1``); ``causal=True``
    keeps only the lower triangle of W. ``d_model`` must be even; output width ``d_model / 2`` (8431)."""

    def __init__(self, n_tokens: int, d_model: int, causal: bool = False, init_eps: float = 1e-3, *,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.n_tokens, self.d_model = _pos_int(n_tokens, "n_tokens"), _pos_int(d_model, "d_model")
        if self.d_model % 2:
            raise ValueError(f"d_model must be even (the unit splits the channels in two halves), got {d_model}")
        if not (isinstance(init_eps, (int, float)) and math.isfinite(init_eps) and init_eps >= 0):
            raise ValueError(f"init_eps must be a finite non-negative number, got {init_eps!r}")
        self.causal = bool(causal)
        self.norm = nn.LayerNorm(self.d_model // 2, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(self.n_tokens, self.n_tokens, dtype=dtype).uniform_(-init_eps, init_eps))
        self.bias = nn.Parameter(torch.ones(self.n_tokens, 1, dtype=dtype))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_input(z, "z")
        _check_length(z, self.n_tokens, "SpatialGatingUnit")
        if z.shape[-1] != self.d_model:
            raise ValueError(f"z must have d_model={self.d_model} channels, got {z.shape[-1]}")
        z1, z2 = z.chunk(2, dim=-1)
        w = torch.tril(self.weight) if self.causal else self.weight
        return z1 * (w @ self.norm(z2) + self.bias)


class ExternalAttention(nn.Module):
    """External attention: keys and values are parameter matrices ``M_k`` (S x d), ``M_v`` (S x d); ``B = X M_k^T``.

    ``normalization="double"`` (the paper's code): softmax over the **token** axis, then l1-normalise each token's
    row over the S slots (no epsilon, so that S = 1 gives exactly ``A = 1``). ``"single"``: an ordinary softmax over
    the S slots, which encodes every token independently. Output ``A M_v`` (n x d); any length n (8431).
    """

    def __init__(self, d_model: int, n_memory: int, normalization: str = "double", *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.d_model, self.n_memory = _pos_int(d_model, "d_model"), _pos_int(n_memory, "n_memory")
        if normalization not in ("double", "single"):
            raise ValueError(f"normalization must be 'double' or 'single', got {normalization!r}")
        self.normalization = normalization
        self.mk = nn.Linear(self.d_model, self.n_memory, bias=False, dtype=dtype)
        self.mv = nn.Linear(self.n_memory, self.d_model, bias=False, dtype=dtype)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The n x S weight matrix ``A``."""
        x = _check_input(x)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must have d_model={self.d_model} channels, got {x.shape[-1]}")
        logits = self.mk(x)
        if self.normalization == "single":
            return torch.softmax(logits, dim=-1)
        a = torch.softmax(logits, dim=-2)  # over tokens: couples them through per-slot sums
        return a / a.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mv(self.attention(x))


def conv_receptive_field(kernel_size: int, dilations: list[int] | tuple[int, ...]) -> int:
    """Receptive field of a stack of 1-D convolutions of width ``kernel_size``, layer ``l`` with dilation
    ``dilations[l]``: it spans ``1 + (kernel_size - 1) * sum(dilations)`` tokens (first to last; badly ordered
    dilations can leave holes inside the span). Finite for any depth, unlike attention,
    which reaches every token in one layer: the article's argument about pretrained CNNs (8431)."""
    kernel_size = _pos_int(kernel_size, "kernel_size")
    if not isinstance(dilations, (list, tuple)) or len(dilations) == 0:
        raise ValueError(f"dilations must be a non-empty list of positive ints, got {dilations!r}")
    total = sum(_pos_int(dl, "dilations") for dl in dilations)
    return 1 + (kernel_size - 1) * total


def pairwise_jacobian_norms(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The ``n x n`` matrix of ``||d f(X)_i / d X_j||_F`` (float64), from ``torch.autograd.functional.jacobian``.

    ``f`` maps ``(n, d)`` to ``(n, d')``. Entry (i, j) says how much output token i depends on input token j: a
    diagonal matrix means tokens are encoded independently (8431).
    """
    if not callable(f):
        raise TypeError("f must be callable as f(X)")
    x = _check_input(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    jac = torch.autograd.functional.jacobian(f, x.detach().to(torch.float64))
    if jac.dim() != 4 or jac.shape[0] != x.shape[0]:
        raise ValueError(f"f must map (n, d) to (n, d'), got a Jacobian of shape {tuple(jac.shape)}")
    return jac.pow(2).sum(dim=(1, 3)).sqrt()
