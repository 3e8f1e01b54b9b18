# `make demo` and `make test` create the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bgmm-installed

.PHONY: demo test test-slow lint bench bench-dask notebooks docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bgmm demo --output demo-output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Time per iteration against scikit-learn (two problem sizes), then the memory a fit adds.
bench: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/bench_em_iteration.py
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/bench_em_iteration.py --n 20000 --d 32
	$(BIN)/python benchmarks/bench_memory.py

# EM on Dask: 1 against 2 workers at N = 1e7, scheduler overhead, out-of-core memory of a
# 2 GB zarr store (about 15 minutes on 2 cores; writes the store to a temporary folder).
bench-dask: $(STAMP)
	$(BIN)/python benchmarks/bench_dask.py

# Re-execute every notebook (full draws) and write its .ipynb pair with the outputs.
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py

# The documentation site, warnings as errors; open docs/_build/html/index.html.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -n -b html docs docs/_build/html

clean:
	rm -rf $(VENV) demo-output docs/_build
