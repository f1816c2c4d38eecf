"""Notebook lint: every notebook in the catalogue that exists follows the notebook contract (v2),
its jupytext pair is in sync, and no outputs are committed in notebooks/.

Contract v2, checked on the code's syntax tree (``ast``):

* every claims verdict is computed: no literal ``True``/``False`` (nor a name bound to one) as
  ``holds`` in ``Claims.finding``; the table is ``claims.Claims(<the article's number>)``;
* every cell that draws a figure or a slider asserts what its caption says (an ``assert`` whose
  test is not a constant, a ``symbolic.assert_*`` call or a claims row);
* every exercise solution is gated (``solution-start`` ... ``solution-end``) around a code cell
  that checks it;
* every number glued into the prose (``{glue:text}`key```) is glued by a code cell.
"""

from __future__ import annotations

import ast
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


def _tree(source: str) -> ast.Module:
    """A code cell's syntax tree (IPython magics and shell lines blanked out)."""
    return ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()))


def _literal_bool(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def literal_verdicts(sources: list[str]) -> list[str]:
    """The ``finding`` calls whose ``holds`` is a literal bool or a name only ever bound to one."""
    trees = [_tree(s) for s in sources]
    bound: dict[str, list[ast.AST]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        bound.setdefault(target.id, []).append(node.value)
    bad = []
    for tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "finding"):
                continue
            holds = node.args[3] if len(node.args) > 3 else next((k.value for k in node.keywords if k.arg == "holds"), None)
            literal = _literal_bool(holds) or (
                isinstance(holds, ast.Name) and holds.id in bound and all(_literal_bool(v) for v in bound[holds.id])
            )
            if literal:
                bad.append(ast.unparse(node)[:120])
    return bad


FIGURE_CALLS = ("subplots", "figure", "slider", "show")


def draws_a_figure(tree: ast.Module) -> bool:
    """Whether the cell draws (outside a ``def``): ``plt.show()``, ``viz.slider(``, ``*.subplots(``, ``plt.figure(``."""
    def walk(node: ast.AST) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FIGURE_CALLS:
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("plt", "viz"):
                return True
        return any(walk(child) for child in ast.iter_child_nodes(node))

    return walk(tree)


def checks_something(tree: ast.Module) -> bool:
    """An ``assert`` on a non-constant, a ``symbolic.assert_*`` call or a claims row (close/finding)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and not isinstance(node.test, ast.Constant):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr.startswith("assert_") or node.func.attr in ("close", "finding"):
                return True
    return False


DISPLAYED = {("viz", "table"), ("viz", "slider"), ("symbolic", "show")}


def discarded_displays(tree: ast.Module) -> list[str]:
    """``viz.table(...)``, ``viz.slider(...)`` or ``symbolic.show(...)`` as a statement that is not the cell's last:
    Jupyter shows only the last expression, so the table, slider or formula would never appear."""
    bad = []
    for stmt in tree.body[:-1]:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
            if (call.func.value.id, call.func.attr) in DISPLAYED:
                bad.append(ast.unparse(stmt)[:80])
    return bad


def shows_a_stray_value(source: str) -> bool:
    """The cell ends with a bare ``prose.glue(...)`` (without ``;``): Jupyter would print the glued value."""
    tree = _tree(source)
    last = tree.body[-1] if tree.body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    func = last.value.func
    is_glue = isinstance(func, ast.Attribute) and func.attr == "glue" and isinstance(func.value, ast.Name) and func.value.id == "prose"
    return is_glue and not source.rstrip().endswith(";")


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
    assert f"claims.Claims({article.number})" in body and "## Reproducing the claims" in md
    for heading in ("## Takeaways", "## Exercises", "## References"):
        assert heading in md, heading
    exercises = md.count("```{exercise}")
    assert exercises >= 2 and md.count("```{solution-start}") == exercises, "one gated solution per exercise"
    assert re.search(r"\{cite(:[a-z]+)?\}`", md), "cite the papers"
    # One bibliography for the whole book (book/references.md): a second {bibliography} citing the
    # same key makes sphinxcontrib-bibtex warn "duplicate citation", and warnings fail the build.
    assert "{bibliography}" not in md and "{footcite}" not in md
    assert article.url in md


def test_every_verdict_is_computed(article):
    _, code, _ = _cells(article)
    bad = literal_verdicts([c.source for c in code])
    assert bad == [], f"a literal verdict (compute holds, or use not_attempted): {bad}"


def test_every_figure_cell_asserts_what_its_caption_says(article):
    _, code, _ = _cells(article)
    for cell in code:
        tree = _tree(cell.source)
        if draws_a_figure(tree):
            assert checks_something(tree), f"a figure cell without an assert:\n{cell.source[:300]}"


def test_no_table_slider_or_formula_is_discarded(article):
    _, code, _ = _cells(article)
    for cell in code:
        bad = discarded_displays(_tree(cell.source))
        assert bad == [], f"not the cell's last expression, so never shown (wrap it in display()): {bad}"


def test_no_cell_prints_a_stray_glued_value(article):
    _, code, _ = _cells(article)
    for cell in code:
        assert not shows_a_stray_value(cell.source), f"ends with prose.glue(...): end the line with ';'\n{cell.source[-200:]}"


def test_every_solution_is_checked_by_a_code_cell(article):
    nb, _, _ = _cells(article)
    inside, label, checked = False, "", False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            assert "```{solution}" not in cell.source, "solutions are gated (solution-start/solution-end) around a check"
            start = re.search(r"```\{solution-start\}\s*(\S+)", cell.source)
            if start:
                assert not inside, f"solution {label} is not closed"
                assert ":class: dropdown" in cell.source, f"solution {start.group(1)} is folded away"
                inside, label, checked = True, start.group(1), False
            if "```{solution-end}" in cell.source:
                assert inside and checked, f"solution {label}: no code cell in it checks the answer"
                inside = False
        elif inside and checks_something(_tree(cell.source)):
            checked = True
    assert not inside, f"solution {label} is not closed"


def test_every_glued_number_is_glued(article):
    _, code, md = _cells(article)
    body = "\n".join(c.source for c in code)
    glued = set(re.findall(r"""prose\.glue\(\s*["']([A-Za-z0-9_]+)["']""", body))
    used = set(re.findall(r"\{glue(?::[a-z]+)?\}`([A-Za-z0-9_]+)", md))
    assert used <= glued, f"glued in the prose but never by a code cell: {sorted(used - glued)}"


def test_the_lint_catches_what_it_should():
    # literal verdicts, direct and through a name; computed ones pass
    assert literal_verdicts(['res.finding("c", "r", "m", True, "reproduced")'])
    assert literal_verdicts(['ok = False', 'res.finding("c", "r", "m", holds=ok, verdict="reproduced")'])
    assert not literal_verdicts(['ok = err < 1e-9', 'res.finding("c", "r", "m", ok, "reproduced")'])
    # figure cells
    assert draws_a_figure(_tree("fig, ax = plt.subplots()\nax.plot([1])"))
    assert draws_a_figure(_tree("viz.slider(draw, [1, 2], label='a')"))
    assert not draws_a_figure(_tree("def draw(fig, v):\n    ax = fig.subplots()\n    plt.show()"))
    assert not checks_something(_tree("fig, ax = plt.subplots()\nassert True"))
    assert checks_something(_tree("assert y.max() < 1"))
    assert checks_something(_tree("symbolic.assert_identity(a, b)"))
    # displays that are not the cell's last expression are lost
    assert discarded_displays(_tree("viz.table(h, rows)\nprint(1)"))
    assert not discarded_displays(_tree("display(viz.table(h, rows))\nprint(1)"))
    assert not discarded_displays(_tree("print(1)\nviz.table(h, rows)"))
    assert shows_a_stray_value('x = 1\nprose.glue("x", x)') and not shows_a_stray_value('prose.glue("x", x);')


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
