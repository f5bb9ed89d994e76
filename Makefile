# Two commands for a newcomer: `make run` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
SIMULATOR_PORT ?= 8001
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: no workers, in this process). Most of the suite's time
# is waiting (servers starting, streams at a simulated pace), so 3 workers pay even on 2 cores.
# Whole files go to one worker (--dist loadfile): a module's servers and browser start once.
PYTEST_WORKERS ?= 3

# A Python >= 3.12 from PATH or pyenv (override with `make PYTHON=/path/to/python3.12 ...`).
PYTHON ?= $(shell bash scripts/find-python.sh)

.PHONY: install run test lint format bench bench-litellm-install bench-litellm clean images test-containers

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: no Python >= 3.12 found (looked on PATH and in pyenv versions)."; \
		echo "       Install Python 3.12+ (e.g. 'pyenv install 3.12' or your OS package), or run"; \
		echo "       'make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)'."; \
		exit 1; \
	fi
	@echo "Creating $(VENV) with $$($(PYTHON) --version) ..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

run: install
	@HOST=$(HOST) PORT=$(PORT) SIMULATOR_PORT=$(SIMULATOR_PORT) bash scripts/run-dev.sh

test: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) core/tests/test_layers.py
	DEBUG=true $(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/stream.py
	$(PY) bench/quotas.py

# The LiteLLM proxy, bench/stream.py's optional peer, in a venv of its own (.venv-litellm) from
# the pinned bench/requirements-litellm.txt; then the streaming bench with it beside the app.
bench-litellm-install:
	bash bench/install-litellm.sh

bench-litellm: install bench-litellm-install
	$(PY) bench/stream.py --floor --litellm .venv-litellm/bin/litellm

# Every base image the stack needs, from Debian's packages (no container registry); writes
# images.env with their names for docker compose (`docker compose --env-file images.env ...`
# or `set -a; . ./images.env; set +a`). Needs mmdebstrap and a Docker engine.
images:
	bash scripts/build-base-images.sh > images.env
	@cat images.env

# The container part of CI alone: build, the stack's smoke test, a rolling deploy (root, Debian).
test-containers: install
	bash scripts/ci-containers.sh

clean:
	rm -rf $(VENV) db.sqlite3* test_db*.sqlite3* staticfiles .pytest_cache .ruff_cache .mypy_cache
