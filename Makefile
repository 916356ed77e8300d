# Ferry — the two set-up commands are `make up` and `make test` (as root on Debian 12).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FERRY := $(VENV)/bin/ferry
export FERRY_HOME ?= /var/lib/ferry
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider

.PHONY: up down need-root test test-unit test-integration test-e2e bench lint deps venv native demo clean

deps:
	@bash scripts/install-deps.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: deps $(VENV)/.installed

# The edge proxy's hot path compiled with mypyc (build/native; skipped when current).
native: venv
	@$(PY) scripts/build_native.py

up: native
	@bash scripts/up.sh

down: venv
	@$(FERRY) cluster down --purge

# The lanes with integration/e2e tests need root: say so before building anything.
need-root:
	@bash scripts/run-tests.sh --need-root all

test: need-root native
	@bash scripts/run-tests.sh all

test-unit: native
	@bash scripts/run-tests.sh unit

test-integration: need-root native
	@bash scripts/run-tests.sh integration

test-e2e: need-root native
	@bash scripts/run-tests.sh e2e

bench: native
	@bash scripts/bench.sh

lint: venv
	$(VENV)/bin/ruff check ferry tests bench
	$(VENV)/bin/ruff format --check ferry tests bench
	$(VENV)/bin/mypy ferry

clean: down
	rm -rf $(VENV)
