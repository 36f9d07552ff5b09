# AgentHQ collaboration backend. `make run` and `make test` are all you need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else the one pip installs (python3 -m uv). Never download an interpreter.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
RUN := $(UV) run --frozen

.PHONY: help install run migrate check test lint fmt bench fuzz chaos docs clean web web-deps web-types demo screenshots

# The console needs Node.js 20.19+ with npm; say how to get it rather than fail obscurely.
NODE_CHECK := command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
	&& node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
NODE_HELP := The web console needs Node.js 20.19 or later with npm: install it from https://nodejs.org \
	(or your system's packages, e.g. 'apt-get install nodejs npm' on Debian 13), then run the command again.

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

REPLICAS ?= 1

run: migrate ## Install, migrate, build the console and start all six services (REPLICAS=2: two of each behind HAProxy)
	@$(MAKE) --no-print-directory web || echo "Starting without the web console (the API works; / says how to build it)."
	@$(RUN) agenthq-dev run --replicas $(REPLICAS)

lint: install ## Ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

# The fuzzer and the multi-instance realtime tests start processes of their own;
# once (in the first pass) is enough for them.
REPLICATED_E2E := --ignore=tests/e2e/test_fuzz.py --ignore=tests/e2e/test_realtime_instances.py

test: install web ## Install and run every test (lint first; the console's tests, then pytest)
	@$(RUN) ruff check .
	@cd web && npm run -s typecheck && npx vitest run --reporter=dot
	@$(RUN) pytest
	@echo "The end-to-end tests again, with every service twice behind HAProxy (as make run REPLICAS=2) ..."
	@AGENTHQ_E2E_REPLICAS=2 $(RUN) pytest tests/e2e $(REPLICATED_E2E)

fmt: install ## Format and fix what ruff can
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

bench: install ## Run every benchmark under bench/ and print figures
	@$(RUN) python bench/run.py

fuzz: install ## Fuzz the public API (schemathesis), AGENTHQ_FUZZ_EXAMPLES (200) per operation
	@AGENTHQ_FUZZ_EXAMPLES=$${AGENTHQ_FUZZ_EXAMPLES:-200} $(RUN) pytest tests/e2e/test_fuzz.py -q

# The long form of tests/chaos (which `make test` runs), on private servers; e.g.
# CHAOS_ARGS="--repeat 3" or CHAOS_ARGS="--drill redis-restart --profile short".
chaos: install ## Failure drills (replicas killed; RabbitMQ, Redis, PostgreSQL restarted) on private servers
	@$(RUN) agenthq-dev chaos $(CHAOS_ARGS)

docs: install ## Regenerate docs/asyncapi.json and docs/configuration.md
	@$(RUN) agenthq-dev docs

demo: install ## Fill the running system (make run) with demo teams, people and weeks of history
	@$(RUN) agenthq-dev demo

screenshots: install web ## Save a PNG of every console page (desktop and phone) in docs/screenshots/
	@$(RUN) agenthq-dev screenshots

web-deps: ## Install the console's packages from its lock file (npm ci)
	@$(NODE_CHECK) || { echo "$(NODE_HELP)" >&2; exit 1; }
	@echo "Installing the console's packages (npm ci) ..."
	@cd web && npm ci --no-audit --no-fund --loglevel=error

web: web-deps ## Build the web console into web/dist (the gateway serves it at /)
	@echo "Building the web console ..."
	@cd web && npm run -s build

web-types: install web-deps ## Regenerate web/openapi.json and the console's API types from the code
	@$(RUN) agenthq-dev openapi
	@cd web && npm run -s api-types

clean: ## Remove the virtualenv, caches and local logs
	rm -rf .venv .run .pytest_cache .ruff_cache web/node_modules web/dist
