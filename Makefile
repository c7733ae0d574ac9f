# The single entry point. The two commands that matter:
#   make run    the whole service on this machine (SQLite, embedded Redis, one worker, the API)
#   make test   lint, then the test suite against PostgreSQL and Redis on loopback
# `make help` lists the rest.
#
# Environment variables (DATABASE_URL, REDIS_URL, ...) pass straight through to every command:
# make hands its own environment to each recipe, so
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/mine REDIS_URL=redis://127.0.0.1:6379/5 make test
# aims the suite at your own database and Redis db. Defaults live in tests/settings.py and
# ocl_export/settings.py, not here, so there is one place to read them.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k export -x'
PYTEST_ARGS ?=

# Stamp files record which requirements the virtualenv holds; pip runs again only when a
# requirements file is newer than its stamp. They live inside .venv, so deleting .venv resets them.
RUN_STAMP := $(VENV)/.installed-requirements
TEST_STAMP := $(VENV)/.installed-requirements-test

.PHONY: help run test test-only services lint format worker migrate bench bench-requests bench-cache-attack clean distclean venv docs-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

# requirements-test.txt includes requirements.txt, so this stamp satisfies `make run` too.
$(TEST_STAMP): requirements.txt requirements-test.txt | $(PY)
	$(PIP) install --quiet -r requirements-test.txt
	touch $@ $(RUN_STAMP)

venv: $(TEST_STAMP) ## create .venv with runtime and test requirements

run: $(RUN_STAMP) ## README command 1: embedded SQLite + Redis + worker + API on 127.0.0.1:8000
	PYTHON=$(PY) deploy/run-embedded.sh

test: lint docs-check services ## README command 2: lint, docs, make sure PostgreSQL/Redis answer, run pytest
	$(BIN)/pytest $(PYTEST_ARGS)

test-only: $(TEST_STAMP) ## pytest alone (services assumed up)
	$(BIN)/pytest $(PYTEST_ARGS)

services: ## start (or install) PostgreSQL on :5432 and Redis on :6379 if they do not answer
	deploy/test-services.sh

lint: $(TEST_STAMP) ## ruff check (what CI enforces)
	$(BIN)/ruff check .

format: $(TEST_STAMP) ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(RUN_STAMP) ## apply migrations to DATABASE_URL (default: SQLite under var/)
	mkdir -p var
	$(PY) manage.py migrate --noinput

worker: $(RUN_STAMP) ## one RQ worker in the foreground against REDIS_URL
	PYTHON=$(PY) deploy/worker.sh

bench: $(TEST_STAMP) services ## run the import, export and request benchmarks
	$(PY) bench/bench_import.py
	$(PY) bench/bench_export.py
	$(PY) bench/bench_requests.py

bench-requests: $(TEST_STAMP) services ## the request benchmark alone (gunicorn + wrk, 32 connections)
	$(PY) bench/bench_requests.py

bench-cache-attack: $(TEST_STAMP) services ## the read cache attack: worker RSS under distinct query strings
	$(PY) bench/bench_cache_attack.py

# Names every variable a settings module (the project's, each feature's conf.py) reads and README.md does not mention in backticks.
SETTINGS_MODULES := ocl_export/settings.py foundation/environment.py $(wildcard */conf.py)

docs-check: ## check that README.md documents every environment variable of every settings module
	@missing=$$(grep -ohE '(env_[a-z]+|environ\.get)\("[A-Z0-9_]+"' $(SETTINGS_MODULES) | grep -oE '[A-Z0-9_]{2,}' | sort -u \
		| while read -r name; do grep -q "\`$$name\`" README.md || echo "$$name"; done); \
	if [[ -n $$missing ]]; then echo "README.md does not document:" $$missing; exit 1; fi; \
	echo "README.md documents every setting"

clean: ## remove caches and local state under var/ (the embedded database and exports)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .ruff_cache .pytest_cache var bench/out

distclean: clean ## clean, and remove the virtualenv too
	rm -rf $(VENV)
