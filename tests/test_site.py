"""Tests of the built website in _build/html (``make test`` builds it first).

* every notebook executed within the time limit (read from the execution cache);
* every Colab link, the theme's launch button included, opens the paired .ipynb;
* math is rendered by the MathJax copy shipped with the site, and nothing loads from a CDN;
* in a real headless Chromium (Debian's), with every host but localhost unreachable: every
  page loads without JavaScript errors; notebook pages show rendered math and a figure, and
  moving a static slider changes the displayed frame.
"""

from __future__ import annotations

import functools
import http.server
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
    sliders = driver.find_elements(By.CSS_SELECTOR, ".kexue-slider input[type=range]")
    assert sliders, "no static slider on the page"
    for slider in sliders:
        image = driver.find_element(By.ID, slider.get_attribute("id").replace("_anim_slider", "_anim_img"))
        before = image.get_attribute("src")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
        slider.click()
        slider.send_keys(Keys.END)  # move the slider with the keyboard, as a reader would
        assert slider.get_attribute("value") == slider.get_attribute("max") != "0"
        assert image.get_attribute("src") != before, "moving the slider did not change the frame"
    assert _severe(driver) == []

