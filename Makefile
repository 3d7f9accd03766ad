# The two commands: `make demo` runs Strata with a simulated fleet; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format services browser venv venv-dev clean deploy-check

demo: $(VENV)/.runtime  ## Run the platform + a simulated fleet on the embedded default
	$(BIN)/python -m launchers.demo

test: $(VENV)/.dev services browser  ## Lint, then the whole suite against real PostgreSQL, Redis, Mosquitto, Chromium
	bash scripts/ensure_firmware_tools.sh  # Arm toolchain + QEMU for tests/firmware (skips if absent)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layers of docs/architecture.md
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: $(VENV)/.dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

services:
	bash scripts/ensure_services.sh

deploy-check:  ## Build the image, run deploy/compose.yaml with podman, send a camera's frames through it (minutes; not in `test`)
	bash scripts/deploy_check.sh

browser:  ## Debian's Chromium for the browser tests (apt; never `playwright install`)
	bash scripts/ensure_browser.sh

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The repository itself is installed editable (pyproject.toml): no sys.path set-up anywhere.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

clean:
	rm -rf $(VENV) var
