# kexue-lite: three commands do everything.
#   make book   create .venv, install everything, build the website into _build/html
#   make test   the same, then run every test (unit, notebook lint, built site and JupyterLab in Chromium)
#   make lab    create .venv, install everything, open JupyterLab on notebooks/ (live sliders)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv book test unit lab sync clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# jupyter-cache keys on a notebook's content only: when kexue_lite changes, execute everything again.
CACHE_STAMP := _build/.kexue_lite-stamp
# The claims tables the notebooks write (KEXUE_CLAIMS_DIR, read by the reproducibility report) go with it.
$(CACHE_STAMP): $(wildcard kexue_lite/*.py kexue_lite/*/*.py)
	rm -rf _build/.jupyter_cache _build/claims
	mkdir -p _build && touch $@

# KEXUE_STATIC=1 reaches the executing kernels and makes viz.slider embed precomputed frames;
# the execution cache does not key on it, so every build sets it.
# --all rewrites every page (Sphinx does not notice changes to book/_ext); executions stay cached.
book: venv $(CACHE_STAMP)
	KEXUE_STATIC=1 KEXUE_CLAIMS_DIR=$(CURDIR)/_build/claims $(BIN)/jupyter-book build . --all -W -n --keep-going
	$(BIN)/python tools/exec_times.py
	@echo "The website is in _build/html: open $(CURDIR)/_build/html/index.html"

# Quick checks that need no site build (and not the minute-long JupyterLab test).
unit: venv
	$(BIN)/python -m pytest -m "not site and not lab"

# Run the notebooks locally with live sliders: JupyterLab (with the widget extension) on notebooks/.
# The .ipynb files carry no outputs; save a copy elsewhere if you want to keep yours.
lab: venv
	$(BIN)/jupyter lab --notebook-dir=notebooks

test: book
	KEXUE_REQUIRE_SITE=1 $(BIN)/python -m pytest

# Re-pair every book/<part>/<slug>.md with notebooks/<part>/<slug>.ipynb (outputs stripped);
# the part landing pages (index.md) are not notebooks.
sync: venv
	$(BIN)/jupytext --sync $(filter-out %/index.md,$(wildcard book/*/*.md))

clean:
	rm -rf _build
