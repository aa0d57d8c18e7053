# The two commands of README's Quick start. Each creates .venv when it is missing and
# installs only what it needs: `make demo` the package, `make test` its test extras too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet
# one stamp per set of extras installed (pyproject.toml changed: install again)
STAMP_PACKAGE := $(VENV)/.installed-package
STAMP_TEST := $(VENV)/.installed-test
STAMP_ALL := $(VENV)/.installed

.PHONY: demo test lint bench dev clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "ccdcal needs Python >= 3.11: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# each install compiles the kernels a default reduction calls into numba's cache (ccdcal
# compile: about 25 s on 2 cores), so that the first reduction runs at full speed
$(STAMP_PACKAGE): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	$(BIN)/ccdcal compile
	touch $@

# the test suite: pytest and its plugins, ccdproc and the notebook's kernel (test), and
# distributed for the cluster tests (cluster)
$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,cluster]'
	$(BIN)/ccdcal compile
	touch $@

# everything a developer uses: lint (dev) and the benchmarks' peers (bench) too
$(STAMP_ALL): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,bench,dev,cluster]'
	$(BIN)/ccdcal compile
	touch $@ $(STAMP_PACKAGE) $(STAMP_TEST)

demo: $(STAMP_PACKAGE)
	$(BIN)/ccdcal demo demo-output

test: $(STAMP_TEST)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

dev: $(STAMP_ALL)

lint: $(STAMP_ALL)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: $(STAMP_ALL)
	$(BIN)/python benchmarks/combine_vs_peers.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
