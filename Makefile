# Two commands for a newcomer: `make run` and `make test`. Both build .venv/ from uv.lock first.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Our own modules are imported by many short-lived test processes: let Python cache bytecode.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install run test lint format clean up down

install: $(STAMP)

# uv itself comes from PyPI into a private tool venv, so a machine with only Python needs nothing else.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-sync whenever the lock or the project metadata changes (a stale .venv is rebuilt).
$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $(STAMP)

run: install
	@bash deploy/local/run.sh

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(TOOLS) var/ .pytest_cache .mypy_cache .ruff_cache

# The whole system in Docker (deploy/compose.yaml): PostgreSQL, migrations, 2 API replicas,
# 2 workers and the reference platform. Secrets come from deploy/.env (made once from the example).
COMPOSE := docker compose -f deploy/compose.yaml

up:
	@docker compose version >/dev/null 2>&1 || { echo "make up needs Docker with the compose plugin (docker compose); without Docker, use make run" >&2; exit 1; }
	@test -f deploy/.env || { cp deploy/.env.example deploy/.env && echo "created deploy/.env from deploy/.env.example: change its secrets before exposing the stack"; }
	$(COMPOSE) up --build --detach
	@echo "The platform: http://127.0.0.1:8001   The payment service: http://127.0.0.1:8000 (docs at /docs)"
	@echo "Logs: $(COMPOSE) logs -f api worker   Stop: make down"

down:
	@docker compose version >/dev/null 2>&1 || { echo "make down needs Docker with the compose plugin (docker compose)" >&2; exit 1; }
	$(COMPOSE) down
