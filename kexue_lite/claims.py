"""The "Reproducing the claims" table every notebook ends with (contract v2).

Each row puts what the article (or its paper) reports beside what the notebook measured, with
a verdict from one vocabulary (:data:`VERDICTS`):

* :meth:`Claims.close`: a number the article reports; *reproduced* when the measured value is
  within ``tol`` of it, else the notebook stops.
* :meth:`Claims.finding`: a qualitative claim. ``holds`` is **computed** in the notebook (a
  comparison of measured values, or the boolean result of a sympy check kept in a variable;
  ``tests/test_notebooks.py`` rejects a literal ``True``/``False``); ``verdict`` says what the
  finding means for the claim (*reproduced*, *partially reproduced*, or *not reproduced*, where
  the notebook shows why the article is wrong). If ``holds`` is false the notebook stops.
* :meth:`Claims.not_attempted`: a claim the book does not test (pre-training, image models, GPU
  clusters), with the reason; nothing is asserted.

When the environment variable ``KEXUE_CLAIMS_DIR`` names a folder (the Makefile sets it for
the site build; ``tools/run_notebooks.py`` sets it too), displaying the table also writes it
there as ``<part>/<slug>.json``: the article number, mode (quick/full), device, seconds since
:func:`kexue_lite.env.setup` and the rows. ``book/_ext/kexue_book.py`` builds the
reproducibility report from those files.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import env

__all__ = ["Claims", "VERDICTS", "LEGEND"]

#: The one verdict vocabulary of the book, in the order the report counts them.
VERDICTS = ("reproduced", "partially reproduced", "not reproduced", "not attempted")

#: What each verdict means (shown under every table and on the reproducibility report).
LEGEND = {
    "reproduced": "the article's number or statement holds here, within the stated tolerance",
    "partially reproduced": "part of the claim holds here; the row says which part does not",
    "not reproduced": "the claim fails here, and the notebook shows why the article or paper is wrong",
    "not attempted": "the book does not test this claim (it needs pre-training, image models or GPU clusters)",
}


@dataclass
class Row:
    claim: str
    reported: str
    measured: str
    tolerance: str
    verdict: str


@dataclass
class Claims:
    """Collect rows with :meth:`close`, :meth:`finding` and :meth:`not_attempted`; display the
    object for the table. ``article`` is the article's number in ``book/catalogue.yml``."""

    article: int
    rows: list[Row] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.article, int) or isinstance(self.article, bool) or self.article <= 0:
            raise TypeError(f"article must be the article's number (a positive int), got {self.article!r}")

    def close(self, claim: str, reported: float, measured: float, tol: float, *, fmt: str = ".4g") -> None:
        """A numeric claim: assert ``|measured - reported| <= tol``; the verdict is *reproduced*."""
        for name, value in (("reported", reported), ("measured", measured), ("tol", tol)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        reported, measured, tol = float(reported), float(measured), float(tol)
        if not tol >= 0 or not math.isfinite(tol):
            raise ValueError(f"tol must be finite and non-negative, got {tol}")
        if not (math.isfinite(reported) and math.isfinite(measured)):
            raise ValueError(f"{claim}: reported and measured must be finite, got {reported} and {measured}")
        ok = abs(measured - reported) <= tol
        if not ok:
            raise AssertionError(f"{claim}: measured {measured:{fmt}} vs reported {reported:{fmt}} (tolerance {tol:g})")
        self.rows.append(Row(claim, format(reported, fmt), format(measured, fmt), f"± {tol:g}", "reproduced"))

    def finding(self, claim: str, reported: str, measured: str, holds: bool, verdict: str) -> None:
        """A qualitative claim. ``holds`` is the notebook's computed finding (never a literal);
        ``verdict`` is what it means for the claim: "reproduced", "partially reproduced" or
        "not reproduced". Stops the notebook when ``holds`` is false."""
        if isinstance(holds, np.bool_):
            holds = bool(holds)
        if not isinstance(holds, bool):
            raise TypeError(f"holds must be a bool (a computed comparison), got {type(holds).__name__}")
        if verdict not in VERDICTS[:3]:
            raise ValueError(f"verdict must be one of {VERDICTS[:3]} (use not_attempted for untested claims), got {verdict!r}")
        if not holds:
            raise AssertionError(f"{claim}: the finding ({measured}) no longer holds")
        self.rows.append(Row(claim, reported, measured, "—", verdict))

    def not_attempted(self, claim: str, reported: str, why: str) -> None:
        """A claim the book does not test; ``why`` says what it would need. Nothing is asserted."""
        if not why.strip():
            raise ValueError("why must say what testing the claim would need")
        self.rows.append(Row(claim, reported, why, "—", "not attempted"))

    def counts(self) -> dict[str, int]:
        """Rows per verdict, in the order of :data:`VERDICTS`."""
        return {v: sum(r.verdict == v for r in self.rows) for v in VERDICTS}

    def record(self) -> dict:
        """The table as the JSON written for the reproducibility report."""
        setup = env.setup_time()
        return {
            "article": self.article,
            "mode": "full" if env.full_mode() else "quick",
            "device": env.device_name(),
            "seconds": None if setup is None else round(time.perf_counter() - setup, 2),
            "date": datetime.date.today().isoformat(),
            "peak_gpu_mib": env.peak_gpu_mib(),
            "rows": [asdict(r) for r in self.rows],
        }

    def write(self, folder: str | os.PathLike) -> Path:
        """Write :meth:`record` to ``folder/<article>.json`` and return the path."""
        if not self.rows:
            raise ValueError("the claims table is empty: add rows before writing it")
        path = Path(folder) / f"{self.article}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        folder = os.environ.get("KEXUE_CLAIMS_DIR", "").strip()
        if folder:
            self.write(folder)
        return html_table(self.rows)

    def __repr__(self) -> str:
        return "\n".join(f"{r.verdict:>22} | {r.claim} | reported {r.reported} | measured {r.measured} | {r.tolerance}" for r in self.rows)


def html_table(rows: list[Row] | list[dict], caption: str = "") -> str:
    """The claims table as HTML (rows as :class:`Row` or as their JSON dicts), with the legend."""
    keys = ("claim", "reported", "measured", "tolerance", "verdict")
    head = "".join(f"<th>{h}</th>" for h in ("Claim", "Reported", "Measured here", "Tolerance", "Verdict"))
    body = ""
    for r in rows:
        values = [r[k] if isinstance(r, dict) else getattr(r, k) for k in keys]
        cls = values[-1].replace(" ", "-")
        body += "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values[:-1])
        body += f'<td class="verdict verdict-{cls}">{html.escape(values[-1])}</td></tr>'
    legend = "; ".join(f"<b>{html.escape(v)}</b>: {html.escape(LEGEND[v])}" for v in VERDICTS)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<table class="kexue-claims">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f'<p class="kexue-claims-legend">{legend}.</p>'
    )
