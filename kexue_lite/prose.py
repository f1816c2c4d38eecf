"""Numbers in prose come from the computation (contract v2).

``prose.glue("w1_n100", w1)`` in a code cell, then ``{glue:text}`w1_n100:.3f``` in the
Markdown around it (a string: ``{glue:md}`name```): the website shows the number this run computed, formatted there, and a
misspelt key fails the build. Under the site build this writes what myst-nb's ``glue`` writes (a hidden
display bundle under myst-nb's mime prefix, with ``scrapbook`` metadata); where myst-nb is not installed
(Colab, a plain Jupyter) it does nothing visible, and the reader sees the value in the cell's own printout.

It does not import ``myst_nb.glue``: that module imports nbformat and jsonschema, whose URI-format checker
compiles a grammar on import (about 2 s of CPU in every notebook, with JupyterLab's dependencies installed).
``tests/test_helpers.py`` checks that the bundle is the one myst-nb's ``glue(name, value, display=False)`` writes.
"""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Any

import numpy as np

__all__ = ["glue"]

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
GLUE_PREFIX = "application/papermill.record/"  # myst_nb.ext.glue.GLUE_PREFIX: the mime prefix myst-nb reads back


def glue(name: str, value: Any) -> Any:
    """Make ``value`` (a number or a short string) available to the prose as ``{glue:text}`name```.

    Numbers are stored as Python floats or ints, so the Markdown can format them
    (``{glue:text}`name:.3f```). Returns ``value`` unchanged, so a cell can glue and use it.
    """
    if not isinstance(name, str) or not _KEY.fullmatch(name):
        raise ValueError(f"name must be an identifier-like key (letters, digits, _), got {name!r}")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: glue a number or a string, not a bool (say the finding in words)")
    if isinstance(value, (np.integer, int)):
        stored: Any = int(value)
    elif isinstance(value, (np.floating, float)) or (hasattr(value, "item") and getattr(value, "ndim", None) == 0):
        stored = float(value)
        if not math.isfinite(stored):
            raise ValueError(f"{name}: the value is {stored}, which the prose cannot state")
    elif isinstance(value, str):
        from IPython.display import Markdown

        stored = Markdown(value)  # shown with {glue:md}`name` (a plain string's text form carries quotes)
    else:
        raise TypeError(f"{name}: glue a number or a string, got {type(value).__name__}")
    if importlib.util.find_spec("myst_nb") is None:  # Colab or a plain Jupyter: nothing to glue into
        return value
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    bundle, metadata = format_display_data(stored)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
    return value
