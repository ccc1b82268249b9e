"""The benchmark harness still starts every contender: ``python -m bench --smoke``.

Figures are never checked here; only that each contender starts, runs every scenario it can at
its smallest (one operation or a few: echo, fragments, cycle, plain GET, opening, idle), and
stops, and that the tables can be built from those figures.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.contenders import CONTENDERS

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def test_every_contender_runs_every_scenario_at_its_smallest() -> None:
    """Each contender runs each of its scenarios once, in the benchmark's own venv."""
    if not BENCH_PYTHON.exists():
        pytest.fail(f"{BENCH_PYTHON.relative_to(ROOT)} is missing: run `make bench-env` first")
    done = subprocess.run(
        [str(BENCH_PYTHON), "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for contender in CONTENDERS:
        ok_lines = re.findall(rf"^OK\s+{re.escape(contender.key)}\s", done.stdout, re.MULTILINE)
        if contender.missing(str(BENCH_PYTHON)) is not None:
            # uWSGI, where it did not build: skipped, saying why.
            ok_lines = re.findall(rf"^SKIP\s+{re.escape(contender.key)}\s", done.stdout, re.M)
        assert len(ok_lines) == 1, f"no OK line for {contender.key}:\n{output}"
    assert re.search(r"^OK\s+tables\s", done.stdout, re.MULTILINE), output


def test_the_memory_floor_runs_every_row() -> None:
    """``python -m bench.floor`` on a few connections: three rows per server, each measured."""
    if not BENCH_PYTHON.exists():
        pytest.fail(f"{BENCH_PYTHON.relative_to(ROOT)} is missing: run `make bench-env` first")
    done = subprocess.run(
        [str(BENCH_PYTHON), "-m", "bench.floor", "--connections", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = re.findall(
        r"^\| (Werkzeug|gunicorn gevent) \| .+ \| ([\d.]+) \| ([\d.-]+) \|$",
        done.stdout,
        re.MULTILINE,
    )
    assert [server for server, _, _ in rows] == ["Werkzeug"] * 3 + ["gunicorn gevent"] * 3, (
        done.stdout
    )
    # A thread per held request on Werkzeug, none on gevent: each row held its connections.
    assert [float(threads) for _, threads, _ in rows] == [1.0] * 3 + [0.0] * 3, done.stdout


def test_idle_connections_at_scale_run_small_steps(tmp_path: Path) -> None:
    """``python -m bench.idle`` on two small steps: both held, and a new client echoes at each."""
    if not BENCH_PYTHON.exists():
        pytest.fail(f"{BENCH_PYTHON.relative_to(ROOT)} is missing: run `make bench-env` first")
    done = subprocess.run(
        [str(BENCH_PYTHON), "-m", "bench.idle", "--steps", "20,50", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "idle.json").read_text())
    assert [row["held"] for row in results["steps"]] == [20, 50], done.stdout
    for row in results["steps"]:
        assert row["error"] is None and row["probe_round_trips"] == 200, row
    assert re.search(r"^\| 50 \| 50 \| [\d.]+ \|", done.stdout, re.MULTILINE), done.stdout
