# Titan Execution. `make run` and `make test` set themselves up: a virtualenv in .venv with the
# project installed (refreshed only when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-all lint bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/titan run

lint: $(STAMP)
	$(VENV)/bin/ruff check titan tests bench
	$(VENV)/bin/mypy

test: $(STAMP) lint
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP) lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
