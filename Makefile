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

.PHONY: install run test test-fast lint format clean bench

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
