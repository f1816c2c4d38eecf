"""ActivationRecorder: forward (and gradient) hooks on every block of a model with ``.blocks``, and per-layer statistics.

Serves why-residuals-deepnet (kexue.fm/archives/8994), pre-norm-vs-post-norm (9009) and gau-without-warmup (8990).
Only the most recent forward call is kept; every stored tensor is detached; hooks are removed on exit, also when an
exception is raised.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["ActivationRecorder"]


def _rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item()


class ActivationRecorder:
    """``with ActivationRecorder(model, grads=False) as rec: loss = f(model(x)); loss.backward()``.

    After the forward call: ``inputs[l]``, ``outputs[l]`` (block l's input x_l and output x_{l+1}),
    ``branches[l]`` (``{"mixer": ..., "ffn": ...}``, the raw branch outputs before ``branch_scale``) and
    ``sublayer_inputs[l]`` (the residual stream entering each sublayer: x_l for the mixer, the state between the two
    sublayers for the FFN); after backward (``grads=True``): ``output_grads[l]`` = dL/dx_{l+1}.
    ``n_calls`` counts forward calls of ``model``.
    """

    def __init__(self, model: nn.Module, *, grads: bool = False) -> None:
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise TypeError("model must have a non-empty nn.ModuleList `blocks` (a TinyTransformer)")
        self.model, self.blocks, self.grads = model, blocks, grads
        self.n_calls = 0
        self._handles: list = []
        self._reset()

    def _reset(self) -> None:
        self.inputs: dict[int, torch.Tensor] = {}
        self.outputs: dict[int, torch.Tensor] = {}
        self.branches: dict[int, dict[str, torch.Tensor]] = {}
        self.sublayer_inputs: dict[int, dict[str, torch.Tensor]] = {}
        self.output_grads: dict[int, torch.Tensor] = {}

    def __enter__(self) -> ActivationRecorder:
        def on_call(_module, _args):
            self.n_calls += 1
            self._reset()

        self._handles.append(self.model.register_forward_pre_hook(on_call))
        for l, block in enumerate(self.blocks):
            self._handles.append(block.register_forward_hook(self._block_hook(l)))
            for kind in ("mixer", "ffn"):
                branch = getattr(block, kind, None)
                if branch is not None:
                    self._handles.append(branch.register_forward_hook(self._branch_hook(l, kind)))
            # the residual stream entering each sublayer: the block input for the mixer; for the FFN, what norm2
            # receives (pre) or what the FFN receives (post, none)
            if getattr(block, "ffn", None) is not None:
                entry = block.norm2 if block.cfg.norm_position == "pre" else block.ffn
                self._handles.append(entry.register_forward_pre_hook(self._ffn_entry_hook(l)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _block_hook(self, l: int):
        def hook(_module, args, output):
            self.inputs[l] = args[0].detach()
            self.outputs[l] = output.detach()
            self.sublayer_inputs.setdefault(l, {})["mixer"] = args[0].detach()
            if self.grads and output.requires_grad:
                output.register_hook(lambda g: self.output_grads.__setitem__(l, g.detach()))
        return hook

    def _branch_hook(self, l: int, kind: str):
        def hook(_module, _args, output):
            self.branches.setdefault(l, {})[kind] = output.detach()
        return hook

    def _ffn_entry_hook(self, l: int):
        def hook(_module, args):
            self.sublayer_inputs.setdefault(l, {})["ffn"] = args[0].detach()
        return hook

    def stats(self) -> dict[str, np.ndarray]:
        """Per-layer float64 arrays (length n_layers) from the last forward call (and backward, for ``grad_rms``).

        ``rms_in``, ``rms_out``; ``rel_increment`` = ||x_{l+1} - x_l||_F / ||x_l||_F (over batch and tokens);
        ``cos``: mean per-token cosine of x_l and x_{l+1}; ``branch_ratio_mixer``/``branch_ratio_ffn``: rms of the
        raw branch output over rms of the residual stream entering that sublayer (NaN where the block has no such
        branch); ``grad_rms``: rms of dL/dx_{l+1} (only with ``grads=True`` after backward).
        """
        L = len(self.blocks)
        if len(self.outputs) != L:
            raise RuntimeError("no forward call recorded yet (call the model inside the `with` block)")
        out: dict[str, np.ndarray] = {k: np.full(L, np.nan) for k in
                                      ("rms_in", "rms_out", "rel_increment", "cos", "branch_ratio_mixer", "branch_ratio_ffn")}
        for l in range(L):
            x, y = self.inputs[l].double(), self.outputs[l].double()
            out["rms_in"][l], out["rms_out"][l] = _rms(x), _rms(y)
            out["rel_increment"][l] = (torch.linalg.vector_norm(y - x) / torch.linalg.vector_norm(x)).item()
            out["cos"][l] = torch.nn.functional.cosine_similarity(x, y, dim=-1).mean().item()
            for kind in ("mixer", "ffn"):
                if kind in self.branches.get(l, {}):
                    out[f"branch_ratio_{kind}"][l] = _rms(self.branches[l][kind]) / _rms(self.sublayer_inputs[l][kind])
        if self.grads:
            if len(self.output_grads) != L:
                raise RuntimeError("grads=True but no backward pass recorded yet (call loss.backward() first)")
            out["grad_rms"] = np.array([_rms(self.output_grads[l]) for l in range(L)])
        return out

    def param_grad_norms(self) -> np.ndarray:
        """Per-block Frobenius norm of all parameter gradients (from ``.grad`` after backward)."""
        norms = []
        for l, block in enumerate(self.blocks):
            grads = [p.grad for p in block.parameters() if p.requires_grad]
            if not grads or any(g is None for g in grads):
                raise RuntimeError(f"block {l} has parameters without .grad: run loss.backward() first")
            norms.append(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)).item())
        return np.array(norms)
