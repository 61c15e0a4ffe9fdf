# The two commands of the README: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test browser bench lint clean

# L1 and what it runs on; pip shows what it downloads and installs as it goes.
$(BIN)/l1: pyproject.toml
	@echo "Installing L1 and its dependencies into $(VENV) (the first time takes a minute or two)…"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --progress-bar on pip
	$(BIN)/pip install --progress-bar on --editable .
	@touch $@

# What the tests need on top: pytest and its plugins, schemathesis.
$(VENV)/.test-extras: $(BIN)/l1
	@echo "Installing the test tools into $(VENV)…"
	$(BIN)/pip install --progress-bar on --editable '.[test]'
	@touch $@

## Install, start the whole system (NATS, Redis, API, one worker) and render the dog over the cat.
demo: $(BIN)/l1
	$(BIN)/l1 up --demo

# The browser tests drive Debian's chromium (Playwright's own browser download is not
# used). Installed with apt when missing and this runs as root; otherwise they are skipped,
# and this says so.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "Browser tests: $(CHROMIUM) ($$($(CHROMIUM) --version 2>/dev/null))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the browser tests…"; \
		(apt-get install -y chromium || (apt-get update && apt-get install -y chromium)) \
		|| echo "NOTE: chromium could not be installed; the browser tests will be skipped."; \
	else \
		echo "NOTE: no chromium at $(CHROMIUM) and no root to install it (apt-get install chromium);"; \
		echo "      the browser tests (tests/test_ui_browser.py) will be skipped."; \
	fi

## Install and run the test suite against real nats-server and Redis processes, and the
## dashboard's tests in headless Chromium.
test: $(VENV)/.test-extras browser
	$(BIN)/python -m pytest

# What the benchmarks need on top: the load client and the reference design (Celery).
$(VENV)/.bench-extras: $(BIN)/l1
	@echo "Installing the benchmarks' load client and reference design into $(VENV)…"
	$(BIN)/pip install --progress-bar on --editable '.[bench]'
	@touch $@

## Run the benchmarks; they print figures (L1 against the Celery design, media in and
## out, renders against the ffmpeg command line, a recipe from the cache).
bench: $(VENV)/.bench-extras
	$(BIN)/python -m bench.compare
	$(BIN)/python -m bench.media_io
	$(BIN)/python -m bench.render_effect
	$(BIN)/python -m bench.recipe_cache

## Style and types.
lint: $(VENV)/.test-extras
	$(BIN)/pip install --quiet --editable '.[dev]'
	$(BIN)/ruff check l1 tests bench
	$(BIN)/ruff format --check l1 tests bench
	$(BIN)/mypy l1 --ignore-missing-imports

clean:
	rm -rf $(VENV) .pytest_cache
