# The two commands of the README, each making its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve dev test lint typecheck unit bench soak clean

serve: $(VENV)/.installed-embedded  ## serve the example app on the embedded PostgreSQL
	@echo "make serve does not reload: for reload, a line per request and an open dashboard, run make dev"
	$(BIN)/actions-server serve config.yaml

dev: $(VENV)/.installed-embedded  ## serve for development: reload on save, request log, open dashboard
	$(BIN)/actions-server dev config.yaml

test: $(VENV)/.installed-dev  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/http_overhead.py

soak: $(VENV)/.installed-dev  ## the chaos soak for ten minutes (the suite runs 75 s of it)
	$(BIN)/python tests/soak/chaos.py --seconds 600

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-embedded: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
