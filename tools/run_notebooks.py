"""Execute chosen notebooks, as the site build does or in full mode, and report their claims.

    python tools/run_notebooks.py [--full] [--live] [--save DIR] NOTEBOOK [NOTEBOOK ...]
    python tools/run_notebooks.py --full --all

A NOTEBOOK is a slug (``rope``), an article number (``8265``) or a path (``book/positional/rope.md``).
Each one is executed from its MyST source with nbclient in a fresh ``python3`` kernel of this
environment, in its own folder (as Jupyter Book runs it), with ``KEXUE_STATIC=1`` unless
``--live`` is given. The claims table is written through ``KEXUE_CLAIMS_DIR``; the script prints
the wall time and the verdict counts of every notebook and exits non-zero if one fails.

``--full`` sets ``KEXUE_FULL=1`` (a GPU switches it on by itself) and writes each notebook's
table to ``results/full/<part>/<slug>.json``, which the website shows as the "Full mode" table
and counts in the reproducibility report. It needs only nbclient, ipykernel and jupytext
beside kexue_lite's own dependencies, so it runs on any GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from kexue_book import FULL_RESULTS, load_catalogue  # noqa: E402


def find(names: list[str], every: bool) -> list:
    _, articles = load_catalogue()
    existing = [a for a in articles if a.exists]
    if every:
        return existing
    chosen = []
    for name in names:
        match = [a for a in existing if name in (a.slug, str(a.number)) or Path(name).resolve() == a.source]
        if not match:
            raise SystemExit(f"{name}: no notebook with that slug, number or path")
        chosen += match
    return chosen


def execute(article, *, full: bool, live: bool, claims_dir: Path, timeout: int = 1200, save: Path | None = None) -> float:
    """Run one notebook; return its wall time in seconds (raises on any cell error). With ``save``,
    write the executed notebook, outputs and all, to ``save/<slug>.ipynb``."""
    import jupytext
    from nbclient import NotebookClient

    os.environ["KEXUE_FULL"] = "1" if full else "0"
    os.environ["KEXUE_STATIC"] = "0" if live else "1"
    os.environ["KEXUE_CLAIMS_DIR"] = str(claims_dir)
    nb = jupytext.read(article.source)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(article.source.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        # The site build fails on anything written to stderr (warnings too): so does this.
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                if out.get("name") == "stderr":
                    raise RuntimeError(f"cell {i} wrote to stderr: {out['text'][:500]}")
                # an exception raised while displaying (e.g. a mathtext error when a figure is drawn at the end of a
                # cell) is stored as an error output but does not fail the cell
                if out.get("output_type") == "error":
                    raise RuntimeError(f"cell {i} has an error output: {out.get('ename')}: {out.get('evalue', '')[:300]}")
    finally:
        if save is not None:
            import nbformat

            save.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, save / f"{article.slug}.ipynb")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="slugs, article numbers or paths")
    parser.add_argument("--all", action="store_true", help="every notebook that exists")
    parser.add_argument("--full", action="store_true", help="full mode; write results/full/<part>/<slug>.json")
    parser.add_argument("--live", action="store_true", help="live sliders (KEXUE_STATIC=0)")
    parser.add_argument("--save", type=Path, help="write each executed notebook (with outputs) to SAVE/<slug>.ipynb")
    args = parser.parse_args(argv)
    if not args.notebooks and not args.all:
        parser.error("name at least one notebook, or --all")
    articles = find(args.notebooks, args.all)
    failed, times = 0, []
    print(f"{'notebook':<40} {'mode':<6} {'seconds':>8}  verdicts")
    with tempfile.TemporaryDirectory() as tmp:
        for article in articles:
            try:
                seconds = execute(article, full=args.full, live=args.live, claims_dir=Path(tmp), save=args.save)
            except Exception as exc:  # report every notebook, then fail
                failed += 1
                print(f"{article.slug:<40} FAILED: {type(exc).__name__}: {str(exc)[-2000:]}")
                continue
            record = json.loads((Path(tmp) / f"{article.number}.json").read_text("utf-8"))
            record["wall_seconds"] = round(seconds, 1)
            times.append(seconds)
            counts: dict[str, int] = {}
            for row in record["rows"]:
                counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
            print(f"{article.slug:<40} {record['mode']:<6} {seconds:8.1f}  {counts}  ({record['device']})")
            if args.full:
                target = FULL_RESULTS / article.part / f"{article.slug}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if len(times) > 1:
        times.sort()
        median = (times[(len(times) - 1) // 2] + times[len(times) // 2]) / 2
        print(f"{'median':<40} {'':<6} {median:8.1f}\n{'max':<40} {'':<6} {times[-1]:8.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
