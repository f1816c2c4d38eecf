"""Print every notebook's execution time, read from Jupyter Book's execution cache.

Jupyter Book's ``execute.timeout`` bounds single cells; the per-notebook budget is read here
(and asserted by ``tests/test_site.py``): jupyter-cache records ``execution_seconds`` for each
cached notebook. Usage: ``python tools/exec_times.py [--markdown]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from kexue_book import load_catalogue  # noqa: E402

CACHE = ROOT / "_build" / ".jupyter_cache"
QUICK_BUDGET_S = 20.0  # the notebook contract: every notebook, idle 2-core machine
MEDIAN_BUDGET_S = 10.0  # the notebook contract: the median notebook
HARD_LIMIT_S = 60.0  # tests fail above this (CI machines are busy: a gate with headroom)


def execution_times() -> dict[str, float | None]:
    """``{book/<part>/<slug>.md: seconds or None}`` for every notebook in the catalogue that exists.

    ``None`` means the cache holds no record matching the notebook's current content.
    """
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE))
    _, articles = load_catalogue()
    times: dict[str, float | None] = {}
    for article in (a for a in articles if a.exists):
        try:
            record = cache.get_cached_project_nb(str(article.source))
        except KeyError:
            record = None
        seconds = None if record is None else record.data.get("execution_seconds")
        times[str(article.source.relative_to(ROOT))] = seconds
    return times


def main() -> int:
    if not CACHE.exists():
        print(f"no execution cache at {CACHE}: run `make book` first")
        return 1
    times = execution_times()
    print(f"{'notebook':<55} {'seconds':>8}  (quick-mode budget {QUICK_BUDGET_S:.0f} s)")
    for path, seconds in times.items():
        shown = "not cached" if seconds is None else f"{seconds:8.1f}"
        flag = "" if seconds is None or seconds <= QUICK_BUDGET_S else "  OVER BUDGET"
        print(f"{path:<55} {shown:>8}{flag}")
    known = sorted(s for s in times.values() if s is not None)
    if known:
        median = known[len(known) // 2] if len(known) % 2 else (known[len(known) // 2 - 1] + known[len(known) // 2]) / 2
        print(f"{'median':<55} {median:8.1f}  (budget {MEDIAN_BUDGET_S:.0f} s)")
        print(f"{'max':<55} {known[-1]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
