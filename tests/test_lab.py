"""The local way to run the book (``make lab``), tested as a reader would use it.

JupyterLab from this environment is started on a free local port with a token, on a temporary copy of two
notebooks from different parts (so that autosave never writes outputs into ``notebooks/``). In headless
Chromium each notebook is opened, every cell is run, and the first live slider is moved with the keyboard:
the figure under it must change (its image data differs) and no cell may write an error. The server and its
kernels are stopped by the test, which checks that no process of theirs is left.

Skipped with a message where no Chromium exists (outside CI); CI installs Debian's chromium and chromedriver.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.lab

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
JUPYTER = Path(sys.executable).with_name("jupyter")
# Two notebooks from different parts whose first slider redraws a figure.
LIVE = ["positional/rope-tie-multimodal", "generative/snr-high-resolution"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on a copy of the LIVE notebooks: yields (base URL, token)."""
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("no Chromium here: install Debian's chromium and chromium-driver to run the JupyterLab test")
    assert JUPYTER.exists(), f"{JUPYTER} is missing: `make venv` installs JupyterLab from requirements.txt"
    root = tmp_path_factory.mktemp("lab")
    for name in LIVE:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root / f"{Path(name).name}.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEXUE_")}  # live sliders, quick mode
    env["JUPYTER_CONFIG_DIR"] = str(root / ".config")  # no user settings
    env["JUPYTERLAB_SETTINGS_DIR"] = str(root / ".settings")
    # render every cell (JupyterLab 4 only puts the cells in view into the page by default)
    tracker = root / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    env["JUPYTER_RUNTIME_DIR"] = str(root / ".runtime")
    with open(root / "server.log", "wb") as log:  # the server keeps its own copy of the descriptor
        server = subprocess.Popen(
            [str(JUPYTER), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (root / "server.log").read_text(errors="replace")[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for _ in range(50):  # kernels are in the server's process group
            if not _group_alive(server.pid):
                break
            time.sleep(0.2)
        else:
            os.killpg(server.pid, signal.SIGKILL)
        assert not _group_alive(server.pid), "JupyterLab or one of its kernels is still running"


@pytest.fixture(scope="module")
def chrome() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, predicate, timeout: float, what: str, describe=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f"; last state: {describe()}" if describe else ""))


# The first widget slider's box and the image in the Output widget of the same box (viz.slider's live form: a
# VBox holding a SelectionSlider and an Output widget showing the figure).
_SLIDER_STATE = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const handle = panel && panel.querySelector('.widget-slider .noUi-handle, .widget-slider .ui-slider-handle');
if (!handle) return null;
const box = handle.closest('.widget-vbox');
const img = box && box.querySelector('.widget-output img');
const label = box && box.querySelector('.widget-readout');
return img ? {src: img.getAttribute('src'), label: label ? label.textContent : null} : null;
"""

_CELLS_STATE = """
const nb = window.jupyterapp.shell.currentWidget;
if (!nb || !nb.content || !nb.sessionContext.session) return null;
const cells = nb.content.widgets.filter(c => c.model.type === 'code');
const errors = cells.flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
  .map(o => o.ename + ': ' + o.evalue));
return {counts: cells.map(c => c.model.executionCount), errors: errors,
        idle: nb.sessionContext.session.kernel.status === 'idle'};
"""


@pytest.mark.parametrize("name", LIVE)
def test_a_live_slider_in_jupyterlab_redraws_its_figure(lab, chrome, name):
    from selenium.webdriver.common.keys import Keys

    base, token = lab
    driver = chrome
    file = f"{Path(name).name}.ipynb"
    # a workspace of its own, reset, so that the notebook opened by an earlier test is not restored
    driver.get(f"{base}/lab/workspaces/{Path(name).name}/tree/{file}?reset&token={token}")
    _wait(driver, lambda: driver.execute_script(
        "const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return !!(nb && nb.context && nb.context.path === arguments[0] && nb.content.widgets.length);", file),
        120, "JupyterLab to open the notebook")
    _wait(driver, lambda: driver.execute_script(
        "const nb = window.jupyterapp.shell.currentWidget;"
        "return !!(nb && nb.sessionContext.session && nb.sessionContext.session.kernel"
        " && nb.sessionContext.session.kernel.status === 'idle');"), 120, "the kernel to start")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    time.sleep(1)

    def finished():
        state = driver.execute_script("return (() => {" + _CELLS_STATE + "})();")
        if state is None or not state["counts"]:
            return None
        if state["errors"]:
            return state
        return state if state["idle"] and all(c is not None for c in state["counts"]) else None

    state = _wait(driver, finished, 240, "every cell to run",
                  lambda: driver.execute_script("return (() => {" + _CELLS_STATE + "})();"))
    assert not state["errors"], f"{name}: a cell wrote an error:\n" + "\n---\n".join(state["errors"])
    before = _wait(driver, lambda: driver.execute_script("return (() => {" + _SLIDER_STATE + "})();"), 60,
                   "the live slider and its figure (is the widget extension installed?)")
    handle = driver.execute_script(
        "return document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .noUi-handle,"
        " .jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .ui-slider-handle');")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    # the slider may open on its last value, where ArrowRight does nothing: then move it left
    key = Keys.ARROW_LEFT if driver.execute_script("return arguments[0].getAttribute('aria-valuenow') === "
                                                   "arguments[0].getAttribute('aria-valuemax');", handle) else Keys.ARROW_RIGHT
    handle.send_keys(key)
    after = _wait(driver, lambda: (lambda s: s if s and s["src"] != before["src"] else None)(
        driver.execute_script("return (() => {" + _SLIDER_STATE + "})();")), 60, "the figure to change after the move")
    assert after["src"].startswith("data:image/png;base64,") and after["src"] != before["src"]
    assert after["label"] != before["label"], "the slider's readout did not move"
    state = driver.execute_script("return (() => {" + _CELLS_STATE + "})();")
    assert not state["errors"], f"{name}: moving the slider wrote an error:\n" + "\n---\n".join(state["errors"])
