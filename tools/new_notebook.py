"""Start a notebook from the template: ``python tools/new_notebook.py NUMBER``.

Writes ``book/<part>/<slug>.md`` for catalogue entry NUMBER with the title block, the setup cell
and the sections of the notebook contract (v2: computed verdicts, glued numbers, asserted captions,
checked solutions; the README's "Writing a notebook"); refuses to overwrite. Then add the file to
``_toc.yml`` and run ``make sync``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from kexue_book import load_catalogue, setup_cell, title_line  # noqa: E402

FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
accelerator: GPU
colab:
  gpuType: T4
  provenance: []
---
"""

BODY = """
## The question

## The idea

## Derivations, checked by sympy

## Computation

## Pictures and sliders

Draw with `viz.subplots(n)` (column width, at most three panels a row) and `viz.slider`; every cell
that draws asserts what its caption tells the reader to see. Numbers in the prose are glued:
`prose.glue("key", value)` in code, {{glue:text}}`key:.3f` in the text.

## Reproducing the claims

Every row is computed: `close` for a number the article reports, `finding` with a `holds` computed
above (never a literal), `not_attempted` with the reason for a claim the book does not test.

```{{code-cell}} ipython3
res = claims.Claims({number})
res
```

## Takeaways

## Exercises

```{{exercise}}
:label: {slug}-ex1

```

```{{solution-start}} {slug}-ex1
:class: dropdown
```

The answer in words; every result it states is checked by the cell below.

```{{code-cell}} ipython3
# check the solution's claims here (an assert that fails if the solution is wrong)
```

```{{solution-end}}
```

## References

- {{cite:t}}`KEY`, what it is. (Add the entry to book/references.bib; the book has one bibliography,
  book/references.md.)
"""


def render(number: int) -> tuple[Path, str]:
    _, articles = load_catalogue()
    article = next((a for a in articles if a.number == number), None)
    if article is None:
        raise SystemExit(f"no article {number} in book/catalogue.yml")
    text = (
        FRONT_MATTER
        + f"\n# {article.title}\n\n{title_line(article)}\n\n"
        + "```{code-cell} ipython3\n:tags: [hide-cell]\n\n"
        + setup_cell()
        + "\n```\n"
        + BODY.format(slug=article.slug, number=article.number)
    )
    return article.source, text


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print(__doc__)
        return 2
    path, text = render(int(argv[0]))
    if path.exists():
        print(f"{path} exists; not overwriting")
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}: add it to _toc.yml, then `make sync`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
