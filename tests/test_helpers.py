"""Unit tests of kexue_lite.env, viz, symbolic and claims."""

from __future__ import annotations

import random
import re

import matplotlib as mpl
import numpy as np
import pytest
import sympy as sp
import torch

from kexue_lite import claims, env, symbolic, viz


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
        return random.random(), np.random.rand(), torch.rand(1).item()

    env.seed_everything(7)
    first = draw()
    env.seed_everything(7)
    assert draw() == first
    with pytest.raises(ValueError, match="seed"):
        env.seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        env.seed_everything(1.5)


def test_setup_quick_mode_uses_one_thread(monkeypatch, capsys):
    monkeypatch.setenv("KEXUE_FULL", "0")
    threads = torch.get_num_threads()
    try:
        e = env.setup(seed=3)
        assert torch.get_num_threads() == 1
        assert not e.full and e.seed == 3 and e.size(1, 2) == 1
        assert "quick mode" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)


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
    ],
)
def test_slider_rejects_bad_arguments(kwargs, exc):
    args = {"draw": _draw, "label": "a", "static": True, **kwargs}
    with pytest.raises(exc):
        viz.slider(args.pop("draw"), args.pop("values"), **args)


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
    c = claims.Claims()
    c.close("pi", 3.1416, float(np.pi), 1e-4)
    c.finding("a qualitative claim", "yes", "no", True, "not reproduced")
    html = c._repr_html_()
    assert "reproduced" in html and "not reproduced" in html
    with pytest.raises(AssertionError, match="tolerance"):
        c.close("e", 2.7, float(np.e), 1e-3)
    with pytest.raises(AssertionError, match="no longer holds"):
        c.finding("gone", "yes", "no", False, "reproduced")
    with pytest.raises(ValueError, match="tol"):
        c.close("neg", 1.0, 1.0, -1.0)
    with pytest.raises(TypeError, match="holds"):
        c.finding("np bool", "a", "b", np.bool_(True), "x")
