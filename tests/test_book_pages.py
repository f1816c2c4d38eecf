"""The contract-v2 pages of the Sphinx extension (book/_ext/kexue_book.py), without a site build:
the errata data file, the reproducibility report and the full-mode table."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

import kexue_book
from kexue_book import load_catalogue, load_errata

_, ARTICLES = load_catalogue()
NOTEBOOKS = [a for a in ARTICLES if a.exists]


def test_every_erratum_points_at_a_heading_of_its_notebook():
    entries = load_errata()
    assert entries, "book/errata.yml lists the errors the notebooks found"
    for e in entries:
        source = (ROOT / "book" / f"{e['notebook']}.md").read_text("utf-8")
        headings = re.findall(r"^#+ (.+?)\s*$", source, re.M)
        assert e["section"] in headings, f"{e['notebook']} has no heading {e['section']!r}"
        article = next(a for a in ARTICLES if f"{a.part}/{a.slug}" == e["notebook"])
        assert article.number == e["article"], f"{e['notebook']} is the notebook of article {article.number}"


def test_errata_loader_refuses_incomplete_entries(tmp_path):
    good = load_errata()[0]
    for broken in ({**good, "correct": ""}, {**good, "notebook": "ssm/nowhere"}, {**good, "extra": 1},
                   {**good, "source": "blog"}):
        path = tmp_path / "errata.yml"
        path.write_text(json.dumps([broken]))
        with pytest.raises(ValueError, match="errata.yml entry 0"):
            load_errata(path)


def test_errata_list_links_each_entry_to_its_section():
    text = kexue_book.errata_list()
    for e in load_errata():
        assert f"]({e['notebook']}.md#{kexue_book.heading_anchor(e['section'])})" in text


def _record(article, mode, rows):
    return {"article": article.number, "mode": mode, "device": "cpu" if mode == "quick" else "NVIDIA H200",
            "seconds": 1.5, "date": "2026-12-01", "peak_gpu_mib": None, "rows": rows}


ROWS = [{"claim": "c", "reported": "1", "measured": "1", "tolerance": "± 0", "verdict": v}
        for v in ("reproduced", "reproduced", "not reproduced", "not attempted")]


@pytest.fixture
def records(tmp_path, monkeypatch):
    """Quick-mode records for every notebook, and one full-mode file."""
    monkeypatch.setenv("KEXUE_CLAIMS_DIR", str(tmp_path / "claims"))
    (tmp_path / "claims").mkdir()
    for a in NOTEBOOKS:
        (tmp_path / "claims" / f"{a.number}.json").write_text(json.dumps(_record(a, "quick", ROWS)))
    full = tmp_path / "full"
    first = NOTEBOOKS[0]
    (full / first.part).mkdir(parents=True)
    (full / first.part / f"{first.slug}.json").write_text(json.dumps(_record(first, "full", ROWS[:2])))
    monkeypatch.setattr(kexue_book, "FULL_RESULTS", full)
    monkeypatch.setattr(kexue_book, "_quick_seconds", lambda: {})
    return first


def test_report_counts_every_verdict_per_notebook_and_for_the_book(records):
    text = kexue_book.report_html()
    n = len(NOTEBOOKS)
    # totals: quick = n notebooks x (2 reproduced, 0 partially, 1 not reproduced, 1 not attempted); full = 2 reproduced
    assert f"<td>The book</td><td>quick</td><td>{2 * n}</td><td>0</td><td>{n}</td><td>{n}</td>" in text
    assert "<td>The book</td><td>full</td><td>2</td><td>0</td><td>0</td><td>0</td>" in text
    assert "Full-mode results are committed for 1 notebook." in text
    for a in NOTEBOOKS:
        assert f'href="{a.part}/{a.slug}.html#reproducing-the-claims"' in text


def test_report_refuses_a_missing_quick_record(records, monkeypatch, tmp_path):
    (tmp_path / "claims" / f"{NOTEBOOKS[-1].number}.json").unlink()
    with pytest.raises(RuntimeError, match="make clean"):
        kexue_book.report_html()


def test_full_mode_table_goes_into_the_claims_section(records):
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    first = records
    doc = new_document("x", get_default_settings(Parser))
    section = nodes.section(ids=["reproducing-the-claims"])
    doc += section
    kexue_book._fill_report(None, doc, first.docname)
    raw = [n for n in section.findall(nodes.raw)]
    assert len(raw) == 1 and "Full mode, run on NVIDIA H200" in raw[0].astext()
    other = new_document("y", get_default_settings(Parser))
    other += nodes.section(ids=["reproducing-the-claims"])
    kexue_book._fill_report(None, other, NOTEBOOKS[1].docname)
    assert not list(other.findall(nodes.raw)), "no full-mode file, no table"
