# One place for the commands the README and CI use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck unit demo schemas

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

lint:
	$(BIN)/ruff check detector tests bench
	$(BIN)/ruff format --check detector tests bench

typecheck:
	$(BIN)/mypy detector

unit:
	$(BIN)/pytest

# What CI runs: lint, types, then every test.
test: lint typecheck unit

demo:
	$(BIN)/detector normalize samples/

schemas:
	$(BIN)/detector schema export
