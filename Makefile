# The two commands of the README: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/l1: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable '.[test]'
	@touch $@

## Install, start the whole system (NATS, Redis, API, one worker) and render the dog over the cat.
demo: $(BIN)/l1
	$(BIN)/l1 up --demo

## Install and run the test suite against real nats-server and Redis processes.
test: $(BIN)/l1
	$(BIN)/python -m pytest

## Run the benchmarks; they print figures.
bench: $(BIN)/l1
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.render_effect
	$(BIN)/python -m bench.recipe_cache

## Style and types.
lint: $(BIN)/l1
	$(BIN)/pip install --quiet --editable '.[dev]'
	$(BIN)/ruff check l1 tests bench
	$(BIN)/ruff format --check l1 tests bench
	$(BIN)/mypy l1 --ignore-missing-imports

clean:
	rm -rf $(VENV) .pytest_cache
