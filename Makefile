# pmf task runner. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help install run test test-fast test-components test-slow lint bench clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the pinned dependencies and pmf (editable)

run: $(STAMP)  ## run the main flow on the bundled penguins data
	$(BIN)/pmf run

test: $(STAMP)  ## run the whole test suite (all three tiers)
	$(BIN)/pytest -q

test-fast: $(STAMP)  ## tier 1: unit tests of pure functions (under a minute, no Prefect server)
	$(BIN)/pytest -q -m "not component and not slow"

test-components: $(STAMP)  ## tier 2: one real tool each (MLflow store, GX, TF training, HTTP server)
	$(BIN)/pytest -q -m "component and not slow"

test-slow: $(STAMP)  ## tier 3: end-to-end flows and services
	$(BIN)/pytest -q -m slow

lint: $(STAMP)  ## ruff (lint + format check) and mypy on flows/ and tasks/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## print every benchmark figure (minutes; BENCH_ARGS=--quick for a short pass)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:  ## remove the virtual environment (your PMF_HOME workspace is kept)
	rm -rf $(VENV) *.egg-info
