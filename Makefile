# Two entry points for a new machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-socp bench-admm bench-plan clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,bench,ray,plot]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridlang check cases/ieee33_dispatch.grid
	$(BIN)/gridlang solve cases/ieee33_dispatch.grid --out results/ieee33_dispatch

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_scaling.py

bench-socp: $(STAMP)
	$(BIN)/python benchmarks/socp_scaling.py

bench-admm: $(STAMP)
	$(BIN)/python benchmarks/admm_scaling.py

bench-plan: $(STAMP)
	$(BIN)/python benchmarks/planning_scaling.py

clean:
	rm -rf $(VENV) results .pytest_cache
