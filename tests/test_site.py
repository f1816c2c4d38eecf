"""Tests of the built website in _build/html (``make test`` builds it first).

* every notebook executed within the time limit (read from the execution cache), and no page shows an error output;
* every Colab link, the theme's launch button included, opens the paired .ipynb;
* math is rendered by the MathJax copy shipped with the site, and nothing loads from a CDN;
* the reproducibility report and the errata page are linked from the intro, and every link on
  them reaches an existing page and anchor;
* in a real headless Chromium (Debian's), with every host but localhost unreachable: every
  page loads without JavaScript errors; notebook pages show rendered math and a figure, no
  figure is shrunk to fit the content column, every static slider opens on its ``start``
  frame with its values in order, and moving it changes the displayed frame.
"""

from __future__ import annotations

import functools
import html as html_mod
import http.server
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import ROOT

from kexue_book import colab_url, load_catalogue

pytestmark = pytest.mark.site

HTML = ROOT / "_build" / "html"
_, ARTICLES = load_catalogue()
NOTEBOOKS = [a for a in ARTICLES if a.exists]
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html") if "_static" not in p.parts) if HTML.exists() else []

if not HTML.exists():
    if os.environ.get("KEXUE_REQUIRE_SITE") == "1":
        pytest.fail("_build/html is missing: `make test` builds it first", pytrace=False)
    pytest.skip("the website is not built (run `make book`, or `make test` which builds it)", allow_module_level=True)


def _page(article) -> str:
    return (HTML / "book" / article.part / f"{article.slug}.html").read_text("utf-8")


# ---------------------------------------------------------------- static checks
def test_every_notebook_ran_within_the_time_limit():
    from exec_times import HARD_LIMIT_S, execution_times

    times = execution_times()
    assert set(times) == {str(a.source.relative_to(ROOT)) for a in NOTEBOOKS}
    for path, seconds in times.items():
        assert seconds is not None, f"{path}: no execution record in the cache for its current content"
        assert seconds <= HARD_LIMIT_S, f"{path}: {seconds:.1f} s in quick mode (limit {HARD_LIMIT_S:.0f} s)"


@pytest.mark.parametrize("article", NOTEBOOKS, ids=lambda a: a.slug)
def test_no_notebook_page_shows_an_error_output(article):
    """An exception raised while an output is displayed (a mathtext error in a label, drawn at the end of the cell)
    is stored as an error output without failing the cell; myst-nb renders it as a traceback."""
    assert 'class="output traceback' not in _page(article), f"{article.slug}: the page shows a traceback"


@pytest.mark.parametrize("article", NOTEBOOKS, ids=lambda a: a.slug)
def test_every_colab_link_opens_the_paired_ipynb(article):
    links = re.findall(r'href="(https://colab\.research\.google\.com/[^"]*)"', _page(article))
    assert len(links) >= 2, "the badge under the title and the theme's launch button"
    assert set(links) == {colab_url(article)}


def test_no_colab_link_anywhere_points_at_a_markdown_source():
    for page in PAGES:
        text = (HTML / page).read_text("utf-8")
        assert not re.search(r'colab\.research\.google\.com/[^"]*\.md"', text), page


def test_math_is_served_locally_and_nothing_loads_from_the_network():
    assert (HTML / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    for page in PAGES:
        text = (HTML / page).read_text("utf-8")
        assert not re.search(r'<script[^>]+src="(https?:)?//', text), f"{page} loads a remote script"
        assert not re.search(r'<link[^>]+rel="stylesheet"[^>]+href="(https?:)?//', text), f"{page} loads remote CSS"
        if "math" in text:
            assert "cdn.jsdelivr" not in text and "mathjax@" not in text, page


def test_intro_lists_every_article_and_links_existing_notebooks():
    text = (HTML / "book" / "intro.html").read_text("utf-8")
    for a in ARTICLES:
        assert a.url in text, a.number
    for a in NOTEBOOKS:
        assert f'href="{a.part}/{a.slug}.html"' in text, a.slug


def _local_links(page: str) -> list[tuple[str, str]]:
    """``(target page, anchor)`` of every relative link on ``page`` (relative to _build/html)."""
    text = (HTML / page).read_text("utf-8")
    body = text[text.index('<main'):text.index('</main>')]
    out = []
    for href in re.findall(r'href="([^"]+)"', body):
        href = html_mod.unescape(href)
        if re.match(r"[a-z]+:", href) or href.startswith("//"):
            continue
        path, _, anchor = href.partition("#")
        target = (HTML / page).parent / path if path else HTML / page
        out.append((os.path.normpath(target.relative_to(HTML).as_posix()) if path else page, anchor))
    return out


@pytest.mark.parametrize("page", ["book/reproducibility.html", "book/errata.html"])
def test_report_and_errata_are_linked_from_the_intro_and_every_link_resolves(page):
    intro = (HTML / "book" / "intro.html").read_text("utf-8")
    assert f'href="{page.split("/")[-1]}"' in intro, f"the intro links {page}"
    links = _local_links(page)
    assert links, f"{page} has no links"
    for target, anchor in links:
        assert (HTML / target).exists(), f"{page} links a missing page {target}"
        if anchor:
            assert f'id="{anchor}"' in (HTML / target).read_text("utf-8"), f"{page} links a missing anchor {target}#{anchor}"


def test_report_lists_every_notebook_with_its_claims_section():
    text = (HTML / "book" / "reproducibility.html").read_text("utf-8")
    for a in NOTEBOOKS:
        assert f'href="{a.part}/{a.slug}.html#reproducing-the-claims"' in text, a.slug
    assert "kexue-report-total" in text


# ---------------------------------------------------------------- in a real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[object, str]]:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("no Chromium here: install Debian's chromium and chromium-driver to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # offline: every host but this machine is unreachable, so a CDN dependency would show
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 900)
    try:
        yield driver, f"http://127.0.0.1:{server.server_port}"
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _load(driver, url: str) -> list[dict]:
    """Open ``url``, wait until it (and any redirect) has settled, return its SEVERE console entries.

    Errors logged late by the previous page are returned too, marked, rather than dropped.
    """
    late = [{**e, "note": "logged after the previous page had loaded"} for e in _severe(driver)]
    driver.get(url)
    deadline, settled, last = time.time() + 30, 0, None
    while time.time() < deadline and settled < 5:
        state = (driver.current_url, driver.execute_script("return document.readyState"))
        settled = settled + 1 if state == last and state[1] == "complete" else 0
        last = state
        time.sleep(0.1)
    return late + _severe(driver)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_javascript_errors(browser, page):
    driver, base = browser
    errors = _load(driver, f"{base}/{page}")
    assert errors == [], errors


@pytest.mark.parametrize("article", NOTEBOOKS, ids=lambda a: a.slug)
def test_notebook_page_shows_math_a_figure_and_a_working_slider(browser, article):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, base = browser
    assert _load(driver, f"{base}/book/{article.part}/{article.slug}.html") == []
    deadline = time.time() + 30
    while time.time() < deadline and not driver.execute_script("return document.querySelectorAll('mjx-container svg').length"):
        time.sleep(0.2)
    assert driver.execute_script("return document.querySelectorAll('mjx-container svg').length") > 0, "math not rendered"
    assert driver.execute_script("return document.querySelectorAll('mjx-merror').length") == 0, "MathJax errors"
    figures = driver.execute_script(
        "return [...document.querySelectorAll('.cell_output img')].filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert figures >= 1, "no figure rendered"
    # No figure is wider than the column shows it: an image drawn wider than the content column is
    # shrunk, and its fonts with it (viz.subplots and viz.slider keep figures within viz.COLUMN_PX).
    shrunk = driver.execute_script(
        "return [...document.querySelectorAll('.cell_output img')].filter(i => i.complete && i.naturalWidth > 0"
        " && i.getBoundingClientRect().width + 1 < i.naturalWidth).map(i => [i.naturalWidth, i.getBoundingClientRect().width])"
    )
    assert shrunk == [], f"figures shrunk to fit the column (natural width, shown width): {shrunk}"
    boxes = driver.find_elements(By.CSS_SELECTOR, ".kexue-slider")
    assert boxes, "no static slider on the page"
    for box in boxes:
        slider = box.find_element(By.CSS_SELECTOR, "input[type=range]")
        start, labels = int(box.get_attribute("data-start")), json.loads(box.get_attribute("data-labels"))
        assert int(slider.get_attribute("max")) == len(labels) - 1
        assert int(slider.get_attribute("value")) == start, "the slider opens on its start frame"
        try:  # numeric values are in their natural order: moving right increases the value
            numbers = [float(x.replace("−", "-").split()[0]) for x in labels]
        except ValueError:
            numbers = None
        if numbers is not None and len(numbers) > 1:
            assert all(a < b for a, b in zip(numbers, numbers[1:])) or all(a > b for a, b in zip(numbers, numbers[1:])), labels
        image = driver.find_element(By.ID, slider.get_attribute("id").replace("_anim_slider", "_anim_img"))
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
        slider.click()  # a click may move it; then the keyboard, as a reader would
        slider.send_keys(Keys.HOME)
        assert slider.get_attribute("value") == "0"
        first = image.get_attribute("src")
        slider.send_keys(Keys.END)
        assert slider.get_attribute("value") == slider.get_attribute("max") != "0"
        assert image.get_attribute("src") != first, "moving the slider did not change the frame"
    assert _severe(driver) == []

