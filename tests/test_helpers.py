"""Unit tests of kexue_lite.env, viz, symbolic, claims and prose."""

from __future__ import annotations

import html as html_mod
import random
import re

import matplotlib as mpl
import numpy as np
import pytest
import sympy as sp
import torch

from kexue_lite import claims, env, prose, symbolic, viz


# ---------------------------------------------------------------- env
@pytest.mark.parametrize(("value", "full"), [("1", True), ("true", True), ("0", False), ("off", False)])
def test_full_mode_follows_the_environment(monkeypatch, value, full):
    monkeypatch.setenv("KEXUE_FULL", value)
    assert env.full_mode() is full


def test_full_mode_defaults_to_cuda_availability(monkeypatch):
    monkeypatch.delenv("KEXUE_FULL", raising=False)
    assert env.full_mode() is torch.cuda.is_available()


def test_bad_flag_raises(monkeypatch):
    monkeypatch.setenv("KEXUE_FULL", "maybe")
    with pytest.raises(ValueError, match="KEXUE_FULL"):
        env.full_mode()


def test_static_site_flag(monkeypatch):
    monkeypatch.setenv("KEXUE_STATIC", "1")
    assert env.static_site()
    monkeypatch.delenv("KEXUE_STATIC")
    assert not env.static_site()


def test_seed_everything_makes_every_rng_repeat():
    def draw():
        import sympy.core.random

        return random.random(), np.random.rand(), torch.rand(1).item(), sympy.core.random.rng.random()

    env.seed_everything(7)
    first = draw()
    env.seed_everything(np.int64(7))
    assert draw() == first
    with pytest.raises(ValueError, match="seed"):
        env.seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        env.seed_everything(1.5)


def test_setup_quick_mode_uses_one_thread(monkeypatch, capsys):
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setenv("KEXUE_FULL", "0")
    threads, blas_before = torch.get_num_threads(), threadpool_info()
    try:
        e = env.setup(seed=3)
        assert torch.get_num_threads() == 1
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas), "numpy's BLAS on one thread too"
        assert not e.full and e.seed == 3 and e.size(1, 2) == 1
        assert "quick mode" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
        threadpool_limits({p["prefix"]: p["num_threads"] for p in blas_before})


# ---------------------------------------------------------------- viz
def _draw(fig, value):
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, value])
    ax.set(xlabel="x", ylabel="y")


def test_static_slider_embeds_one_frame_per_value_and_no_external_links():
    html = viz.slider(_draw, [1, 2, 3], label="slope", static=True).data
    frames = re.findall(r"data:image/png;base64", html)
    assert len(frames) == 3
    assert 'type="range"' in html and "https://" not in html
    assert 'class="kexue-slider"' in html


def test_static_slider_keeps_the_natural_order_and_opens_on_start():
    # Each frame draws a different slope, so the PNGs differ; the i-th embedded frame must be values[i].
    values = [1, 2, 3, 4]
    html = viz.slider(_draw, values, label="slope", start=2, static=True).data
    alone = [re.findall(r"data:image/png;base64,([^\"]+)", viz.slider(_draw, [v], label="slope", static=True).data)[0]
             for v in values]
    embedded = re.findall(r"data:image/png;base64,([^\"]+)", html)
    assert embedded == alone, "frames are embedded in the order of values"
    assert re.search(r"anim\w+ = new Animation\([^;]*\); anim\w+\.set_frame\(2\);", html)
    assert 'data-start="2"' in html


def test_slider_layout_none_draws_without_a_layout_engine():
    engines = []

    def draw(fig, value):  # "none" leaves no engine or a placeholder that does nothing
        engines.append(type(fig.get_layout_engine()).__name__.replace("PlaceHolderLayoutEngine", "NoneType"))
        _draw(fig, value)

    viz.use_style()
    viz.slider(draw, [1, 2], label="slope", static=True)
    viz.slider(draw, [1, 2], label="slope", static=True, layout="none")
    box = viz.slider(draw, [1], label="slope", static=False, layout="none")
    assert box.children[0].value == 1
    assert engines == ["ConstrainedLayoutEngine"] * 2 + ["NoneType"] * 3


def test_slider_refuses_a_figure_wider_than_the_column():
    with pytest.raises(ValueError, match="column"):
        viz.slider(_draw, [1], label="a", figsize=(viz.COLUMN_PX / 72 + 0.5, 3), static=True)


@pytest.mark.parametrize(("n", "rows", "cols"), [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 3), (6, 2, 3), (7, 3, 3)])
def test_subplots_wrap_at_three_panels_and_fit_the_column(n, rows, cols):
    viz.use_style()
    fig, axes = viz.subplots(n)
    axes = [axes] if n == 1 else axes
    assert len(axes) == len(fig.axes) == n
    assert fig.get_size_inches()[0] * fig.dpi == pytest.approx(viz.COLUMN_PX)
    gs = axes[0].get_subplotspec().get_gridspec()
    assert (gs.nrows, gs.ncols) == (rows, cols)
    mpl.pyplot.close(fig)
    with pytest.raises(ValueError, match="n must"):
        viz.subplots(0)
    with pytest.raises(ValueError, match="ncols"):
        viz.subplots(4, ncols=4)


def test_live_slider_is_a_widget_that_redraws():
    seen = []

    def draw(fig, value):
        seen.append(value)
        _draw(fig, value)

    box = viz.slider(draw, [1, 2, 3], label="slope", start=1, static=False)
    control, _ = box.children
    assert control.value == 2 and control.description == "slope" and seen == [2]
    control.value = 3  # what moving the slider does
    assert seen == [2, 3]


def test_slider_follows_the_build_flag(monkeypatch):
    monkeypatch.setenv("KEXUE_STATIC", "1")
    assert hasattr(viz.slider(_draw, [1], label="a"), "data")


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"values": []}, ValueError),
        ({"values": list(range(viz.MAX_FRAMES + 1))}, ValueError),
        ({"values": [1, 2], "start": 2}, ValueError),
        ({"values": [1], "label": ""}, ValueError),
        ({"values": [1], "draw": "not callable"}, TypeError),
        ({"values": [1], "layout": "tight"}, ValueError),
    ],
)
def test_slider_rejects_bad_arguments(kwargs, exc):
    args = {"draw": _draw, "label": "a", "static": True, **kwargs}
    with pytest.raises(exc):
        viz.slider(args.pop("draw"), args.pop("values"), **args)


def test_pow10_labels_powers_of_ten_in_plain_text():
    assert [viz.pow10(v) for v in (1e-6, 1.0, 100.0, -1e3, 0.0)] == ["10⁻⁶", "10⁰", "10²", "−10³", "0"]
    assert viz.pow10(2e-6) == "2e−06" and viz.pow10(-3.0) == "−3" and viz.pow10(float("inf")) == "inf"


def test_style_and_table():
    viz.use_style()
    assert mpl.rcParams["figure.facecolor"] == "white"
    html = viz.table(["a", "b"], [[1, 0.12345], ["x<y", 2.0]], fmt=".2f").data
    assert "<td>0.12</td>" in html and "x&lt;y" in html
    with pytest.raises(ValueError, match="as many cells"):
        viz.table(["a"], [[1, 2]])


# ---------------------------------------------------------------- symbolic
def test_assert_identity_passes_and_fails():
    x = sp.Symbol("x")
    symbolic.assert_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)
    with pytest.raises(AssertionError, match="wrong"):
        symbolic.assert_identity((x + 1) ** 2, x**2 + 1, name="wrong")


def test_assert_numeric_passes_and_fails():
    x, y = sp.symbols("x y")
    pts = np.random.default_rng(0).normal(size=(20, 2))
    err = symbolic.assert_numeric(x * sp.exp(y), [x, y], lambda a, b: a * np.exp(b), pts)
    assert err < 1e-12
    with pytest.raises(AssertionError, match="disagree"):
        symbolic.assert_numeric(x * sp.exp(y), [x, y], lambda a, b: a * np.exp(b) + 1e-3, pts)
    with pytest.raises(ValueError, match="points"):
        symbolic.assert_numeric(x, [x, y], lambda a, b: a, np.zeros((3, 1)))


def test_show_renders_latex():
    x = sp.Symbol("x")
    assert symbolic.show("f", x**2)._repr_latex_() == "$\\displaystyle f = x^{2}$"


# ---------------------------------------------------------------- claims
def test_claims_table_asserts_and_renders():
    c = claims.Claims(10007)
    c.close("pi", 3.1416, float(np.pi), 1e-4)
    c.close("numpy scalars", np.float32(1.0), np.float64(1.0), 0)
    c.finding("a qualitative claim", "yes", "no", 2 > 1, "not reproduced")
    c.finding("numpy booleans are computed values too", "yes", "yes", np.bool_(True), "partially reproduced")
    c.not_attempted("an image-model claim", "FID 2.0", "needs image models and GPUs")
    html = c._repr_html_()
    for verdict in claims.VERDICTS:
        assert f">{verdict}</td>" in html and html_mod.escape(claims.LEGEND[verdict]) in html
    assert c.counts() == {"reproduced": 2, "partially reproduced": 1, "not reproduced": 1, "not attempted": 1}


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda c: c.close("e", 2.7, float(np.e), 1e-3), AssertionError, "tolerance"),
        (lambda c: c.close("neg", 1.0, 1.0, -1.0), ValueError, "tol"),
        (lambda c: c.close("nan", 1.0, float("nan"), 1.0), ValueError, "finite"),
        (lambda c: c.close("bool", True, 1.0, 1.0), TypeError, "reported"),
        (lambda c: c.close("str", 1.0, "1.0", 1.0), TypeError, "measured"),
        (lambda c: c.finding("gone", "yes", "no", 1 > 2, "reproduced"), AssertionError, "no longer holds"),
        (lambda c: c.finding("int", "a", "b", 1, "reproduced"), TypeError, "holds"),
        (lambda c: c.finding("odd verdict", "a", "b", True, "sort of"), ValueError, "verdict"),
        (lambda c: c.finding("untested", "a", "b", True, "not attempted"), ValueError, "not_attempted"),
        (lambda c: c.not_attempted("c", "r", "  "), ValueError, "why"),
    ],
)
def test_claims_refuse_bad_rows(call, exc, match):
    c = claims.Claims(10007)
    with pytest.raises(exc, match=match):
        call(c)
    assert c.rows == [], "a refused row is not added"


def test_claims_need_the_article_number():
    with pytest.raises(TypeError, match="article"):
        claims.Claims()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="article"):
        claims.Claims("10007")  # type: ignore[arg-type]


def test_claims_json_is_written_on_display(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("KEXUE_FULL", "0")
    monkeypatch.setenv("KEXUE_CLAIMS_DIR", str(tmp_path))
    env.setup(seed=0, verbose=False)
    c = claims.Claims(10114)
    c.close("x", 1.0, 1.0, 0.0)
    c.not_attempted("y", "r", "needs a GPU cluster")
    c._repr_html_()
    data = json.loads((tmp_path / "10114.json").read_text())
    assert data["article"] == 10114 and data["mode"] == "quick" and data["device"] == "cpu"
    assert 0 <= data["seconds"] < 60
    assert [r["verdict"] for r in data["rows"]] == ["reproduced", "not attempted"]
    with pytest.raises(ValueError, match="empty"):
        claims.Claims(1).write(tmp_path)


# ---------------------------------------------------------------- prose
def test_glue_writes_what_myst_nb_glue_writes(monkeypatch):
    """The bundle prose.glue displays is byte for byte the one myst-nb's glue(display=False) displays."""
    import IPython.display
    import myst_nb.ext.glue as myst_glue
    from IPython.display import Markdown

    shown: list[tuple[dict, dict]] = []

    def capture(obj, raw=False, metadata=None):
        assert raw
        shown.append((obj, metadata))

    monkeypatch.setattr(IPython.display, "display", capture)
    monkeypatch.setattr(myst_glue, "ipy_display", capture)
    assert prose.GLUE_PREFIX == myst_glue.GLUE_PREFIX
    for name, value, stored in (("x", np.float64(0.125), 0.125), ("n", np.int64(7), 7), ("w", "seven", Markdown("seven"))):
        prose.glue(name, value)
        myst_glue.glue(name, stored, display=False)
        ours, theirs = shown[-2], shown[-1]
        assert ours == theirs, name
        assert ours[1]["scrapbook"] == {"name": name, "mime_prefix": myst_glue.GLUE_PREFIX}


def test_glue_accepts_numbers_and_strings_and_returns_them():
    assert prose.glue("a_number", np.float32(0.25)) == np.float32(0.25)
    assert prose.glue("an_int", np.int64(3)) == 3
    assert prose.glue("a_tensor", torch.tensor(1.5)) == torch.tensor(1.5)
    assert prose.glue("words", "reached") == "reached"


@pytest.mark.parametrize(
    ("name", "value", "exc"),
    [("bad key", 1.0, ValueError), ("_x", 1.0, ValueError), ("x", True, TypeError), ("x", float("inf"), ValueError),
     ("x", [1, 2], TypeError), ("x", torch.ones(2), TypeError)],
)
def test_glue_refuses_what_prose_cannot_state(name, value, exc):
    with pytest.raises(exc):
        prose.glue(name, value)
