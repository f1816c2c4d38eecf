"""Lesion and merge profiles and effective depth of Pre-Norm and Post-Norm stacks (pre-norm-vs-post-norm, 9009).

A *lesion* removes block t from a stack (its output is replaced by its input, as ``skip_layers={t}`` does in the
shared :class:`~kexue_lite.training.TinyTransformer`); a *merge* replaces blocks t and t+1 by one block of twice the
width applied to the same input, the article's eq. (4):

    x_{t+2} = x_t + F_t(Norm(x_t)) + F_{t+1}(Norm(x_{t+1}))   ->   x_t + F_t(Norm(x_t)) + F_{t+1}(Norm(x_t)),

with F(x) = block(x) - x. Both profiles report the relative change ||y' - y||_F / ||y||_F of the model's output y
(after its final norm and head, which is what a head or a loss sees). Both work on any ``nn.Module`` whose
``.blocks`` is a sequence of modules called in order as ``block(x, ...) -> x``, by forward hooks on those blocks; when
``.blocks`` is an ``nn.ModuleList`` the blocks below the surgery are replayed from one stored run, which halves the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["lesion_profile", "merge_profile", "effective_depth", "relative_change"]


def _blocks(model: nn.Module) -> Sequence[nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module with a .blocks list, got {type(model).__name__}")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, list, tuple)) or not all(isinstance(b, nn.Module) for b in blocks):
        raise TypeError("model must have .blocks, a ModuleList of the blocks it applies in order")
    if len(blocks) == 0:
        raise ValueError("model has no blocks (model.blocks is empty)")
    return blocks


def _check_input(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (float inputs or integer token ids), got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("x is empty")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"x must hold real floats or integer token ids, got dtype {x.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    return x


def relative_change(new: torch.Tensor, ref: torch.Tensor) -> float:
    """||new - ref||_F / ||ref||_F in float64 (the measure of both profiles)."""
    if not isinstance(new, torch.Tensor) or not isinstance(ref, torch.Tensor):
        raise TypeError("new and ref must be torch tensors")
    if new.shape != ref.shape:
        raise ValueError(f"new and ref must have the same shape, got {tuple(new.shape)} and {tuple(ref.shape)}")
    if not new.is_floating_point() or not ref.is_floating_point():
        raise TypeError("new and ref must be floating-point tensors")
    ref64 = ref.detach().double()
    scale = float(ref64.norm())
    if not np.isfinite(scale) or scale == 0.0:
        raise ValueError(f"ref must have a finite non-zero norm, got {scale}")
    change = float((new.detach().double() - ref64).norm()) / scale
    if not np.isfinite(change):
        raise ValueError("new contains NaN or infinite values")
    return change


def _run(model: nn.Module, x: torch.Tensor, mask: Any, positions: Any) -> torch.Tensor:
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if positions is not None:
        kwargs["positions"] = positions
    out = model(x, **kwargs)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError("model(x) must return one floating-point tensor (do not ask for hidden states)")
    return out


class _Replay(nn.Module):
    """Stands in for an unchanged block below the surgery: returns that block's stored output, ignoring its input."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.output


def _profile(model: nn.Module, x: torch.Tensor, mask: Any, positions: Any,
             hooks: Callable[[int], list[Any]], count: int) -> np.ndarray:
    """Run the base model once, storing every block's output; then, for each t, install ``hooks(t)`` and rerun with
    blocks 0..t-1 replaced by replays of their stored outputs (they are untouched by a surgery at t or later, and
    the model is deterministic in eval mode), so a profile costs about L^2/2 block calls instead of L^2."""
    blocks = _blocks(model)
    swappable = isinstance(blocks, nn.ModuleList)
    was_training = model.training
    model.eval()  # dropout off: the change must come from the surgery alone
    try:
        with torch.no_grad():
            stored: list[torch.Tensor | None] = [None] * len(blocks)
            keep = [b.register_forward_hook(lambda mod, args, output, i=i: stored.__setitem__(i, output))
                    for i, b in enumerate(blocks)]
            try:
                base = _run(model, x, mask, positions)
            finally:
                for h in keep:
                    h.remove()
            swappable = swappable and all(isinstance(o, torch.Tensor) for o in stored)
            out = np.empty(count, dtype=np.float64)
            for t in range(count):
                originals = list(blocks[:t]) if swappable else []
                handles = hooks(t)
                try:
                    for i in range(len(originals)):
                        blocks[i] = _Replay(stored[i])
                    out[t] = relative_change(_run(model, x, mask, positions), base)
                finally:
                    for i, original in enumerate(originals):
                        blocks[i] = original
                    for h in handles:
                        h.remove()
    finally:
        model.train(was_training)
    return out


def lesion_profile(model: nn.Module, x: torch.Tensor, *, mask: Any = None, positions: Any = None) -> np.ndarray:
    """Relative change of ``model(x)`` when block t alone is skipped, for t = 0..L-1 (pre-norm-vs-post-norm, 9009).

    Skipping block t means x_{t+1} = x_t, the same as ``TinyTransformer(..., skip_layers={t})``. The change is
    ||y_{-t} - y||_F / ||y||_F of the whole output (after the model's final norm and head). Returns float64 (L,).
    The model is run in eval mode and without gradients; its training flag is restored.
    """
    blocks = _blocks(model)
    x = _check_input(x)

    def skip(t: int) -> list[Any]:
        return [blocks[t].register_forward_hook(lambda mod, args, output: args[0])]

    return _profile(model, x, mask, positions, skip, len(blocks))


def _block_config(model: nn.Module) -> Any:
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        cfg = getattr(_blocks(model)[0], "cfg", None)
    if cfg is None:
        raise TypeError("model must carry its BlockConfig as model.cfg (or model.blocks[0].cfg)")
    return cfg


def merge_profile(model: nn.Module, x: torch.Tensor, *, mask: Any = None, positions: Any = None) -> np.ndarray:
    """Relative change of ``model(x)`` when blocks t and t+1 are merged into one wide block, t = 0..L-2 (9009).

    The merged pair maps x_t to x_t + F_t(x_t) + F_{t+1}(x_t) with F(z) = block(z) - z: both blocks read the same
    input, as the two halves of a block of twice the width would (the article's eq. (4)). This is the Pre-Norm
    identity x_t + F_t(Norm(x_t)) + F_{t+1}(Norm(x_t)) only when each block is x + F(Norm(x)), so the model's
    config must have ``norm_position == "pre"``, ``alpha == 1`` and ``branch_scale == 1`` (else ``ValueError``).
    Returns float64 (L-1,).
    """
    blocks = _blocks(model)
    cfg = _block_config(model)
    position = getattr(cfg, "norm_position", None)
    alpha = getattr(cfg, "alpha", 1.0)
    branch_scale = getattr(cfg, "branch_scale", 1.0)
    if position != "pre":
        raise ValueError(f"model's norm_position must be 'pre' for a merge (x + F_t + F_t+1), got {position!r}")
    if alpha != 1 or branch_scale != 1:
        raise ValueError(f"model's alpha and branch_scale must be 1 for a merge, got alpha={alpha}, "
                         f"branch_scale={branch_scale}")
    if len(blocks) < 2:
        raise ValueError(f"model must have at least 2 blocks to merge a pair, got {len(blocks)}")
    x = _check_input(x)

    def merge(t: int) -> list[Any]:
        state: dict[str, torch.Tensor] = {}

        def grab(mod: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            state["x"], state["y"] = args[0], output  # x_t and x_t + F_t(x_t)

        def replace(mod: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
            x_t = state["x"]
            # mod.forward bypasses the hooks (this one included); the block reads x_t instead of x_{t+1}
            return state["y"] + (mod.forward(x_t, *args[1:], **kwargs) - x_t)

        return [blocks[t].register_forward_hook(grab, with_kwargs=True),
                blocks[t + 1].register_forward_hook(replace, with_kwargs=True)]

    return _profile(model, x, mask, positions, merge, len(blocks) - 1)


def effective_depth(lesion: np.ndarray, cap: float = 1.0) -> float:
    """Effective-depth proxy D_eff = sum_t min(cap, lesion_t) of a lesion profile (pre-norm-vs-post-norm, 9009).

    A block whose removal changes the output by ``cap`` or more (relative) counts as one whole layer; a block whose
    removal hardly matters counts as the fraction it changes. ``lesion`` is a 1-D float array of non-negative,
    finite values (e.g. from :func:`lesion_profile`); ``cap`` must be positive.
    """
    if isinstance(lesion, torch.Tensor):
        lesion = lesion.detach().cpu().numpy()
    arr = np.asarray(lesion)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"lesion must be an array of floats (relative changes), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"lesion must be 1-D (one value per block), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("lesion is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError("lesion contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError("lesion must be non-negative (relative changes)")
    if isinstance(cap, bool) or not isinstance(cap, (int, float, np.integer, np.floating)) or not np.isfinite(cap) or cap <= 0:
        raise ValueError(f"cap must be a positive finite number, got {cap!r}")
    return float(np.minimum(arr.astype(np.float64), float(cap)).sum())
