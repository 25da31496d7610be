# Two entry points for a new machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all test-determinism bench bench-socp bench-admm bench-plan bench-pypsa bench-edge-cloud clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,bench,ray,plot,lsp,docs]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridlang check cases/ieee33_dispatch.grid
	$(BIN)/gridlang solve cases/ieee33_dispatch.grid --out results/ieee33_dispatch

# the default run leaves out the tests marked slow (each repeats a faster test's check on
# a bigger case); test-all runs them too
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadgroup

# the suite again with one thread for BLAS/OpenMP and another hash seed, then with
# two threads and a third seed: no test may depend on which optimum a solver returns
test-determinism: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=1 $(BIN)/python -m pytest -q
	OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 PYTHONHASHSEED=4242 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_scaling.py

bench-socp: $(STAMP)
	$(BIN)/python benchmarks/socp_scaling.py

bench-admm: $(STAMP)
	$(BIN)/python benchmarks/admm_scaling.py

bench-plan: $(STAMP)
	$(BIN)/python benchmarks/planning_scaling.py

bench-pypsa: $(STAMP)
	$(BIN)/python benchmarks/pypsa_dispatch.py

bench-edge-cloud: $(STAMP)
	$(BIN)/python benchmarks/edge_cloud.py

clean:
	rm -rf $(VENV) results .pytest_cache
