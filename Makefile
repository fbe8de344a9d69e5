# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python 3.13 for `make test-py313` (part of `make test`): python3.13 on PATH, else pyenv's.
PYTHON313 ?= $(shell ls -d $(HOME)/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1 || command -v python3.13)
VENV313 := .venv313

.PHONY: install demo test test-py313 lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with rlv2 and its dev tools

demo: $(STAMP)  ## build the demo history from the bundled bars, train, sweep, promote
	$(BIN)/rlv2 demo

test: $(STAMP)  ## lint, types (pyright, strict for the pure core), the whole suite, then 3.13
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-py313

$(VENV313)/.installed: pyproject.toml
	$(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --upgrade pip
	$(VENV313)/bin/pip install --quiet -e ".[dev]"
	touch $@

test-py313:  ## on Python 3.13: the tests that start no server, and the demo (skipped without 3.13)
	@if [ -z "$(PYTHON313)" ]; then \
		echo "test-py313: skipped: no Python 3.13 (python3.13 on PATH or pyenv's 3.13)"; \
	else \
		$(MAKE) --no-print-directory $(VENV313)/.installed && \
		demo_dir=$$(mktemp -d) && (cd $$demo_dir && $(CURDIR)/$(VENV313)/bin/rlv2 demo > demo.log) && \
		echo "test-py313: rlv2 demo on $$($(VENV313)/bin/python --version) done ($$demo_dir/demo.log)" && \
		$(VENV313)/bin/python -m pytest -q -m "not server"; \
	fi

lint: $(STAMP)  ## ruff, formatting, and pyright (strict for the pure core)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

bench: $(STAMP)  ## the performance benchmark (not part of the tests)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(VENV313) .pytest_cache mlruns mlflow.db rlv2.duckdb
