# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with rlv2 and its dev tools

demo: $(STAMP)  ## build the demo history from the bundled bars, train, sweep, promote
	$(BIN)/rlv2 demo

test: $(STAMP)  ## lint, types (pyright, strict for the pure core), then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff, formatting, and pyright (strict for the pure core)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

bench: $(STAMP)  ## the performance benchmark (not part of the tests)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache mlruns mlflow.db rlv2.duckdb
