# Set-up is part of every target: a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The benchmarks' peers (flask-sock, picows, matplotlib) live in their own venv,
# never in the package's dependencies.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo demo-cluster test lint bench bench-smoke bench-env clean redis-server chromium

# make demo PORT=5057 DATA_DIR=/tmp/x: where the demo listens, and where its database lives.
PORT ?= 5000
DATA_DIR ?= instance
DEMO_STAMP := $(VENV)/.demo-installed
CLUSTER_STAMP := $(VENV)/.cluster-installed
DEMO_DIR := examples/demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# gunicorn dropped its eventlet worker in 26.0; that row of the server tests
	# runs the last release that has it, from its own folder.
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/gunicorn-eventlet 'gunicorn==25.3.0'
	touch $(STAMP)

# The demo needs only the package (Flask, websockets); the cluster adds gunicorn, gevent, redis.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(CLUSTER_STAMP): pyproject.toml $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cluster]'
	touch $(CLUSTER_STAMP)

# The chat and the snake game on Werkzeug, one process.
demo: $(DEMO_STAMP)
	cd $(DEMO_DIR) && $(abspath $(BIN))/python -m duplex_demo --port $(PORT) --data-dir $(abspath $(DATA_DIR))

# The same app on gunicorn, 2 gevent workers, joined by a redis-server of its own (a child
# process on a free port, stopped with it).
demo-cluster: $(CLUSTER_STAMP) redis-server
	cd $(DEMO_DIR) && $(abspath $(BIN))/python -m duplex_demo.cluster --port $(PORT) --data-dir $(abspath $(DATA_DIR))

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy
	$(BIN)/mypy --strict $(DEMO_DIR)/duplex_demo

test: lint redis-server chromium $(BENCH_STAMP)
	$(BIN)/python -m pytest

# The Redis hub tests start a real redis-server; install it where it is missing.
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }

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

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet -e '.[test]' 'flask-sock==0.7.0' 'picows>=2.3' matplotlib
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

# Side-by-side figures against the peers; about 10 minutes on 2 cores. Writes
# bench/results/ and docs/benchmarks.md. Timings are reported, never asserted.
# Some rows only: $(BENCH_BIN)/python -m bench --only CONTENDER --scenario SCENARIO (see --help).
bench: $(BENCH_STAMP)
	$(BENCH_BIN)/python -m bench --write-docs
	$(BENCH_BIN)/python -m bench.fanout --write-docs
	$(BENCH_BIN)/python -m bench.floor --write-docs

# Each contender starts, runs every scenario at its smallest, and stops: well under a minute.
bench-smoke: $(BENCH_STAMP)
	$(BENCH_BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
