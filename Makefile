# AgentHQ collaboration backend. `make run` and `make test` are all you need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else the one pip installs (python3 -m uv). Never download an interpreter.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
RUN := $(UV) run --frozen

.PHONY: help install run migrate check test lint fmt bench fuzz docs clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## Install uv (if missing) and every package from the lock file
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
		echo "Installing uv with pip ..."; python3 -m pip install --quiet uv; }
	@$(UV) sync --frozen --all-packages --quiet
	@echo "Dependencies installed (.venv)."

check: install ## Check that PostgreSQL, Redis and RabbitMQ are reachable
	@$(RUN) agenthq-dev check

migrate: check ## Create each service's database if missing and migrate it
	@$(RUN) agenthq-dev migrate

run: migrate ## Install, migrate and start all six services (Ctrl-C stops them)
	@$(RUN) agenthq-dev run

lint: install ## Ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

test: install ## Install and run every test (lint first)
	@$(RUN) ruff check .
	@$(RUN) pytest

fmt: install ## Format and fix what ruff can
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

bench: install ## Run every benchmark under bench/ and print figures
	@$(RUN) python bench/run.py

fuzz: install ## Fuzz the public API (schemathesis), AGENTHQ_FUZZ_EXAMPLES (200) per operation
	@AGENTHQ_FUZZ_EXAMPLES=$${AGENTHQ_FUZZ_EXAMPLES:-200} $(RUN) pytest tests/e2e/test_fuzz.py -q

docs: install ## Regenerate docs/asyncapi.json and docs/configuration.md
	@$(RUN) agenthq-dev docs

clean: ## Remove the virtualenv, caches and local logs
	rm -rf .venv .run .pytest_cache .ruff_cache
