# The two commands of the README: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test browser bench lint clean fleet fleet-down

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
	$(BIN)/python -m bench.blob_tier
	$(BIN)/python -m bench.render_effect
	@# Side by side with the ffmpeg command line, which it needs (Debian: apt-get install ffmpeg).
	@if command -v ffmpeg >/dev/null; then $(BIN)/python -m bench.render_vs_ffmpeg; \
	else echo "bench.render_vs_ffmpeg skipped: no ffmpeg on the PATH (apt-get install ffmpeg)"; fi
	$(BIN)/python -m bench.recipe_cache
	$(BIN)/python -m bench.feed_churn

## Style and types.
lint: $(VENV)/.test-extras
	$(BIN)/pip install --quiet --editable '.[dev]'
	$(BIN)/ruff check l1 tests bench
	$(BIN)/ruff format --check l1 tests bench
	$(BIN)/mypy l1 --ignore-missing-imports

# The container fleet of compose.yaml, with podman (and podman-compose) or docker.
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
COMPOSE ?= $(shell command -v podman-compose >/dev/null 2>&1 && echo podman-compose || echo docker compose)
LOCAL_BASE := localhost/debian-python:bookworm
# A base image made on this machine (../shared/containers/prepare-host.sh) when there is one.
L1_BASE ?= $(shell $(ENGINE) image inspect $(LOCAL_BASE) >/dev/null 2>&1 && echo $(LOCAL_BASE) || echo docker.io/library/python:3.11-slim-bookworm)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# pip in the build trusts what the host trusts (a network that re-signs TLS needs it).
comma := ,
CA_SECRET := $(if $(wildcard $(CA_BUNDLE)),--secret id=ca$(comma)src=$(CA_BUNDLE))
FLEET := $(COMPOSE) -p l1-fleet
FLEET_API := http://127.0.0.1:8101

## Build the image, start the fleet of compose.yaml (3 NATS, Redis, 2 APIs, 3 workers),
## render dog over cat and blur the clip through it, and say where to look.
fleet: $(BIN)/l1
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker) --build-arg BASE=$(L1_BASE) \
	  $(CA_SECRET) -t localhost/l1:latest -f Containerfile .
	$(FLEET) up -d
	@echo "Waiting for the APIs (NATS elects its stream leaders first)…"
	@for api in $(FLEET_API) http://127.0.0.1:8102; do \
	  for i in $$(seq 240); do $(BIN)/python -c "import httpx,sys; sys.exit(httpx.get('$$api/health').status_code != 200)" 2>/dev/null && break; sleep 1; done; \
	done
	$(BIN)/l1 render dog cat --sync --server $(FLEET_API)
	$(BIN)/l1 render blur clip -p radius=4 --sync --server http://127.0.0.1:8102
	@echo
	@echo "The fleet is up (compose project l1-fleet):"
	@echo "  API and docs   $(FLEET_API)/docs   http://127.0.0.1:8102/docs"
	@echo "  runs           $(BIN)/l1 runs --server $(FLEET_API)"
	@echo "  services       $(FLEET) ps"
	@echo "  logs           $(FLEET) logs worker-1"
	@echo "  stop           make fleet-down   (keeps nothing: volumes go too)"

fleet-down:
	$(FLEET) down -v
	@# podman-compose leaves the network behind
	-@$(ENGINE) network rm l1-fleet_default >/dev/null 2>&1

clean:
	rm -rf $(VENV) .pytest_cache
