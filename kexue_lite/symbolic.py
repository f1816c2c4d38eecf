"""Sympy checks used by every notebook's derivation section.

Each helper raises ``AssertionError`` with the residual when the algebra is wrong, so a
broken derivation stops the notebook (and the site build) instead of printing a wrong
formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

__all__ = ["assert_identity", "assert_numeric", "show"]


def assert_identity(lhs: sp.Expr, rhs: sp.Expr | float = 0, *, name: str = "identity") -> None:
    """Assert ``lhs == rhs`` symbolically: ``expand`` first (cheap), then ``simplify``."""
    residual = sp.expand(sp.sympify(lhs) - sp.sympify(rhs))
    if residual == 0:
        return
    residual = sp.simplify(residual)
    if residual != 0:
        raise AssertionError(f"{name} fails: lhs - rhs simplifies to {residual}")


def assert_numeric(
    expr: sp.Expr,
    symbols: Sequence[sp.Symbol],
    fn: Callable[..., object],
    points: np.ndarray,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    name: str = "expression",
) -> float:
    """Assert that ``expr`` (lambdified over ``symbols``) equals ``fn`` at ``points``.

    ``points`` has shape (m, len(symbols)); ``fn`` is called with the same columns.
    Returns the largest absolute difference.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(symbols):
        raise ValueError(f"points must have shape (m, {len(symbols)}), got {pts.shape}")
    f = sp.lambdify(list(symbols), expr, "numpy")
    cols = [pts[:, i] for i in range(pts.shape[1])]
    want = np.broadcast_to(np.asarray(f(*cols), dtype=complex), (pts.shape[0],))
    got = np.broadcast_to(np.asarray(fn(*cols), dtype=complex), (pts.shape[0],))
    err = float(np.max(np.abs(want - got)))
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(f"{name}: symbolic and numeric disagree, max |diff| = {err:.3g}")
    return err


def show(lhs: str, expr: sp.Expr) -> object:
    """Display ``lhs = expr`` as LaTeX (returns the IPython ``Math`` object)."""
    from IPython.display import Math

    return Math(f"{lhs} = {sp.latex(expr)}")
