# Two commands do all set-up on a fresh machine:
#   make demo   environment + demo archive + every asset of every demo partition through Dagster
#   make test   environment + the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
GT_VENV := .venv-geotessera
DEMO_HOME ?= $(CURDIR)/.demo
# The torch==2.13.0 CPU wheel lives in /opt/wheels on the build machines; elsewhere PyPI serves
# torch (on a GPU host, install the CUDA torch first). Only pass the folder where it exists.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export UV_PYTHON_DOWNLOADS := never
# Python >= 3.12 for geotessera (the reference reader of our embeddings store).
PY312 ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[23]*/bin/python3 /usr/bin/python3.12 /usr/local/bin/python3.12; do $$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: demo test install dev lint bench clean-demo

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python $(FIND_LINKS) --compile-bytecode -e '.[dev,k8s]'
	@touch $@

install: $(VENV)/.installed

$(GT_VENV)/.installed:
	@test -n "$(PY312)" || { echo "geotessera needs Python >= 3.12: install one (e.g. pyenv install 3.12) or set PY312=/path/to/python3.12"; exit 1; }
	@test -x $(GT_VENV)/bin/python || $(PY312) -m venv $(GT_VENV)
	$(GT_VENV)/bin/python -m pip install -q --disable-pip-version-check geotessera==0.11.0
	@touch $@

demo: install
	$(VENV)/bin/tessera-assets demo --home $(DEMO_HOME)

test: install $(GT_VENV)/.installed
	GEOTESSERA_PYTHON=$(CURDIR)/$(GT_VENV)/bin/python $(VENV)/bin/python -m pytest -q

dev: install
	DAGSTER_HOME=$(DEMO_HOME)/dagster_home TESSERA_CONFIG=$(DEMO_HOME)/tessera.json \
		$(VENV)/bin/dagster dev -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check tessera_assets tessera_assets_tests benchmarks

bench: install
	$(VENV)/bin/python benchmarks/bench_inference.py

clean-demo:
	rm -rf $(DEMO_HOME)
