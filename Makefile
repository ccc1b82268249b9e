# Set-up is part of every target: a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean redis-server

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# gunicorn dropped its eventlet worker in 26.0; that row of the server tests
	# runs the last release that has it, from its own folder.
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/gunicorn-eventlet 'gunicorn==25.3.0'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo/app.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples
	$(BIN)/mypy

test: lint redis-server
	$(BIN)/python -m pytest

# The Redis hub tests start a real redis-server; install it where it is missing.
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
