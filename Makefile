# Two commands do all set-up on a fresh machine:
#   make demo   environment + demo archive + every asset of every demo partition through Dagster
#   make test   environment + the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
GT_VENV := .venv-geotessera
# The loopback STAC API server of the catalog integration tests; its pins clash with dagster's.
STACAPI_VENV := .venv-stacapi
STACAPI_PINS := stac-fastapi-geoparquet==0.0.7 stac-fastapi-api==5.2.1 stac-fastapi-types==5.2.1 \
	stac-fastapi-extensions==5.2.1 fastapi==0.144.0 starlette==0.50.0 uvicorn==0.54.0 rustac==0.9.17 \
	duckdb-extension-spatial==1.5.5 duckdb-extension-icu==1.5.5 duckdb-extension-parquet==1.5.5
DEMO_HOME ?= $(CURDIR)/.demo
# The torch==2.13.0 CPU wheel lives in /opt/wheels on the build machines; elsewhere PyPI serves
# torch (on a GPU host, install the CUDA torch first). Only pass the folder where it exists.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export UV_PYTHON_DOWNLOADS := never
# Python >= 3.12 for geotessera (the reference reader of our embeddings store).
PY312 ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[23]*/bin/python3 /usr/bin/python3.12 /usr/local/bin/python3.12; do $$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: demo test test-quick system-deps install dev lint bench bench-sensor bench-scale clean-demo

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

$(STACAPI_VENV)/.installed:
	@test -x $(STACAPI_VENV)/bin/python || $(PYTHON) -m venv $(STACAPI_VENV)
	$(STACAPI_VENV)/bin/python -m pip install -q --disable-pip-version-check $(STACAPI_PINS)
	@touch $@

demo: install
	$(VENV)/bin/tessera-assets demo --home $(DEMO_HOME)

# The production-like scale test needs Debian's PostgreSQL server (Dagster instance storage).
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian's postgresql (Dagster instance storage for the scale test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium (headless browser of the UI tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Two pytest-xdist workers (one file per worker at a time, each with its own loopback Ray
# cluster) for everything but the scale test, then the scale test alone: it measures a
# backfill of its own and needs the machine to itself.
TEST_WORKERS ?= 2
TEST_ENV = GEOTESSERA_PYTHON=$(CURDIR)/$(GT_VENV)/bin/python \
	TESSERA_STACAPI_PYTHON=$(CURDIR)/$(STACAPI_VENV)/bin/python

test: install system-deps $(GT_VENV)/.installed $(STACAPI_VENV)/.installed
	$(TEST_ENV) $(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not scale" --durations=30
	$(TEST_ENV) $(VENV)/bin/python -m pytest -q -m scale

# Everything but the slow, end-to-end and scale tests, for the edit-test loop.
test-quick: install
	$(VENV)/bin/python -m pytest -q -m "not slow and not e2e and not scale"

dev: install
	$(VENV)/bin/tessera-assets ray up
	DAGSTER_HOME=$(DEMO_HOME)/dagster_home TESSERA_CONFIG=$(DEMO_HOME)/tessera.json \
		$(VENV)/bin/dagster dev -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check tessera_assets tessera_assets_tests benchmarks

bench: install
	$(VENV)/bin/python benchmarks/bench_inference.py

bench-scale: install system-deps
	$(VENV)/bin/python benchmarks/bench_scale_backfill.py --out /tmp/bench-scale.json

bench-sensor: install
	$(VENV)/bin/python benchmarks/bench_sensor.py --out /tmp/bench-sensor

clean-demo:
	rm -rf $(DEMO_HOME)
