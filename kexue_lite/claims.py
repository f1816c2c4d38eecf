"""The "Reproducing the claims" table every notebook ends with.

Each row puts a value reported in the article (or its paper) beside ours and *asserts*
the verdict: a numeric claim must agree within the stated tolerance; a qualitative claim
records what we found, including claims that do not reproduce, and asserts our finding so
that a change in the numerics that overturns it stops the notebook.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

__all__ = ["Claims"]


@dataclass
class _Row:
    claim: str
    reported: str
    measured: str
    tolerance: str
    verdict: str


@dataclass
class Claims:
    """Collect rows with :meth:`close` and :meth:`finding`; display the object for the table."""

    rows: list[_Row] = field(default_factory=list)

    def close(self, claim: str, reported: float, measured: float, tol: float, *, fmt: str = ".4g") -> None:
        """A numeric claim: assert ``|measured - reported| <= tol``."""
        if not tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol}")
        if not (math.isfinite(reported) and math.isfinite(measured)):
            raise ValueError(f"{claim}: reported and measured must be finite")
        ok = abs(measured - reported) <= tol
        self.rows.append(_Row(claim, format(reported, fmt), format(measured, fmt), f"± {tol:g}", "reproduced" if ok else "FAILS"))
        if not ok:
            raise AssertionError(f"{claim}: measured {measured:{fmt}} vs reported {reported:{fmt}} (tolerance {tol:g})")

    def finding(self, claim: str, reported: str, measured: str, holds: bool, verdict: str) -> None:
        """A qualitative claim. ``holds`` is our asserted finding; ``verdict`` says what it means
        for the claim ("reproduced", "not reproduced", "partially reproduced", ...)."""
        if not isinstance(holds, bool):
            raise TypeError(f"holds must be a bool, got {type(holds).__name__}")
        self.rows.append(_Row(claim, reported, measured, "—", verdict if holds else "FAILS"))
        if not holds:
            raise AssertionError(f"{claim}: our finding ({measured}) no longer holds")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("Claim", "Reported", "Measured here", "Tolerance", "Verdict"))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in (r.claim, r.reported, r.measured, r.tolerance, r.verdict)) + "</tr>"
            for r in self.rows
        )
        return f'<table class="kexue-claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        return "\n".join(f"{r.verdict:>22} | {r.claim} | reported {r.reported} | measured {r.measured} | {r.tolerance}" for r in self.rows)
