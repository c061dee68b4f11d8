# pmf task runner. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help install run test bench clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the pinned dependencies and pmf (editable)

run: $(STAMP)  ## run the main flow on the bundled penguins data
	$(BIN)/pmf run

test: $(STAMP)  ## run the test suite
	$(BIN)/pytest -q

bench: $(STAMP)  ## print every benchmark figure (minutes; BENCH_ARGS=--quick for a short pass)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:  ## remove the virtual environment (your PMF_HOME workspace is kept)
	rm -rf $(VENV) *.egg-info
