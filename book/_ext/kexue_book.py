"""Sphinx extension of the kexue-lite book (loaded through ``_config.yml``).

It also holds what the tests and ``tools/new_notebook.py`` share with the site: the catalogue
loader and the notebook template (setup cell and title line). On the site it does four
things, each small (and a fifth, the root redirect, names the favicon):

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
4. **One copy of each script.** In the Jupyter Book 1 stack, sphinx-thebe and
   sphinx-togglebutton register inline configuration scripts after the HTML builder exists,
   so each lands twice (once in the builder, filename None; once through the registry,
   filename ""), and the second ``const THEBE_JS_URL = ...`` throws "Identifier has already
   been declared". We keep the first copy of each script.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "book" / "catalogue.yml"
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

from kexue_lite import claims, env, symbolic, viz

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
    source[0] = text


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


# ----------------------------------------------------------- 4. one copy of each script
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


# ------------------------------------------------------------------ 5. root redirect
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
    app.connect("source-read", _fill_placeholders)
    app.connect("html-page-context", _fix_colab_button, priority=900)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_root_redirect, priority=400)  # before sphinx-external-toc's
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

