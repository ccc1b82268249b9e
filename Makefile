# Set-up is part of every target: a fresh clone needs only python3 and make.
# Every environment is installed from the committed lock, uv.lock (docs/development.md);
# `make lock` updates it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The benchmarks' peers (flask-sock, picows, matplotlib) live in their own venv,
# never in the package's dependencies.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed
# uv itself, at the version and hashes of tools/uv.txt, in a venv of its own.
TOOLS_VENV := .venv-tools
UV := $(TOOLS_VENV)/bin/uv
# uv uses the Python named by PYTHON and never downloads one.
export UV_PYTHON_DOWNLOADS := never
# Material for MkDocs prints a notice about MkDocs 2 at every build; the docs build needs none.
export NO_MKDOCS_2_WARNING := 1
SYNC = $(UV) sync --locked --python $(PYTHON)

.PHONY: demo demo-cluster test lint docs docs-serve lock test-deps bench bench-smoke bench-env clean \
	bench-callgrind redis-server chromium nginx haproxy uwsgi

# make demo PORT=5057 DATA_DIR=/tmp/x: where the demo listens, and where its database lives.
PORT ?= 5000
DATA_DIR ?= instance
DEMO_STAMP := $(VENV)/.demo-installed
CLUSTER_STAMP := $(VENV)/.cluster-installed
DEMO_DIR := examples/demo

$(UV): tools/uv.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --require-hashes -r tools/uv.txt
	touch $(UV)

# Everything the tests use: every extra and the test group, exactly as locked.
$(STAMP): pyproject.toml uv.lock tools/gunicorn-eventlet.txt $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --quiet --all-extras --group test --group docs
	# gunicorn dropped its eventlet worker in 26.0; that row of the server tests
	# runs the last release that has it, from its own folder.
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --require-hashes \
		--target $(VENV)/gunicorn-eventlet -r tools/gunicorn-eventlet.txt
	$(MAKE) --no-print-directory uwsgi VENV_DIR=$(VENV)
	touch $(STAMP) $(DEMO_STAMP) $(CLUSTER_STAMP)

# uWSGI builds from source. Where the build fails, everything else stays
# installed, and the uWSGI tests (and benchmark rows) skip, naming the log that says why.
VENV_DIR ?= $(VENV)
uwsgi: $(UV)
	@UV_PROJECT_ENVIRONMENT=$(VENV_DIR) $(SYNC) --quiet --inexact --group uwsgi \
		> $(VENV_DIR)/uwsgi-build.log 2>&1 \
		&& rm -f $(VENV_DIR)/uwsgi-build.log \
		|| echo "warning: uWSGI did not build; its tests will skip (see $(VENV_DIR)/uwsgi-build.log)"

# The demo needs only the package (Flask, websockets); the cluster adds gunicorn, gevent, redis.
# --inexact: a venv that already holds more (the tests') keeps it.
$(DEMO_STAMP): pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --quiet --inexact
	touch $(DEMO_STAMP)

$(CLUSTER_STAMP): pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --quiet --inexact --extra cluster
	touch $(DEMO_STAMP) $(CLUSTER_STAMP)

# The chat and the snake game on Werkzeug, one process.
demo: $(DEMO_STAMP)
	cd $(DEMO_DIR) && $(abspath $(BIN))/python -m duplex_demo --port $(PORT) --data-dir $(abspath $(DATA_DIR))

# The same app on gunicorn, 2 gevent workers, joined by a redis-server of its own (a child
# process on a free port, stopped with it).
demo-cluster: $(CLUSTER_STAMP) redis-server
	cd $(DEMO_DIR) && $(abspath $(BIN))/python cluster.py --port $(PORT) --data-dir $(abspath $(DATA_DIR))

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench tools docs/*.py
	$(BIN)/ruff format --check src tests examples bench tools docs/*.py
	$(BIN)/mypy
	$(BIN)/mypy --strict $(DEMO_DIR)/duplex_demo $(DEMO_DIR)/cluster.py

test: lint docs redis-server nginx chromium $(BENCH_STAMP)
	$(BIN)/python -m pytest

# The documentation site, from docs/ and the docstrings, into site/ (not committed).
# Strict: a broken link, a missing reference or a docstring that does not parse fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The site, rebuilt on every change, on http://127.0.0.1:$(DOCS_PORT) (make docs-serve DOCS_PORT=8001).
DOCS_PORT ?= 8000
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# The Redis hub tests start a real redis-server; install it where it is missing.
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }

# The uWSGI tests put nginx (uwsgi_pass) in front of uWSGI; install it where it is missing.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		echo "installing nginx-light (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light; }

# The cluster benchmark (bench/cluster.py) puts HAProxy in front of three gunicorns; install it
# where it is missing.
haproxy:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
		echo "installing haproxy (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; }

# The browser tests drive Debian's Chromium through Playwright, never a browser
# that Playwright downloads; install it where it is missing.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
		echo "installing chromium and fonts-dejavu-core (Debian packages) for the browser tests"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core; } \
		&& test -x $(CHROMIUM) \
		|| { echo "error: the browser tests need $(CHROMIUM) and could not install it;" \
			"as root, run: apt-get install chromium fonts-dejavu-core" >&2; exit 1; }; }

# uWSGI too, for its rows; where it does not build, those rows are skipped.
$(BENCH_STAMP): pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(SYNC) --quiet --all-extras --group test --group bench
	$(MAKE) --no-print-directory uwsgi VENV_DIR=$(BENCH_VENV)
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

# Side-by-side figures against the peers; about 15 minutes on 2 cores (the simulated cluster, 3 to
# 4 of them). Writes bench/results/ and docs/benchmarks.md. Timings are reported, never asserted.
# Some rows only: $(BENCH_BIN)/python -m bench --only CONTENDER --scenario SCENARIO (see --help).
bench: $(BENCH_STAMP) redis-server haproxy
	$(BENCH_BIN)/python -m bench --write-docs
	$(BENCH_BIN)/python -m bench.fanout --write-docs
	$(BENCH_BIN)/python -m bench.floor --write-docs
	$(BENCH_BIN)/python -m bench.history --write-docs
	$(BENCH_BIN)/python -m bench.idle --write-docs
	$(BENCH_BIN)/python -m bench.cluster --write-docs

# Each contender starts, runs every scenario at its smallest, and stops: well under a minute.
bench-smoke: $(BENCH_STAMP)
	$(BENCH_BIN)/python -m bench --smoke

# Instructions the server executes per connection cycle, echo and plain GET, counted by
# valgrind's callgrind (bench/callgrind.py), each measured twice; about 5 minutes, and not part
# of `make test`. Installs valgrind where it is missing. Some rows only:
# make bench-callgrind CALLGRIND_ARGS="--server werkzeug --scenario cycle" (see --help).
CALLGRIND_ARGS ?=
bench-callgrind: $(BENCH_STAMP)
	@command -v valgrind >/dev/null || { \
		echo "installing valgrind (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind; }
	$(BENCH_BIN)/python -m bench.callgrind --repeat 2 $(CALLGRIND_ARGS)

# The engine, server and hub suites on Python 3.10 to 3.13, each with the lowest and
# the newest releases that pyproject.toml allows (tools/test_deps.py); before each
# release, about 30 minutes. Some rows only: make test-deps DEPS_ARGS="--python 3.13".
DEPS_ARGS ?=
test-deps: $(UV) redis-server
	UV=$(abspath $(UV)) $(PYTHON) tools/test_deps.py $(DEPS_ARGS)

# A new uv.lock with the newest releases that pyproject.toml allows, and the
# hashed pins of tools/. Then run `make test` (and `make test-deps` before a release).
lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	$(UV) pip compile --quiet --generate-hashes --upgrade --python-version 3.10 \
		tools/uv.in -o tools/uv.txt
	$(UV) pip compile --quiet --generate-hashes --no-deps --upgrade \
		tools/gunicorn-eventlet.in -o tools/gunicorn-eventlet.txt

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(TOOLS_VENV) build dist site .pytest_cache .mypy_cache .ruff_cache
