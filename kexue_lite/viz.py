"""One plot style for the whole book, and the slider that works live and on the static site.

Figures use a solid white background and the Okabe–Ito colour-blind-safe palette, so they
read the same in the site's light and dark themes (the dark theme shows images on their
own background).

:func:`slider` is the only place that knows how a slider is rendered:

* **live** (Jupyter, Colab): an ``ipywidgets.SelectionSlider`` redraws the figure for each
  value;
* **static** (the website, ``KEXUE_STATIC=1`` exported by the Makefile): every frame is drawn
  once at build time and embedded in matplotlib's JavaScript animation player (the HTML of
  ``to_jshtml``), whose HTML slider swaps the frames without a kernel; the values keep their
  order and the page opens on the ``start`` frame.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import Callable, Sequence
from html import escape as html_escape
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import env

__all__ = ["COLORS", "STYLE", "MAX_FRAMES", "COLUMN_PX", "MAX_COLS", "use_style", "subplots", "slider", "table", "pow10"]

#: Okabe–Ito palette (colour-blind safe); black is used for "truth" curves.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.edgecolor": "#333333",
    "axes.labelcolor": "#111111",
    "text.color": "#111111",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "figure.constrained_layout.use": True,
    "animation.embed_limit": 8.0,  # MB: a slider larger than this is a mistake (viz.slider refuses it)
}

#: Upper bound on precomputed frames per slider (keeps pages light).
MAX_FRAMES = 30

#: Width in pixels of a figure that the website's content column shows at 100 %: a notebook's
#: output area is 676 px wide in sphinx-book-theme (1280 px window), and the inline backend's tight
#: bounding box can add a few dozen pixels of labels (``tests/test_site.py`` checks every image).
COLUMN_PX = 640
#: At most this many panels share a row; more wrap to further rows.
MAX_COLS = 3


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib (called by every notebook's setup cell)."""
    mpl.rcParams.update(STYLE)


def subplots(n: int = 1, *, height: float = 3.2, ncols: int | None = None, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure of ``n`` panels at the content column's width: at most :data:`MAX_COLS` a row,
    wrapping to further rows, each row ``height`` inches tall.

    Returns ``(fig, ax)`` for one panel and ``(fig, axes)`` (a flat list of ``n`` axes) for
    more. ``kwargs`` go to :func:`matplotlib.pyplot.subplots` (``sharey=True``, ...).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of panels), got {n!r}")
    ncols = min(n, MAX_COLS) if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, int) or not 1 <= ncols <= MAX_COLS:
        raise ValueError(f"ncols must be an int from 1 to {MAX_COLS}, got {ncols!r}")
    if not height > 0:
        raise ValueError(f"height must be positive, got {height}")
    nrows = -(-n // ncols)
    width = COLUMN_PX / STYLE["figure.dpi"]
    fig, grid = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False, **kwargs)
    axes = list(grid.flat)
    for extra in axes[n:]:
        fig.delaxes(extra)
    return (fig, axes[0]) if n == 1 else (fig, axes[:n])


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pow10(value: float, _pos: int | None = None) -> str:
    """Tick label ``10⁻⁶`` for ``1e-6`` (``−10²`` for ``-100``, ``0`` for 0) in plain text, for
    ``axis.set_major_formatter`` on log and symlog axes: matplotlib's default labels go through its slower
    mathtext. A value that is not a power of ten keeps a plain ``%.3g`` label (with the same minus sign).
    Used by lossless-widening.
    """
    if value == 0:
        return "0"
    exponent = np.log10(abs(value))
    if not np.isfinite(exponent) or abs(exponent - round(exponent)) > 1e-9:
        return f"{value:.3g}".replace("-", "−")
    return ("−" if value < 0 else "") + "10" + str(int(round(exponent))).translate(_SUPERSCRIPT)


def _label(label: str, fmt: str | Callable[[Any], str], value: Any) -> str:
    text = fmt(value) if callable(fmt) else fmt.format(value)
    return f"{label} = {text}"


def slider(
    draw: Callable[[Figure, Any], None],
    values: Sequence[Any],
    *,
    label: str,
    fmt: str | Callable[[Any], str] = "{}",
    start: int = 0,
    figsize: tuple[float, float] = (6.4, 3.4),
    dpi: int = 72,
    static: bool | None = None,
    layout: str | None = None,
) -> Any:
    """A slider over ``values`` that redraws ``draw(fig, value)``.

    ``draw`` receives an empty figure and one value and draws into it (it may add axes).
    The helper writes ``label = value`` as the figure's title. ``static`` defaults to
    :func:`kexue_lite.env.static_site`. ``layout`` is the figure's layout engine: ``None`` keeps the
    style's constrained layout; ``"none"`` is for a ``draw`` that places its axes itself (fixed margins,
    e.g. ``fig.subplots(gridspec_kw=dict(left=..., ...))``) and saves a layout pass on every frame.
    Returns the object to display (an ``ipywidgets.VBox`` live, an ``IPython.display.HTML`` with the
    frames on the site).
    """
    values = list(values)
    if not callable(draw):
        raise TypeError("draw must be callable as draw(fig, value)")
    if not 1 <= len(values) <= MAX_FRAMES:
        raise ValueError(f"values must hold 1 to {MAX_FRAMES} frames, got {len(values)}")
    if not 0 <= start < len(values):
        raise ValueError(f"start must index values (0..{len(values) - 1}), got {start}")
    if not label:
        raise ValueError("label must be a non-empty string")
    if layout not in (None, "none", "constrained"):
        raise ValueError(f"layout must be None, 'none' or 'constrained', got {layout!r}")
    if figsize[0] * dpi > COLUMN_PX:
        raise ValueError(f"figsize is {figsize[0] * dpi:.0f} px wide at dpi {dpi}; the column holds {COLUMN_PX} px")
    static = env.static_site() if static is None else static

    def render(fig: Figure, value: Any) -> None:
        fig.clear()
        if layout is not None:  # on a figure made with layout="none", clear() brings back the style's engine
            fig.set_layout_engine(layout)
        draw(fig, value)
        fig.suptitle(_label(label, fmt, value), fontsize=11)

    if static:
        from IPython.display import HTML

        labels = html_escape(json.dumps([_label(label, fmt, v).split(" = ", 1)[1] for v in values], ensure_ascii=False))
        return HTML(f'<div class="kexue-slider" data-start="{start}" data-labels="{labels}">'
                    f"{_jshtml(render, values, figsize, dpi, start, layout)}</div>")

    import ipywidgets as widgets

    options = [(_label(label, fmt, v).split(" = ", 1)[1], v) for v in values]
    control = widgets.SelectionSlider(
        options=options, index=start, description=label, continuous_update=False,
        layout=widgets.Layout(width="60%"), style={"description_width": "initial"},
    )
    out = widgets.Output()

    def redraw(change: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = plt.figure(figsize=figsize, layout=layout)
            render(fig, control.value)
            plt.show()

    control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([control, out])


def _jshtml(render: Callable[[Figure, Any], None], values: list[Any], figsize: tuple[float, float], dpi: int,
            start: int, layout: str | None) -> str:
    """matplotlib's JavaScript animation player (the HTML of ``FuncAnimation.to_jshtml``), with each
    frame drawn and saved once (``to_jshtml`` draws every frame three times), the frames in the order
    of ``values`` and the player opening on frame ``start``."""
    from matplotlib import _animation_data as player

    fig = plt.figure(figsize=figsize, dpi=dpi, layout=layout)
    frames = []
    try:
        for value in values:
            render(fig, value)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi)
            frames.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    finally:
        plt.close(fig)
    size_mb = sum(len(f) for f in frames) / 2**20
    if size_mb > STYLE["animation.embed_limit"]:
        raise ValueError(f"the slider's frames take {size_mb:.1f} MB (limit {STYLE['animation.embed_limit']} MB): "
                         "use fewer frames, a smaller figsize or a lower dpi")
    uid = uuid.uuid4().hex
    fill = "".join(f'  frames[{i}] = "data:image/png;base64,{data}"\n' for i, data in enumerate(frames))
    html = player.JS_INCLUDE + player.STYLE_INCLUDE + player.DISPLAY_TEMPLATE.format(
        id=uid, Nframes=len(frames), fill_frames=fill, interval=500, once_checked="checked", loop_checked="",
        reflect_checked="")
    # The player links Font Awesome 4 from a CDN; the site's theme already ships the icons.
    html = re.sub(r"<link rel=\"stylesheet\"\s+href=\"https://[^\"]*font-awesome[^\"]*\">", "", html)
    html, found = re.subn(rf"(anim{uid} = new Animation\([^;]*\);)", rf"\1 anim{uid}.set_frame({start});", html)
    if found != 1:
        raise RuntimeError("matplotlib's animation player changed: cannot set the start frame")
    return html


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = ".3f") -> Any:
    """A small HTML table; floats are formatted with ``fmt`` (renders on the site and live)."""
    import html

    from IPython.display import HTML

    if any(len(r) != len(header) for r in rows):
        raise ValueError("every row must have as many cells as header")

    def cell(v: Any) -> str:
        return html.escape(format(v, fmt) if isinstance(v, float) else str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return HTML(f'<table class="kexue-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
