"""Notebook lint: every notebook in the catalogue that exists follows the notebook contract,
its jupytext pair is in sync, and no outputs are committed in notebooks/."""

from __future__ import annotations

import re

import jupytext
import nbformat
import pytest
from conftest import ROOT

from kexue_book import colab_url, load_catalogue, setup_cell, title_line

_, ARTICLES = load_catalogue()
NOTEBOOKS = [a for a in ARTICLES if a.exists]


def test_at_least_the_exemplar_exists():
    assert any(a.number == 10007 for a in NOTEBOOKS)


def _cells(article):
    nb = jupytext.read(article.source)
    code = [c for c in nb.cells if c.cell_type == "code"]
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return nb, code, md


@pytest.fixture(params=NOTEBOOKS, ids=lambda a: a.slug)
def article(request):
    return request.param


def test_title_block_links_the_original_and_colab(article):
    nb, _, _ = _cells(article)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    lines = [line for line in first.source.splitlines() if line.strip()]
    assert lines[0] == f"# {article.title}", "the H1 must be the catalogue's English title"
    assert lines[1] == title_line(article), "the line under the title must be the standard title block"
    assert colab_url(article).endswith(f"/blob/main/notebooks/{article.part}/{article.slug}.ipynb")


def test_setup_cell_is_the_template_and_hidden(article):
    nb, code, _ = _cells(article)
    assert nb.cells[1].cell_type == "code", "the setup cell comes right after the title"
    assert code[0].source == setup_cell(), "the setup cell must be the template in book/_ext/kexue_book.py"
    assert "hide-cell" in code[0].metadata.get("tags", []) or "remove-cell" in code[0].metadata.get("tags", [])


def test_contract_sections_and_calls(article):
    _, code, md = _cells(article)
    body = "\n".join(c.source for c in code[1:])
    assert re.search(r"^(from kexue_lite import|import kexue_lite)", body, re.M), "numerics go through kexue_lite"
    assert "symbolic.assert_" in body or re.search(r"^\s*assert .*sp\.", body, re.M), "a sympy assert"
    assert "viz.slider(" in body, "at least one slider"
    assert "claims.Claims()" in body and "## Reproducing the claims" in md
    for heading in ("## Takeaways", "## Exercises", "## References"):
        assert heading in md, heading
    exercises = md.count("```{exercise}")
    assert exercises >= 2 and md.count("```{solution}") == exercises
    assert md.count(":class: dropdown") >= exercises, "solutions are folded away"
    assert re.search(r"\{cite(:[a-z]+)?\}`", md), "cite the papers"
    # One bibliography for the whole book (book/references.md): a second {bibliography} citing the
    # same key makes sphinxcontrib-bibtex warn "duplicate citation", and warnings fail the build.
    assert "{bibliography}" not in md and "{footcite}" not in md
    assert article.url in md


def test_pair_is_in_sync_and_has_no_outputs(article):
    ipynb = ROOT / article.ipynb
    assert ipynb.exists(), f"missing pair: run `make sync` to create {article.ipynb}"
    md_nb = jupytext.read(article.source)
    pair = nbformat.read(ipynb, as_version=4)
    assert len(md_nb.cells) == len(pair.cells), "out of sync: run `make sync`"
    for a, b in zip(md_nb.cells, pair.cells):
        assert (a.cell_type, a.source) == (b.cell_type, b.source), "out of sync: run `make sync`"
        assert a.metadata.get("tags", []) == b.metadata.get("tags", [])
        if b.cell_type == "code":
            assert b.outputs == [] and b.execution_count is None, "outputs committed in notebooks/"
    assert pair.metadata.get("accelerator") == "GPU", "Colab should open it with a GPU runtime"
    assert pair.metadata.get("kernelspec", {}).get("name") == "python3"


def test_new_notebook_scaffold_starts_like_the_exemplar():
    import new_notebook

    path, text = new_notebook.render(10007)
    scaffold, exemplar = jupytext.reads(text, fmt="md:myst"), jupytext.read(path)
    for i in (0, 1):
        assert scaffold.cells[i].source == exemplar.cells[i].source
    assert scaffold.cells[1].metadata.get("tags") == ["hide-cell"]
    for heading in ("## Reproducing the claims", "## Takeaways", "## Exercises", "## References"):
        assert heading in text
