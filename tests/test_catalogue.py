"""book/catalogue.yml is the single source of truth: _toc.yml, book/ and notebooks/ must agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from kexue_book import PARTS, load_catalogue

PARTS_, ARTICLES = load_catalogue()
SHARED_INDEX = ROOT.parent / "shared" / "articles" / "INDEX.md"


def test_catalogue_lists_36_articles_once_each_in_known_parts():
    assert len(ARTICLES) == 36
    assert len({a.number for a in ARTICLES}) == 36
    assert len({(a.part, a.slug) for a in ARTICLES}) == 36
    assert [p.name for p in PARTS_] == list(PARTS)
    for a in ARTICLES:
        assert a.part in PARTS
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", a.slug), a.slug
        assert a.url == f"https://kexue.fm/archives/{a.number}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", a.date), a.date
        assert a.title and a.title_zh


def test_articles_of_a_part_are_contiguous():
    order = [a.part for a in ARTICLES]
    assert order == sorted(order, key=PARTS.index)


@pytest.mark.skipif(not SHARED_INDEX.exists(), reason="../shared/articles/INDEX.md is not beside this checkout")
def test_catalogue_matches_the_article_index():
    rows = re.findall(r"^\| (\d{4}-\d\d-\d\d) \| (\d+)\.md \| (.+?) \| (https://\S+) \|$", SHARED_INDEX.read_text("utf-8"), re.M)
    index = {int(n): (date, title, url) for date, n, title, url in rows}
    assert set(index) == {a.number for a in ARTICLES}
    for a in ARTICLES:
        assert (a.date, a.title_zh, a.url) == index[a.number]


def test_toc_has_every_part_and_exactly_the_existing_notebooks_in_reading_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text("utf-8"))
    assert toc["root"] == "book/intro"
    chapters = toc["chapters"]
    back_matter = ["book/reproducibility", "book/errata", "book/references"]
    assert [c["file"] for c in chapters] == [f"book/{p}/index" for p in PARTS] + back_matter
    for chapter, part in zip(chapters, PARTS):
        want = [a.docname for a in ARTICLES if a.part == part and a.exists]
        assert [s["file"] for s in chapter.get("sections", [])] == want, part


def test_book_and_notebooks_folders_hold_only_catalogued_pairs():
    known = {(a.part, a.slug) for a in ARTICLES}
    for part in PARTS:
        assert (ROOT / "book" / part / "index.md").exists(), part
    sources = {(p.parent.name, p.stem) for p in (ROOT / "book").glob("*/*.md") if p.name != "index.md"}
    ipynbs = {(p.parent.name, p.stem) for p in (ROOT / "notebooks").glob("*/*.ipynb")}
    assert sources <= known, sources - known
    assert sources == ipynbs, ("unpaired", sources ^ ipynbs)
    assert not list((ROOT / "notebooks").glob("*.ipynb")) and not list((ROOT / "notebooks").glob("*/*/*"))


def test_placeholders_for_generated_tables_are_in_place():
    assert "% catalogue-table" in (ROOT / "book" / "intro.md").read_text("utf-8")
    for part in PARTS:
        assert "% part-notebooks" in (ROOT / "book" / part / "index.md").read_text("utf-8"), part
    assert "```{reproducibility-report}" in (ROOT / "book" / "reproducibility.md").read_text("utf-8")
    assert "% errata-list" in (ROOT / "book" / "errata.md").read_text("utf-8")


def test_repository_is_configured_once():
    config = yaml.safe_load((ROOT / "_config.yml").read_text("utf-8"))
    assert config["repository"]["branch"] == "main"
    assert config["repository"]["url"].startswith("https://github.com/")
    assert Path(ROOT / "book" / "references.bib").exists()
