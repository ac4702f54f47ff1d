# Two commands from a fresh clone: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

# The daemon on its embedded defaults: HTTP on 127.0.0.1:8080, rules from ./rules,
# SQLite state in ./var/ (see README, "Running the daemon").
run: $(VENV)/.installed
	$(BIN)/correlator check rules
	$(BIN)/correlator run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check correlator tests bench
	$(BIN)/ruff format --check correlator tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/correlator check rules
	$(BIN)/correlator test $$(find rules -name '*_test.yaml' | sort)
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
