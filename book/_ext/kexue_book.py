"""Sphinx extension of the kexue-lite book (loaded through ``_config.yml``).

It also holds what the tests and ``tools/new_notebook.py`` share with the site: the catalogue
loader and the notebook template (setup cell and title line). On the site it does five
things, each small (and a sixth, the root redirect, names the favicon):

1. **Catalogue tables.** ``book/catalogue.yml`` is the single source of truth. A line
   ``% catalogue-table`` in ``book/intro.md`` becomes the table of all articles, and a line
   ``% part-notebooks`` in ``book/<part>/index.md`` becomes that part's reading list; the
   notebooks that exist are linked, the others are listed as planned.
2. **Colab links.** sphinx-book-theme's Colab button points at the page's source
   (``book/<part>/<slug>.md``), which Colab cannot open; we point it at the paired
   ``notebooks/<part>/<slug>.ipynb``.
3. **Offline math.** MathJax 3 (``tex-svg.js``, one self-contained file shipped by the
   ``sphinx-mathjax-offline`` package) is copied into ``_static/mathjax/``; ``_config.yml``
   points ``mathjax_path`` at it, so no CDN is needed.
4. **Contract-v2 pages.** ``book/reproducibility.md`` holds a ``{reproducibility-report}``
   directive, filled once every notebook has run (at ``doctree-resolved``) from the claims JSON
   that the notebooks wrote into ``KEXUE_CLAIMS_DIR`` and from the committed full-mode files
   ``results/full/<part>/<slug>.json``; a notebook page with such a file shows a "Full mode"
   table under its own claims table. ``book/errata.md`` holds a line ``% errata-list``, replaced
   by the entries of ``book/errata.yml``.
5. **One copy of each script.** In the Jupyter Book 1 stack, sphinx-thebe and
   sphinx-togglebutton register inline configuration scripts after the HTML builder exists,
   so each lands twice (once in the builder, filename None; once through the registry,
   filename ""), and the second ``const THEBE_JS_URL = ...`` throws "Identifier has already
   been declared". We keep the first copy of each script.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from docutils.parsers.rst import Directive

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "book" / "catalogue.yml"
#: Committed full-mode claims tables, ``<part>/<slug>.json`` (written by tools/run_notebooks.py --full).
FULL_RESULTS = ROOT / "results" / "full"
PARTS = ("positional", "attention", "training", "ssm", "generative", "probability", "multimodal", "notes")


@dataclass(frozen=True)
class Article:
    number: int
    part: str
    slug: str
    title: str
    title_zh: str
    date: str
    url: str

    @property
    def docname(self) -> str:
        return f"book/{self.part}/{self.slug}"

    @property
    def source(self) -> Path:
        return ROOT / "book" / self.part / f"{self.slug}.md"

    @property
    def ipynb(self) -> str:
        return f"notebooks/{self.part}/{self.slug}.ipynb"

    @property
    def exists(self) -> bool:
        return self.source.exists()


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    blurb: str


def load_catalogue(path: Path = CATALOGUE) -> tuple[list[Part], list[Article]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    parts = [Part(**p) for p in data["parts"]]
    articles = [Article(**{**a, "date": str(a["date"])}) for a in data["articles"]]
    return parts, articles


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` of the repository, configured once in ``_config.yml``."""
    repo = yaml.safe_load(config_path.read_text(encoding="utf-8"))["repository"]
    return repo["url"].rstrip("/"), repo["branch"]


def colab_url(article: Article) -> str:
    url, branch = repository()
    return url.replace("https://github.com/", "https://colab.research.google.com/github/") + (
        f"/blob/{branch}/{article.ipynb}"
    )


# ------------------------------------------------------------ the notebook template
#: The first code cell of every notebook, identical everywhere (tests/test_notebooks.py).
SETUP_CELL = """\
# Setup (the same in every notebook): install kexue_lite on Colab, import, seed, pick the device.
import subprocess
import sys

if "google.colab" in sys.modules:  # a no-op elsewhere; pins nothing, so Colab's own torch stays
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "kexue_lite @ git+{url}@{branch}"], check=True)

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

from kexue_lite import claims, env, prose, symbolic, viz

ENV = env.setup(seed=0)
viz.use_style()"""


def setup_cell() -> str:
    url, branch = repository()
    return SETUP_CELL.format(url=url, branch=branch)


def title_line(article: Article) -> str:
    """The line under every notebook's title: original article, date, Colab link."""
    return (
        f"**Original:** [{article.title_zh}]({article.url}) by Su Jianlin, Scientific Spaces, "
        f"{article.date} · [Open in Colab]({colab_url(article)})"
    )


# ---------------------------------------------------------------- 1. catalogue tables
def _link(article: Article, href: str) -> str:
    """A MyST link to the notebook (``href`` is relative to the linking page), or "planned"."""
    return f"[{article.title}]({href})" if article.exists else f"{article.title} *(planned)*"


def catalogue_table() -> str:
    parts, articles = load_catalogue()
    titles = {p.name: p.title for p in parts}
    rows = [
        "| Part | Notebook | Original (Chinese) | Date |",
        "|---|---|---|---|",
    ]
    for a in articles:
        rows.append(
            f"| {titles[a.part]} | {_link(a, f'{a.part}/{a.slug}.md')} | [{a.title_zh}]({a.url}) | {a.date} |"
        )
    done = sum(a.exists for a in articles)
    return f"{len(articles)} articles, {done} with a notebook so far.\n\n" + "\n".join(rows)


def part_reading_list(part: str) -> str:
    _, articles = load_catalogue()
    items = []
    for i, a in enumerate([a for a in articles if a.part == part], 1):
        items.append(f"{i}. {_link(a, f'{a.slug}.md')} — original: [{a.title_zh}]({a.url}) ({a.date})")
    return "\n".join(items)


def _fill_placeholders(app: Any, docname: str, source: list[str]) -> None:
    text = source[0]
    if "% catalogue-table" in text:
        text = text.replace("% catalogue-table", catalogue_table())
    if "% part-notebooks" in text:
        part = docname.split("/")[1]
        text = text.replace("% part-notebooks", part_reading_list(part))
    if "% errata-list" in text:
        text = text.replace("% errata-list", errata_list())
    source[0] = text


# ------------------------------------------------------------------------- errata
ERRATA = ROOT / "book" / "errata.yml"
ERRATA_FIELDS = ("article", "source", "where", "printed", "correct", "checked", "notebook", "section")
ERRATA_SOURCES = ("article", "paper", "spec")
ERRATA_LABELS = {"article": "The article", "paper": "The paper", "spec": "The book's specification"}


def load_errata(path: Path = ERRATA) -> list[dict]:
    """The entries of ``book/errata.yml``, checked: every field present, a known article and notebook."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    _, articles = load_catalogue()
    numbers = {a.number for a in articles}
    notebooks = {f"{a.part}/{a.slug}" for a in articles if a.exists}
    for i, entry in enumerate(entries):
        missing = [f for f in ERRATA_FIELDS if not str(entry.get(f, "")).strip()]
        if missing or set(entry) - set(ERRATA_FIELDS):
            raise ValueError(f"errata.yml entry {i}: missing {missing}, unknown {sorted(set(entry) - set(ERRATA_FIELDS))}")
        if entry["article"] not in numbers or entry["notebook"] not in notebooks or entry["source"] not in ERRATA_SOURCES:
            raise ValueError(f"errata.yml entry {i}: unknown article, notebook or source: {entry}")
    return entries


def heading_anchor(title: str) -> str:
    """The anchor MyST gives a heading (``myst_heading_anchors``, GitHub's rule): only its text and inline
    code count (math is dropped), then lower case, spaces to -, punctuation dropped."""
    import re

    from myst_parser.mdit_to_docutils.base import default_slugify

    return default_slugify(re.sub(r"\$[^$]*\$", "", title.strip()).replace("`", ""))


def errata_list() -> str:
    """``book/errata.yml`` as MyST: one entry per error, grouped by article in catalogue order."""
    _, articles = load_catalogue()
    by_number = {a.number: a for a in articles}
    entries = load_errata()
    counts = {src: sum(e["source"] == src for e in entries) for src in ERRATA_SOURCES}
    out = [f"{len(entries)} errors found so far, concerning {len({e['article'] for e in entries})} articles: "
           f"{counts['article']} in the articles, {counts['paper']} in the papers they discuss and "
           f"{counts['spec']} in the book's own specifications.\n"]
    for article in articles:
        mine = [e for e in entries if e["article"] == article.number]
        if not mine:
            continue
        out.append(f"## {article.title}\n\nOriginal: [{article.title_zh}]({article.url})\n")
        for e in mine:
            target = by_number[e["article"]]
            link = f"[{e['section']}]({e['notebook']}.md#{heading_anchor(e['section'])})"
            out.append(
                f"**{ERRATA_LABELS[e['source']]}, {e['where']}.**\n\n"
                f"- *Printed:* {e['printed']}\n- *Correct:* {e['correct']}\n"
                f"- *How it was checked:* {e['checked']}\n- *Shown in:* {link} of [{target.title}]({e['notebook']}.md)\n"
            )
    return "\n".join(out)


# ----------------------------------------------------------- claims, report, full mode
class ReportPlaceholder(nodes.General, nodes.Element):
    """Where ``{reproducibility-report}`` stands until every notebook has run."""


class ReproducibilityReport(Directive):
    has_content = False

    def run(self) -> list[nodes.Node]:
        return [ReportPlaceholder()]


def _kexue_claims():
    from kexue_lite import claims

    return claims


def claims_dir() -> Path:
    """Where the site build's notebooks write their claims JSON (the Makefile sets it)."""
    folder = os.environ.get("KEXUE_CLAIMS_DIR", "").strip()
    if not folder:
        raise RuntimeError("KEXUE_CLAIMS_DIR is not set: build the site with `make book`")
    return Path(folder)


def load_records() -> dict[str, dict[int, dict]]:
    """``{"quick": {number: record}, "full": {number: record}}`` for the notebooks that exist.

    A notebook without its quick-mode record is an error: the execution cache kept a notebook
    whose claims file is gone (``make clean`` and build again)."""
    _, articles = load_catalogue()
    records: dict[str, dict[int, dict]] = {"quick": {}, "full": {}}
    for a in (a for a in articles if a.exists):
        quick = claims_dir() / f"{a.number}.json"
        if not quick.exists():
            raise RuntimeError(f"no claims record for {a.docname} in {quick.parent}: run `make clean` and `make book`")
        records["quick"][a.number] = json.loads(quick.read_text("utf-8"))
        full = FULL_RESULTS / a.part / f"{a.slug}.json"
        if full.exists():
            records["full"][a.number] = json.loads(full.read_text("utf-8"))
    return records


def _quick_seconds() -> dict[str, float | None]:
    sys.path.insert(0, str(ROOT / "tools"))
    from exec_times import execution_times

    return execution_times()


def report_html() -> str:
    """The reproducibility report: verdict counts per notebook and part, quick and full mode."""
    claims = _kexue_claims()
    parts, articles = load_catalogue()
    records = load_records()
    seconds = _quick_seconds()
    verdicts = claims.VERDICTS

    def counts(rows: list[dict]) -> list[int]:
        return [sum(r["verdict"] == v for r in rows) for v in verdicts]

    head = "".join(f"<th>{html.escape(v)}</th>" for v in verdicts)
    out = [f'<table class="kexue-report"><thead><tr><th>Notebook</th><th>Mode</th>{head}'
           f"<th>Seconds</th><th>Device</th></tr></thead><tbody>"]
    totals = {"quick": [0] * len(verdicts), "full": [0] * len(verdicts)}
    for part in parts:
        mine = [a for a in articles if a.part == part.name and a.exists]
        if not mine:
            continue
        part_totals = [0] * len(verdicts)
        out.append(f'<tr class="kexue-report-part"><th colspan="{len(verdicts) + 4}">{html.escape(part.title)}</th></tr>')
        for a in mine:
            link = f'<a href="{a.part}/{a.slug}.html#reproducing-the-claims">{html.escape(a.title)}</a>'
            for mode in ("quick", "full"):
                record = records[mode].get(a.number)
                if record is None:
                    continue
                c = counts(record["rows"])
                totals[mode] = [x + y for x, y in zip(totals[mode], c)]
                if mode == "quick":
                    part_totals = [x + y for x, y in zip(part_totals, c)]
                secs = seconds.get(str(a.source.relative_to(ROOT))) if mode == "quick" else record.get("seconds")
                shown = "—" if secs is None else f"{secs:.1f}"
                cells = "".join(f"<td>{n}</td>" for n in c)
                out.append(f"<tr><td>{link if mode == 'quick' else ''}</td><td>{mode}</td>{cells}"
                           f"<td>{shown}</td><td>{html.escape(str(record['device']))}</td></tr>")
        cells = "".join(f"<td>{n}</td>" for n in part_totals)
        out.append(f'<tr class="kexue-report-subtotal"><td>{html.escape(part.title)}: all notebooks</td><td>quick</td>{cells}<td></td><td></td></tr>')
    for mode in ("quick", "full"):
        cells = "".join(f"<td>{n}</td>" for n in totals[mode])
        out.append(f'<tr class="kexue-report-total"><td>The book</td><td>{mode}</td>{cells}<td></td><td></td></tr>')
    out.append("</tbody></table>")
    n_quick, n_full = len(records["quick"]), len(records["full"])
    summary = (f"<p>{n_quick} notebooks, {sum(totals['quick'])} claims checked in quick mode "
               + ", ".join(f"{n} {v}" for n, v in zip(totals["quick"], verdicts))
               + f". Full-mode results are committed for {n_full} notebook{'s' if n_full != 1 else ''}.</p>")
    legend = "".join(f"<li><b>{html.escape(v)}</b>: {html.escape(claims.LEGEND[v])}</li>" for v in verdicts)
    return summary + f'<ul class="kexue-report-legend">{legend}</ul>' + "".join(out)


def _fill_report(app: Any, doctree: nodes.document, docname: str) -> None:
    """Replace the report placeholder; add the full-mode table to a notebook page that has one."""
    for node in doctree.findall(ReportPlaceholder):
        node.replace_self(nodes.raw("", report_html(), format="html"))
    _, articles = load_catalogue()
    article = next((a for a in articles if a.docname == docname), None)
    if article is None:
        return
    full = FULL_RESULTS / article.part / f"{article.slug}.json"
    if not full.exists():
        return
    record = json.loads(full.read_text("utf-8"))
    if record.get("article") != article.number or record.get("mode") != "full":
        raise RuntimeError(f"{full}: not a full-mode record of article {article.number}")
    section = next((s for s in doctree.findall(nodes.section) if "reproducing-the-claims" in s["ids"]), None)
    if section is None:
        raise RuntimeError(f"{docname}: no 'Reproducing the claims' section for the full-mode table")
    caption = (f"Full mode, run on {record['device']} on {record['date']} in {record['seconds']} s"
               + (f", peak GPU memory {record['peak_gpu_mib']} MiB" if record.get("peak_gpu_mib") else ""))
    body = (f'<div class="kexue-full-mode"><p class="rubric">Full mode</p>'
            f"{_kexue_claims().html_table(record['rows'], caption=caption)}</div>")
    section += nodes.raw("", body, format="html")


# -------------------------------------------------------------------- 2. Colab links
def _fix_colab_button(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    _, articles = load_catalogue()
    article = next((a for a in articles if a.docname == pagename), None)
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") != "Colab":
                continue
            if article is None:
                raise RuntimeError(f"Colab button on {pagename}, which is not in the catalogue")
            button["url"] = colab_url(article)


# -------------------------------------------------------------------- 3. offline math
def _mathjax_file() -> Path:
    dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    return Path(str(dist.locate_file("sphinx-mathjax-offline/static/mathjax/tex-svg.js")))


def _copy_mathjax(app: Any, exc: Exception | None) -> None:
    if exc is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_mathjax_file(), target / "tex-svg.js")


# ----------------------------------------------------------- 5. one copy of each script
def _script_key(script: Any) -> tuple:
    # An inline script added through the registry has filename "" and the same one added
    # straight to the builder has filename None: they are the same script.
    filename = getattr(script, "filename", str(script)) or ""
    return (filename, tuple(sorted(getattr(script, "attributes", {}).items())))


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep the first copy of every script (same file or same inline body)."""
    scripts = context.get("script_files")
    if scripts is None:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


# ------------------------------------------------------------------ 6. root redirect
def _write_root_redirect(app: Any, exc: Exception | None) -> None:
    """The site's root ``index.html`` redirects to the intro. sphinx-external-toc writes a bare one
    (when none exists) after this hook; ours also names the favicon, so a browser opening the root
    does not fetch a missing ``/favicon.ico`` (a 404 that the browser tests see, depending on timing)."""
    if exc is None and app.builder.format == "html":
        root = Path(app.config.root_doc).with_suffix(".html").as_posix()
        (Path(app.outdir) / "index.html").write_text(
            f'<meta http-equiv="Refresh" content="0; url={root}" />\n'
            '<link rel="icon" href="_static/favicon.svg" type="image/svg+xml" />\n', encoding="utf8")


def setup(app: Any) -> dict[str, Any]:
    if not _mathjax_file().exists():
        raise RuntimeError("sphinx-mathjax-offline is not installed: run `make venv`")
    app.add_node(ReportPlaceholder)
    app.add_directive("reproducibility-report", ReproducibilityReport)
    app.connect("source-read", _fill_placeholders)
    app.connect("doctree-resolved", _fill_report)
    app.connect("html-page-context", _fix_colab_button, priority=900)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_root_redirect, priority=400)  # before sphinx-external-toc's
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

